"""A promotion round of SAPO (every `skills.promote_every` iterations): each candidate promoted
or discarded by the gate, optionally re-vetted on fresh tasks, the bank pruned, and the
generator loss's rows for the policy-written candidates decided (METHOD.md section 3).
`SkillVetting.promote` and `SkillVetting.revet` call these."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from skillvet.envs.protocol import TaskSource
from skillvet.policy.hf import Policy
from skillvet.skills.bank import StoredSkill, paired_measurements
from skillvet.skills.gate import (
    Candidate,
    generator_weights,
    matched_rewards,
    pair_seeds,
    promotion,
    pruning,
    utility,
)
from skillvet.skills.score import likelihood
from skillvet.types import Decision, GeneratorRows, Task

if TYPE_CHECKING:
    from skillvet.skills.sapo import SkillVetting


def revet(
    vetting: SkillVetting,
    policy: Policy,
    source: TaskSource,
    pool: Sequence[Task],
    skill: StoredSkill,
    seed: int,
) -> tuple:
    """U of a stored candidate measured again, on K fresh train tasks of its types (none it was
    measured on) with fresh sampling seeds: (Utility, measurements), or None without tasks."""
    cfg, sk = vetting.cfg, vetting.sk
    seen = {m["task"] for m in vetting.bank.measurements(skill.id)}
    fresh = [t for t in pool if t.task_type in skill.task_types and t.id not in seen]
    if not fresh:
        return None
    rng = np.random.default_rng([seed, skill.id])
    tasks = [
        fresh[int(i)]
        for i in rng.choice(len(fresh), size=min(sk.cluster_size, len(fresh)), replace=False)
    ]
    half = cfg.train.group_size // 2
    seeds = pair_seeds(int(rng.integers(2**62)), len(tasks), half)
    retrieved: dict[str, list[StoredSkill]] = {}
    base = vetting.play_half(policy, source, tasks, seeds, retrieved)
    augmented = vetting.play_half(
        policy, source, tasks, seeds, retrieved, {t.id: skill.skill for t in tasks}
    )
    base_KP, aug_KP, task_ids = matched_rewards(base, augmented, range(len(tasks)), half)
    if not base_KP:
        return None
    measured = utility(base_KP, aug_KP, sk.confidence)
    return measured, paired_measurements(task_ids, base_KP, aug_KP)

def promote_round(
    vetting: SkillVetting,
    policy: Policy,
    iteration: int,
    source: TaskSource | None = None,
    pool: Sequence[Task] = (),
    seed: int = 0,
) -> tuple[GeneratorRows | None, dict]:
    """Decide every candidate (promote or discard), prune the bank, in one transaction.
    With `skills.revet`, a candidate that passes the gate is measured again on fresh tasks of
    its types from `pool` (played in `source`) and promoted only if it passes there too.
    The pruning score of a skill is its mean likelihood over the tasks of its types played in
    the last `skills.prune_window` iterations. Returns the generator loss's rows for the
    policy-written skills decided here."""
    sk = vetting.sk
    t0 = time.time()
    goals = vetting.bank.recent_goals(iteration - sk.prune_window)
    queue = vetting.bank.skills("candidate")
    bank = vetting.bank.skills("promoted")
    bank_E = (
        np.stack([s.embedding for s in bank]) if bank else np.zeros((0, 1), dtype=np.float32)
    )
    decisions = promotion(
        [
            Candidate(
                s.id,
                s.utility or 0.0,
                s.utility_lo if s.utility_lo is not None else -math.inf,
                s.embedding,
            )
            for s in queue
        ],
        bank_E,
        [s.id for s in bank],
        top=sk.promote_top,
        novelty=sk.novelty,
        require_lcb=sk.require_lcb,
        gate=sk.gate,
    )
    revetted = 0
    if sk.revet and sk.gate:
        if source is None:
            raise ValueError(
                "skills.revet needs the task source and pool to measure candidates again"
            )
        revetted = _revet_promoted(vetting, decisions, queue, policy, source, pool, iteration, seed)
    promoted_ids = {d.skill_id for d in decisions if d.kind == "promoted"}
    after = [*bank, *[s for s in queue if s.id in promoted_ids]]
    scores = _pruning_scores(policy, after, goals) if sk.scoring else [None] * len(after)
    pruned = pruning(
        [s.id for s in after],
        scores,
        [s.utility for s in after],
        capacity=sk.capacity,
        margin=sk.prune_margin,
        protected=promoted_ids,
    )
    vetting.bank.apply(iteration, [*decisions, *pruned])

    rows = _generator_rows(vetting, queue, promoted_ids)
    known = [x for x in scores if x is not None]
    stats = {
        "skills_promoted": len(promoted_ids),
        "skills_revetted": revetted,
        "skills_discarded": sum(d.kind == "discarded" for d in decisions),
        "skills_pruned": len(pruned),
        "skills_bank_size": len(after) - len(pruned),
        "skills_score_mean": float(np.mean(known)) if known else None,
        "skills_generator_rows": len(rows.prompts) if rows else 0,
        "time_promote_s": round(time.time() - t0, 3),
    }
    return rows, stats

def _revet_promoted(
    vetting: SkillVetting,
    decisions: list[Decision],
    queue: Sequence[StoredSkill],
    policy: Policy,
    source: TaskSource,
    pool: Sequence[Task],
    iteration: int,
    seed: int,
) -> int:
    """Measure each candidate the gate promoted again on fresh tasks; one that fails there is
    discarded instead (`decisions` is updated in place). Returns how many were measured."""
    by_id = {s.id: s for s in queue}
    revetted = 0
    for j, d in enumerate(decisions):
        again = (
            revet(vetting, policy, source, pool, by_id[d.skill_id], seed)
            if d.kind == "promoted"
            else None
        )
        if again is None:
            continue
        measured, rows = again
        vetting.bank.add_measurements(d.skill_id, iteration, rows)
        revetted += 1
        figures = {
            **d.figures,
            "revet_U": measured.value,
            "revet_lo": _finite(measured.lo),
            "revet_hi": _finite(measured.hi),
            "revet_tasks": [m.task for m in rows],
        }
        passed = measured.value > 0 and (not vetting.sk.require_lcb or measured.lo > 0)
        reason = (
            f"{d.reason}; re-vetted on {len(rows)} fresh tasks: U = {measured.value:+.3f}"
            + (
                ""
                if passed
                else " is not above 0"
                if measured.value <= 0
                else ", lower bound not above 0"
            )
        )
        decisions[j] = Decision(
            d.skill_id, "promoted" if passed else "discarded", reason, figures
        )
    return revetted

def _pruning_scores(
    policy: Policy, skills: Sequence[StoredSkill], goals: Sequence[tuple[str, str]]
) -> list[float | None]:
    """Each skill's mean likelihood over the recent goals of its types (None: no such goal)."""
    pairs, owners = [], []
    for j, s in enumerate(skills):
        for task_type, goal in goals:
            if task_type in s.task_types:
                pairs.append((goal, s.skill))
                owners.append(j)
    values = likelihood(policy, pairs) if pairs else np.zeros(0)
    scores: list[float | None] = []
    for j in range(len(skills)):
        mine = [v for o, v in zip(owners, values) if o == j]
        scores.append(float(np.mean(mine)) if mine else None)
    return scores

def _generator_rows(
    vetting: SkillVetting, queue: Sequence[StoredSkill], promoted_ids: set[int]
) -> GeneratorRows | None:
    """The generator loss's rows: the policy-written candidates decided now, weighted by U."""
    written = [s for s in queue if s.writer == "policy" and s.induction]
    w_S = generator_weights(
        [s.utility or 0.0 for s in written],
        [s.id in promoted_ids for s in written],
        vetting.sk.gen_discard_weight,
    )
    kept = [(s, float(w)) for s, w in zip(written, w_S) if w != 0.0]
    if not kept:
        return None
    return GeneratorRows(
        [s.induction["prompt_ids"] for s, _ in kept],
        [s.induction["response_ids"] for s, _ in kept],
        [w for _, w in kept],
        vetting.sk.gen_coef,
    )


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
