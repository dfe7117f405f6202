"""Evaluation: play the first tasks of a split once each and report success, overall and per
task type, each with its 95% Wilson interval.

Each task's episode samples from its own generator, seeded by (seed, task's place in the list):
what a task's episode draws does not depend on the batch it shares, so an eval split over
batches or over processes (`skillvet.distributed`) plays what one batch would."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np

from skillvet.envs.protocol import TaskSource
from skillvet.policy.hf import Policy
from skillvet.rollout import rollout
from skillvet.stats import format_rate, invalid_words, wilson_interval
from skillvet.types import Episode, Task


def episode_seeds(seed: int, count: int) -> list[int]:
    """One sampling seed per episode, for episodes 0..count-1 of a rollout seeded by `seed`
    (a prefix of a longer list is the shorter list)."""
    return [int(s) for s in np.random.SeedSequence([seed, 5]).generate_state(count)]


def summarize(episodes: Sequence[Episode]) -> dict:
    """success_rate, episodes, mean_steps, invalid_rate, errors and by_type for a set of
    episodes; `invalid_by_word`: the invalid actions as shares of all steps by their first word
    ("take", "go", ...; "(none)" for an answer that held no action), `invalid_repeats`: the
    share of steps that are invalid and repeat the action before them (an agent stuck in a
    loop)."""
    by_type: dict[str, list[Episode]] = defaultdict(list)
    for e in episodes:
        by_type[e.task.task_type].append(e)
    steps = sum(len(e.steps) for e in episodes)
    wins = sum(e.won for e in episodes)
    return {
        "success_rate": wins / max(len(episodes), 1),
        "successes": wins,
        "episodes": len(episodes),
        "ci95": list(wilson_interval(wins, len(episodes))),
        "mean_steps": steps / max(len(episodes), 1),
        "invalid_rate": sum(e.invalid_steps for e in episodes) / max(steps, 1),
        "errors": sum(e.error is not None for e in episodes),
        **_invalid_actions(episodes, steps),
        "by_type": {t: _rate(es) for t, es in sorted(by_type.items())},
    }


def _invalid_actions(episodes: Sequence[Episode], steps: int) -> dict:
    words: dict[str, int] = defaultdict(int)
    repeats = 0
    for e in episodes:
        for before, step in zip([None, *e.steps], e.steps):
            if step.valid:
                continue
            words[step.action.split(" ", 1)[0] if step.action else "(none)"] += 1
            repeats += before is not None and step.action == before.action
    return {
        "invalid_by_word": {
            w: n / max(steps, 1) for w, n in sorted(words.items(), key=lambda kv: -kv[1])
        },
        "invalid_repeats": repeats / max(steps, 1),
    }


def _rate(episodes: Sequence[Episode]) -> dict:
    wins = sum(e.won for e in episodes)
    return {
        "success_rate": wins / len(episodes),
        "successes": wins,
        "episodes": len(episodes),
        "ci95": list(wilson_interval(wins, len(episodes))),
    }


def format_summary(summary: dict, indent: str = "  ") -> str:
    """Lines for a summary: the success rate with its 95% interval and counts, then one line per
    task type."""
    lines = [
        f"{format_rate(summary['successes'], summary['episodes'])} · mean steps "
        f"{summary['mean_steps']:.1f} "
        f"· invalid actions {summary['invalid_rate']:.1%} · env errors {summary['errors']}"
    ]
    if summary.get("invalid_by_word"):
        lines[0] += (
            f"\n{indent}invalid actions of all steps: {invalid_words(summary, 4)} · repeating "
            f"the step before {summary['invalid_repeats']:.1%}"
        )
    for task_type, row in summary["by_type"].items():
        lines.append(f"{indent}{task_type:<24} {format_rate(row['successes'], row['episodes'])}")
    return "\n".join(lines)


def evaluate(
    policy: Policy,
    source: TaskSource,
    tasks: Sequence[Task],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    history_length: int = 2,
    seed: int = 0,
    seeds: Sequence[int] | None = None,
    batch_size: int = 64,
    on_episodes: Callable[[int], None] | None = None,
    skills: Callable[[Task, str], Sequence[str]] | None = None,
    skills_section: bool = False,
    admissible_only: bool = False,
) -> tuple[dict, list[Episode]]:
    """Each task once; greedy when temperature is 0. Returns the summary and the episodes.

    `skills(task, goal)` gives the skill texts shown for a task (a run's bank, for SAPO runs);
    `skills_section` shows the prompt's skills section even when a task has none (SAPO runs).
    `seeds` (one per task) replaces the seeds drawn from `seed`.
    `admissible_only` samples answers among the admissible actions (`sampling.admissible_only`).
    """
    seeds = list(seeds) if seeds is not None else episode_seeds(seed, len(tasks))
    episodes: list[Episode] = []
    for start in range(0, len(tasks), batch_size):
        chunk = tasks[start : start + batch_size]
        episodes += rollout(
            policy,
            source,
            chunk,
            1,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            history_length=history_length,
            sampling_seeds=seeds[start : start + batch_size],
            skills=skills,
            skills_section=skills_section,
            admissible_only=admissible_only,
        )
        if on_episodes is not None:
            on_episodes(len(chunk))
    return summarize(episodes), episodes
