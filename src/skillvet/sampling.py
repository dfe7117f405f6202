"""Which train tasks an iteration plays (pure functions of the pool and a seeded generator).

Uniform sampling is GiGPO's; SAPO samples clusters of K tasks of one type so that one candidate
skill serves the cluster. A baseline compared with SAPO samples the same way
(`train.task_clusters`), so that the arms differ in the skill bank alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from skillvet.types import Task


def uniform_tasks(pool: Sequence[Task], count: int, rng: np.random.Generator) -> list[Task]:
    """`count` distinct tasks, uniformly."""
    return [pool[i] for i in rng.choice(len(pool), count, replace=False)]


def clustered_tasks(
    pool: Sequence[Task], count: int, k: int, rng: np.random.Generator
) -> list[Task]:
    """`count` tasks in count/k clusters of k tasks of one type (distinct types while they last;
    a type drawn twice gives distinct tasks to both clusters)."""
    by_type: dict[str, list[Task]] = {}
    for t in pool:
        by_type.setdefault(t.task_type, []).append(t)
    types = sorted(t for t, ts in by_type.items() if len(ts) >= k)
    if not types:
        raise ValueError(f"no task type of the train split has {k} tasks (the cluster size)")
    n = count // k
    chosen = [types[int(i)] for i in rng.choice(len(types), size=n, replace=n > len(types))]
    tasks: list[Task] = []
    for t in sorted(set(chosen), key=chosen.index):
        members = by_type[t]
        size = min(k * chosen.count(t), len(members) - len(members) % k)
        tasks += [members[int(j)] for j in rng.choice(len(members), size=size, replace=False)]
    return tasks
