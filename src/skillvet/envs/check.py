"""Replay an environment's expert on a set of tasks and report how it went."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from skillvet.envs.protocol import TaskSource
from skillvet.types import Task


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
        env = source.make(task)
        try:
            result = env.reset()
            for action in plan:
                if result.done:
                    break
                result = env.step(action)
                report.steps += 1
        finally:
            env.close()
        report.env_seconds += time.perf_counter() - start
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
