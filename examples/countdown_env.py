"""A complete plug-in environment in one file: count a number down to zero.

    skillvet env check examples.countdown_env:make_source --expert
    skillvet train env.name=examples.countdown_env:make_source env.options.start_max=6

Each task starts at a number from 1 to `start_max` (env.options); the actions are
"subtract 1" and "subtract 2" while the number allows them, and the episode is won when it
reaches 0. The anchor (GiGPO's step groups) is the number itself.
"""

from __future__ import annotations

from skillvet.envs.protocol import NOTHING_HAPPENS, normalize_action
from skillvet.types import SUCCESS_REWARD, StepResult, Task


class CountdownEnv:
    def __init__(self, start: int, max_steps: int) -> None:
        self.start, self.max_steps = start, max_steps

    def _result(self, observation: str, valid: bool = True) -> StepResult:
        won = self.value == 0
        actions = tuple(f"subtract {k}" for k in (1, 2) if k <= self.value)
        return StepResult(
            observation=observation,
            reward=SUCCESS_REWARD if won else 0.0,
            done=won or self.steps >= self.max_steps,
            task=f"count {self.start} down to 0",
            task_type="countdown",
            anchor=self.value,
            admissible=actions,
            won=won,
            action_valid=valid,
        )

    def reset(self) -> StepResult:
        self.value, self.steps = self.start, 0
        return self._result(f"The number is {self.value}.")

    def step(self, action: str) -> StepResult:
        self.steps += 1
        chosen = normalize_action(action)
        if chosen not in ("subtract 1", "subtract 2") or int(chosen[-1]) > self.value:
            return self._result(NOTHING_HAPPENS, valid=False)
        self.value -= int(chosen[-1])
        return self._result(f"The number is {self.value}.")

    def close(self) -> None:
        pass


class CountdownSource:
    name = "countdown"

    def __init__(self, start_max: int, max_steps: int) -> None:
        self.start_max, self.max_steps = start_max, max_steps

    def splits(self) -> dict[str, int]:
        return {"train": 200, "eval": 50}

    def tasks(self, split: str) -> list[Task]:
        offset = 0 if split == "train" else 10_000
        return [
            Task("countdown", split, str(offset + i), "countdown")
            for i in range(self.splits()[split])
        ]

    def _start(self, task: Task) -> int:
        return 1 + int(task.id) * 7919 % self.start_max

    def make(self, task: Task) -> CountdownEnv:
        return CountdownEnv(self._start(task), self.max_steps)

    def expert(self, task: Task) -> list[str]:
        n = self._start(task)
        return ["subtract 2"] * (n // 2) + ["subtract 1"] * (n % 2)


def make_source(cfg) -> CountdownSource:
    """skillvet calls this with the EnvConfig; the environment's own settings are cfg.options."""
    unknown = set(cfg.options) - {"start_max"}
    if unknown:
        raise ValueError(f"env.options: countdown has no setting {sorted(unknown)}")
    return CountdownSource(int(cfg.options.get("start_max", 6)), cfg.max_steps)
