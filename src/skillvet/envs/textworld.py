"""TextWorld games made offline with `tw-make` (`pip install skillvet[textworld]`).

Three challenges: cooking, coin collector and treasure hunter. A task is (challenge, level,
seed); its game is made on first use into `env.textworld.cache_dir` and reused after. The
game's walkthrough is the expert. TextWorld's banner and its trailing status prompt are cut
from observations. An action that is not admissible is answered "Nothing happens." without
reaching the game. The anchor is the room description with the inventory.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from skillvet.configerror import require
from skillvet.envs.protocol import NOTHING_HAPPENS, check_split, match_admissible, seeded_tasks
from skillvet.types import SUCCESS_REWARD, StepResult, Task


@dataclass
class TextworldConfig:
    game_types: list[str] = field(
        default_factory=lambda: ["cooking", "coin_collector", "treasure_hunter"]
    )
    """TextWorld challenges to make games of (tw-make)."""
    level: int = 3
    """Difficulty, 1 to 10: quest length for coin collector and treasure hunter, recipe size and
    rooms for cooking."""
    cache_dir: str = "~/.cache/skillvet/textworld"
    """Where generated games are kept; a game is made once, on first use."""
    train_tasks: int = 300
    """Games in the train split (seeds 0 .. train_tasks-1)."""
    eval_tasks: int = 60
    """Games in the eval split (seeds from 1,000,000 on)."""

    def __post_init__(self) -> None:
        known = ("cooking", "coin_collector", "treasure_hunter")
        unknown = sorted(set(self.game_types) - set(known))
        require(
            not unknown and bool(self.game_types),
            "env.textworld.game_types",
            f"choose from {list(known)}, got {self.game_types}",
        )
        require(
            1 <= self.level <= 10, "env.textworld.level", f"must be in [1, 10], got {self.level}"
        )


_PROMPT = re.compile(r"\n*>\s[^\n]*$")
_BANNER_CHARS = set(" $\\|_/<>")


def tw_make_args(game_type: str, level: int) -> list[str]:
    """tw-make options for a challenge at a difficulty level (1..10)."""
    if game_type == "coin_collector":
        return ["tw-coin_collector", "--level", str(level)]
    if game_type == "treasure_hunter":
        return ["tw-treasure_hunter", "--level", str(level)]
    if game_type == "cooking":
        size = min(1 + (level - 1) // 3, 3)  # ingredients in the recipe, and to take
        rooms = (1, 6, 9, 12)[min((level - 1) // 2, 3)]
        return ["tw-cooking", "--recipe", str(size), "--take", str(size), "--go", str(rooms)]
    raise ValueError(f"unknown TextWorld challenge {game_type!r}")


def clean_text(text: str) -> str:
    """TextWorld output without the ASCII-art banner and the `> -= Room =-0/1` status prompt."""
    text = _PROMPT.sub("", text).split("Would you like to RESTART", 1)[0]
    lines = [
        line for line in text.splitlines() if not (line.strip() and set(line) <= _BANNER_CHARS)
    ]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _tw_make() -> str:
    found = shutil.which("tw-make") or str(Path(sys.executable).parent / "tw-make")
    if not Path(found).exists():
        raise FileNotFoundError("tw-make not found: pip install 'skillvet[textworld]'")
    return found


class TextworldEnv:
    def __init__(self, gamefile: Path, task_type: str, max_steps: int) -> None:
        import textworld

        infos = textworld.EnvInfos(
            admissible_commands=True,
            won=True,
            lost=True,
            objective=True,
            description=True,
            inventory=True,
        )
        self._env = textworld.start(str(gamefile), request_infos=infos)
        self.task_type, self.max_steps = task_type, max_steps
        self.steps, self.goal = 0, ""
        self._state = None

    def _result(self, obs: str, *, valid: bool) -> StepResult:
        st = self._state
        admissible = tuple(st.admissible_commands)
        won, lost = bool(st.won), bool(st.lost)
        return StepResult(
            observation=obs,
            reward=SUCCESS_REWARD if won and valid else 0.0,
            done=won or lost or self.steps >= self.max_steps,
            task=self.goal,
            task_type=self.task_type,
            anchor=(clean_text(st.description or ""), clean_text(st.inventory or "")),
            admissible=admissible,
            won=won,
            action_valid=valid,
        )

    def reset(self) -> StepResult:
        self._state = self._env.reset()
        self.steps = 0
        self.goal = clean_text(self._state.objective or "")
        intro = clean_text(self._state.feedback)
        start = intro.find(self.goal[:40]) if self.goal else -1
        return self._result(intro[start:] if start > 0 else intro, valid=True)

    def step(self, action: str) -> StepResult:
        self.steps += 1
        chosen = match_admissible(action, self._state.admissible_commands)
        if chosen is None:
            return self._result(NOTHING_HAPPENS, valid=False)
        self._state, _, _ = self._env.step(chosen)
        return self._result(clean_text(self._state.feedback), valid=True)

    def close(self) -> None:
        self._env.close()


class TextworldSource:
    name = "textworld"

    def __init__(self, cfg: TextworldConfig | None = None, max_steps: int = 50) -> None:
        self.cfg = cfg or TextworldConfig()
        self.max_steps = max_steps
        self.cache = Path(os.path.expanduser(self.cfg.cache_dir))

    def splits(self) -> dict[str, int]:
        return {"train": self.cfg.train_tasks, "eval": self.cfg.eval_tasks}

    def tasks(self, split: str) -> list[Task]:
        check_split(self, split)
        level = self.cfg.level
        task_id = lambda seed, game_type: f"{game_type}-L{level}-s{seed}"  # noqa: E731
        return seeded_tasks("textworld", split, self.splits()[split], self.cfg.game_types, task_id)

    def gamefile(self, task: Task) -> Path:
        """The game's file, made with tw-make on first use (written atomically)."""
        path = self.cache / f"{task.id}.z8"
        if path.exists() and path.with_suffix(".json").exists():
            return path
        self.cache.mkdir(parents=True, exist_ok=True)
        seed = task.id.rsplit("-s", 1)[1]
        with tempfile.TemporaryDirectory(dir=self.cache) as tmp:
            out = Path(tmp) / path.name
            cmd = [
                _tw_make(),
                *tw_make_args(task.task_type, self.cfg.level),
                "--seed",
                seed,
                "--output",
                str(out),
                "-f",
            ]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0 or not out.exists():
                raise RuntimeError(f"tw-make failed for {task.id}:\n{done.stderr[-2000:]}")
            for made in Path(tmp).iterdir():  # .z8, .json, .ni
                os.replace(made, self.cache / made.name)
        return path

    def make(self, task: Task) -> TextworldEnv:
        return TextworldEnv(self.gamefile(task), task.task_type, self.max_steps)

    def expert(self, task: Task) -> list[str]:
        import textworld

        return list(textworld.Game.load(str(self.gamefile(task).with_suffix(".json"))).walkthrough)
