"""The environment protocol: a tiny interface every environment implements.

An `Env` is made for one task, used for one episode, then closed:

    env = source.make(task)
    result = env.reset()
    while not result.done:
        result = env.step(action_text)
    env.close()

A `TaskSource` lists an environment's tasks by split, makes environments, and knows an expert
action sequence for each task (used by `skillvet env check` and supervised warm starts).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Protocol

from skillvet.types import StepResult, Task

NOTHING_HAPPENS = "Nothing happens."
"""ALFWorld's answer to an action it cannot carry out; every skillvet environment uses it."""


class Env(Protocol):
    def reset(self) -> StepResult: ...

    def step(self, action: str) -> StepResult: ...

    def close(self) -> None: ...


class TaskSource(Protocol):
    name: str

    def splits(self) -> dict[str, int]:
        """Split name -> number of tasks."""
        ...

    def tasks(self, split: str) -> list[Task]: ...

    def make(self, task: Task) -> Env:
        """A fresh environment for `task`; every call starts from the same initial state."""
        ...

    def expert(self, task: Task) -> list[str]:
        """An action sequence that solves `task` from its initial state."""
        ...


class EnvCrashed(RuntimeError):
    """The process behind an environment died; the episode cannot go on."""


_SPACES = re.compile(r"\s+")


def normalize_action(text: str) -> str:
    """Case and spacing do not matter when an action is matched to an admissible one."""
    return _SPACES.sub(" ", text).strip().lower()


def match_admissible(text: str, admissible: Sequence[str]) -> str | None:
    """The admissible action `text` names, or None."""
    wanted = normalize_action(text)
    for action in admissible:
        if normalize_action(action) == wanted:
            return action
    return None


def make_group(source: TaskSource, task: Task, n: int) -> list[Env]:
    """N environments of the same task, all starting from the same initial state."""
    if n < 1:
        raise ValueError(f"a group needs at least one environment, got n={n}")
    return [source.make(task) for _ in range(n)]


EVAL_SEED_BASE = 1_000_000
"""Procedural environments draw train tasks from seeds 0, 1, ... and eval tasks from here on."""


def seeded_tasks(
    env: str,
    split: str,
    count: int,
    task_types: Sequence[str],
    task_id: Callable[[int, str], str] = lambda seed, task_type: str(seed),
) -> list[Task]:
    """Tasks of a procedural environment: one seed each, the task types taking turns, so that
    any prefix of the list covers every type."""
    base = 0 if split == "train" else EVAL_SEED_BASE
    types = [task_types[i % len(task_types)] for i in range(count)]
    return [Task(env, split, task_id(base + i, t), t) for i, t in enumerate(types)]


def check_split(source: TaskSource, split: str) -> None:
    known = source.splits()
    if split not in known:
        raise ValueError(f"{source.name} has no split {split!r}; splits: {', '.join(known)}")
