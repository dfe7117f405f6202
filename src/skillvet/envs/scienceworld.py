"""ScienceWorld (`pip install skillvet[scienceworld]`; its jar runs on the machine's Java 17).

A task is (task name, variation); the splits are ScienceWorld's own train, dev and test
variations. The gold action sequence is the expert. Actions are free text, so no admissible list
is given; an input ScienceWorld cannot parse is answered "Nothing happens.". A task is won when
its score reaches 100. The anchor is the room description with the inventory.

Each source owns one JVM, started on first use and reused from task to task, and plays one
environment at a time: `make_source` runs ScienceWorld in a pool of worker processes
(`env.scienceworld.workers`), and a worker starts one more source (JVM) for each environment it
plays at the same time, reusing them afterwards. A JVM that dies ends its episodes with `error`
set; its worker is replaced.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path

from skillvet.configerror import require
from skillvet.envs.protocol import NOTHING_HAPPENS, EnvCrashed, check_split
from skillvet.types import SUCCESS_REWARD, StepResult, Task


@dataclass
class ScienceworldConfig:
    task_names: list[str] = field(default_factory=list)
    """ScienceWorld task names to play; empty means all 30."""
    simplification: str = "easy"
    """ScienceWorld simplification string ("easy", or a comma-separated list, or "")."""
    workers: int = 8
    """Worker processes the JVMs run in, side by side (each environment played at the same
    time has a JVM of its own)."""

    def __post_init__(self) -> None:
        require(self.workers >= 1, "env.scienceworld.workers", f"must be >= 1, got {self.workers}")


UNPARSED = "No known action matches that input."
SPLITS = ("train", "dev", "test")
CACHE = Path(os.path.expanduser("~/.cache/skillvet"))


def _jvm_errors() -> tuple[type[Exception], ...]:
    from py4j.protocol import Py4JError

    return (Py4JError, ConnectionError, OSError)


class ScienceworldEnv:
    def __init__(self, source: ScienceworldSource, task: Task, max_steps: int) -> None:
        self.source, self.task, self.max_steps = source, task, max_steps
        self.name, variation = task.id.rsplit("/", 1)
        self.variation = int(variation)
        self.steps, self.goal = 0, ""
        self._anchor: tuple[str, str] = ("", "")

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except _jvm_errors() as err:
            self.source.drop_jvm()
            raise EnvCrashed(f"ScienceWorld's JVM died: {err}") from err

    def _result(self, obs: str, reward: float, done: bool, won: bool, valid: bool) -> StepResult:
        return StepResult(
            observation=obs,
            reward=reward,
            done=done or self.steps >= self.max_steps,
            task=self.goal,
            task_type=self.name,
            anchor=self._anchor,
            admissible=None,
            won=won,
            action_valid=valid,
        )

    def reset(self) -> StepResult:
        sw = self.source.jvm()
        self._call(sw.load, self.name, self.variation, self.source.cfg.simplification)
        obs, info = self._call(sw.reset)
        self.goal = self._call(sw.get_task_description)
        self.steps = 0
        self._anchor = (info["look"], info["inv"])
        return self._result(obs, 0.0, False, False, True)

    def step(self, action: str) -> StepResult:
        self.steps += 1
        text = " ".join(action.split())
        if not text:
            return self._result(NOTHING_HAPPENS, 0.0, False, False, False)
        obs, _, done, info = self._call(self.source.jvm().step, text)
        if obs.strip() == UNPARSED:
            return self._result(NOTHING_HAPPENS, 0.0, False, False, False)
        self._anchor = (info["look"], info["inv"])
        won = info["score"] >= 100
        return self._result(obs, SUCCESS_REWARD if won else 0.0, bool(done) or won, won, True)

    def close(self) -> None:
        self.source.busy = False


class ScienceworldSource:
    name = "scienceworld"

    def __init__(self, cfg: ScienceworldConfig | None = None, max_steps: int = 100) -> None:
        self.cfg = cfg or ScienceworldConfig()
        self.max_steps = max_steps
        self._sw = None
        self.busy = False
        self._variations: dict[str, dict[str, list[int]]] | None = None

    # -- the JVM ------------------------------------------------------------------------------

    def jvm(self):
        if self._sw is None:
            from scienceworld import ScienceWorldEnv

            self._sw = ScienceWorldEnv("", envStepLimit=10_000)
        return self._sw

    def drop_jvm(self) -> None:
        self._sw = None

    # -- tasks --------------------------------------------------------------------------------

    def variations(self) -> dict[str, dict[str, list[int]]]:
        """Task name -> split -> variation indices, for the configured tasks.

        Read from the JVM once per task name, then from a cache file beside the game caches.
        """
        if self._variations is None:
            import scienceworld

            path = CACHE / f"scienceworld-{scienceworld.__version__}-variations.json"
            table = json.loads(path.read_text()) if path.exists() else {}
            names = self.cfg.task_names or table.get("_names") or self.jvm().get_task_names()
            missing = [n for n in names if n not in table]
            if missing or "_names" not in table:
                sw = self.jvm()
                known = sw.get_task_names()
                unknown = sorted(set(names) - set(known))
                if unknown:
                    raise ValueError(f"unknown ScienceWorld tasks {unknown}; known: {known}")
                for name in missing:
                    sw.load(name, 0, "")
                    table[name] = {
                        "train": list(sw.get_variations_train()),
                        "dev": list(sw.get_variations_dev()),
                        "test": list(sw.get_variations_test()),
                    }
                table["_names"] = list(known)
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(table))
                os.replace(tmp, path)
            self._variations = {n: table[n] for n in names}
        return self._variations

    def _names(self) -> list[str]:
        return sorted(self.variations())

    def splits(self) -> dict[str, int]:
        table = self.variations()
        return {s: sum(len(table[n][s]) for n in self._names()) for s in SPLITS}

    def tasks(self, split: str) -> list[Task]:
        """The split's (task, variation) pairs, the task names taking turns."""
        check_split(self, split)
        table = self.variations()
        per_name = [
            [Task("scienceworld", split, f"{n}/{v}", n) for v in table[n][split]]
            for n in self._names()
        ]
        return [t for batch in zip_longest(*per_name) for t in batch if t is not None]

    def make(self, task: Task) -> ScienceworldEnv:
        if self.busy:
            raise RuntimeError(
                "this ScienceWorld source plays one environment at a time; use make_source's pool"
            )
        self.busy = True
        return ScienceworldEnv(self, task, self.max_steps)

    def expert(self, task: Task) -> list[str]:
        name, variation = task.id.rsplit("/", 1)
        sw = self.jvm()
        try:
            sw.load(name, int(variation), self.cfg.simplification, generateGoldPath=True)
            return list(sw.get_gold_action_sequence())
        except _jvm_errors() as err:
            self.drop_jvm()
            raise EnvCrashed(f"ScienceWorld's JVM died: {err}") from err
