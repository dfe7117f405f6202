"""Replay an environment's expert: one episode (`play_expert`, which the warm start and the skill
inducers build on) or a set of tasks with a report of how it went (`replay_expert`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from skillvet.envs.protocol import TaskSource
from skillvet.types import StepResult, Task


@dataclass(frozen=True)
class Played:
    """One step of an expert episode: the action taken where `before` stood."""

    before: StepResult
    action: str
    due: str
    """The expert's action due at `before`: `action` itself, or for a detour the expert action
    that still follows it."""
    detour: bool = False


@dataclass(frozen=True)
class ExpertEpisode:
    first: StepResult
    """The reset's result."""
    steps: list[Played]
    last: StepResult
    """The result of the last step (the reset's, for an empty plan)."""


Detour = Callable[[int, StepResult, list[str]], "str | None"]
"""(index of the expert's next action, the current result, the actions so far) -> an action to
take first, or None."""


def play_expert(
    source: TaskSource, task: Task, plan: list[str] | None = None, detour: Detour | None = None
) -> ExpertEpisode:
    """Play `task` with the expert's `plan` (`source.expert(task)` if omitted) until it ends.

    `detour`, when given, is asked before each expert action for an action to take first; the
    expert's plan then goes on from wherever that leaves the episode."""
    plan = source.expert(task) if plan is None else plan
    env = source.make(task)
    steps: list[Played] = []
    try:
        result = first = env.reset()
        for k, action in enumerate(plan):
            side = detour(k, result, [p.action for p in steps]) if detour else None
            for taken, aside in ((side, True), (action, False)):
                if taken is None or result.done:
                    continue
                steps.append(Played(result, taken, action, aside))
                result = env.step(taken)
            if result.done:
                break
    finally:
        env.close()
    return ExpertEpisode(first, steps, result)


@dataclass
class ExpertReport:
    episodes: int = 0
    wins: int = 0
    steps: int = 0
    env_seconds: float = 0.0
    """Time spent inside the environment: make, reset and step (not planning the expert)."""
    errors: int = 0
    by_type: dict[str, list[int]] = field(default_factory=dict)
    """Task type -> [wins, episodes]."""
    failures: list[str] = field(default_factory=list)

    @property
    def success_rate(self) -> float:
        return self.wins / self.episodes if self.episodes else 0.0

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.env_seconds if self.env_seconds else 0.0

    def as_dict(self) -> dict:
        return {
            "success_rate": self.success_rate,
            "episodes": self.episodes,
            "wins": self.wins,
            "mean_steps": self.steps / self.episodes if self.episodes else 0.0,
            "steps_per_second": self.steps_per_second,
            "errors": self.errors,
            "by_type": {
                t: {"success_rate": w / n, "episodes": n}
                for t, (w, n) in sorted(self.by_type.items())
            },
            "failures": self.failures,
        }


def replay_expert(
    source: TaskSource, tasks: list[Task], on_episode: Callable[[ExpertReport], None] | None = None
) -> ExpertReport:
    """Play each task with the source's expert actions; the episode counts as won if `won`."""
    report = ExpertReport()
    for task in tasks:
        plan = source.expert(task)
        start = time.perf_counter()
        episode = play_expert(source, task, plan)
        report.env_seconds += time.perf_counter() - start
        result = episode.last
        report.steps += len(episode.steps)
        report.episodes += 1
        report.wins += result.won
        report.errors += result.error is not None
        tally = report.by_type.setdefault(task.task_type, [0, 0])
        tally[0] += result.won
        tally[1] += 1
        if not result.won:
            report.failures.append(task.id)
        if on_episode is not None:
            on_episode(report)
    return report
