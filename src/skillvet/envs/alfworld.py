"""ALFWorld's text games (TextWorld engine, `alfworld` package: `pip install skillvet[alfworld]`).

Games come from a folder laid out like ALFWorld's data: `json_2.1.1/<split>/<task>/<trial>/
game.tw-pddl`. Give the folder that holds `json_2.1.1` (or `json_2.1.1` itself) as `env.data`,
or set `ALFWORLD_DATA`. A game's task type comes from its path; its `walkthrough` is the expert.
Observations, admissible commands and `won` are ALFWorld's, object names demangled as ALFWorld
does. Two changes: `help` is left out of the admissible list, and an action that is not
admissible is answered "Nothing happens." without reaching the engine (the answer ALFWorld
gives). The anchor is the last informative observation with the admissible commands, so that
"Nothing happens." in two different places are two different states.
"""

from __future__ import annotations

import json
import os
from itertools import zip_longest
from pathlib import Path

from skillvet.envs.protocol import NOTHING_HAPPENS, check_split, match_admissible
from skillvet.types import SUCCESS_REWARD, StepResult, Task

ALFWORLD_TYPES = {
    "pick_and_place_simple": "pick_and_place",
    "look_at_obj_in_light": "look_at_obj_in_light",
    "pick_clean_then_place_in_recep": "pick_clean_then_place",
    "pick_heat_then_place_in_recep": "pick_heat_then_place",
    "pick_cool_then_place_in_recep": "pick_cool_then_place",
    "pick_two_obj_and_place": "pick_two_obj_and_place",
}
SPLITS = ("train", "valid_seen", "valid_unseen", "valid_train")


def find_data_root(data: str | os.PathLike | None) -> Path:
    """The `json_2.1.1` folder, from a path to it or to its parent, or from $ALFWORLD_DATA."""
    raw = data if data is not None else os.environ.get("ALFWORLD_DATA")
    if raw is None:
        raise FileNotFoundError(
            "no ALFWorld data: pass --data DIR (or env.data) or set ALFWORLD_DATA"
        )
    base = Path(raw).expanduser()
    for candidate in (base, base / "json_2.1.1", base / "alfworld" / "json_2.1.1"):
        if candidate.is_dir() and any((candidate / s).is_dir() for s in SPLITS):
            return candidate
    raise FileNotFoundError(f"no ALFWorld games under {base} (expected json_2.1.1/<split>/...)")


def task_type_of(path: Path) -> str:
    folder = path.parent.parent.name  # <task folder>/<trial>/game.tw-pddl
    prefix = folder.split("-", 1)[0]
    if prefix not in ALFWORLD_TYPES:
        raise ValueError(f"cannot tell the task type of {path}")
    return ALFWORLD_TYPES[prefix]


class AlfworldEnv:
    """One episode of one ALFWorld game."""

    def __init__(self, gamefile: Path, task_type: str, max_steps: int) -> None:
        import textworld
        import textworld.gym
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos

        infos = textworld.EnvInfos(won=True, admissible_commands=True, extras=["gamefile"])
        env_id = textworld.gym.register_game(
            str(gamefile),
            infos,
            max_episode_steps=max_steps + 1,
            wrappers=[AlfredDemangler(), AlfredInfos],
        )
        self._env = textworld.gym.make(env_id)
        self.task_type, self.max_steps = task_type, max_steps
        self.goal = ""
        self.steps = 0
        self._admissible: tuple[str, ...] = ()
        self._place = ""

    def _result(self, obs: str, infos: dict, *, valid: bool) -> StepResult:
        won = bool(infos["won"])
        self._admissible = tuple(a for a in infos["admissible_commands"] if a != "help")
        if valid and obs != NOTHING_HAPPENS:
            self._place = obs
        return StepResult(
            observation=obs,
            reward=SUCCESS_REWARD if won and valid else 0.0,
            done=won or self.steps >= self.max_steps,
            task=self.goal,
            task_type=self.task_type,
            anchor=(self._place, self._admissible),
            admissible=self._admissible,
            won=won,
            action_valid=valid,
        )

    def reset(self) -> StepResult:
        obs, infos = self._env.reset()
        self.steps = 0
        marker = "Your task is to: "
        self.goal = obs[obs.index(marker) + len(marker) :].strip() if marker in obs else ""
        self._infos = infos
        return self._result(obs, infos, valid=True)

    def step(self, action: str) -> StepResult:
        self.steps += 1
        chosen = match_admissible(action, self._admissible)
        if chosen is None:
            return self._result(NOTHING_HAPPENS, self._infos, valid=False)
        obs, _, _, infos = self._env.step(chosen)
        self._infos = infos
        return self._result(obs, infos, valid=True)

    def close(self) -> None:
        self._env.close()


class AlfworldSource:
    """ALFWorld's games by split, in an order where the task types take turns."""

    name = "alfworld"

    def __init__(self, data: str | os.PathLike | None = None, max_steps: int = 50) -> None:
        self.root = find_data_root(data)
        self.max_steps = max_steps

    def splits(self) -> dict[str, int]:
        return {s: len(self._games(s)) for s in SPLITS if (self.root / s).is_dir()}

    def _games(self, split: str) -> list[Path]:
        return sorted((self.root / split).glob("*/*/game.tw-pddl"))

    def tasks(self, split: str) -> list[Task]:
        check_split(self, split)
        by_type: dict[str, list[Task]] = {}
        for path in self._games(split):
            task = Task(
                "alfworld",
                split,
                str(path.parent.relative_to(self.root / split)),
                task_type_of(path),
            )
            by_type.setdefault(task.task_type, []).append(task)
        rounds = zip_longest(*(by_type[t] for t in sorted(by_type)))
        return [task for batch in rounds for task in batch if task is not None]

    def _gamefile(self, task: Task) -> Path:
        return self.root / task.split / task.id / "game.tw-pddl"

    def make(self, task: Task) -> AlfworldEnv:
        return AlfworldEnv(self._gamefile(task), task.task_type, self.max_steps)

    def expert(self, task: Task) -> list[str]:
        return list(json.loads(self._gamefile(task).read_text())["walkthrough"])
