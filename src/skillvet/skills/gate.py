"""Marginal utility of a candidate skill and the promotion gate (pure functions).

u(x, s) = mean reward of the augmented half - mean reward of the base half, for task x
(METHOD.md section 3, step 6). The halves are matched pairs: rollout n of the base half and
rollout n of the augmented half start from the same state with the same sampling seed.
U(s) = mean of u over the tasks the skill was measured on.

Confidence interval (section 4): Student t over the per-task u when there are at least two
tasks (tasks are the independent units; pairs inside a task share the task), otherwise over the
pair differences of the one task. With fewer than two units the interval is unbounded.

Promotion (step 9), over the candidates Q of one round: a candidate is promoted iff U > 0 (and,
with `require_lcb`, its lower bound > 0), it is in the top `rho` share of Q by U, and its
cosine similarity to every skill in the bank (and to those promoted before it in the same
round) is below `novelty`. The rest of Q is discarded, each with its reason. Without the gate
(ablation) every candidate is promoted.

Pruning (step 10): a bank skill whose likelihood score falls below the bank's median minus a
margin is pruned; when the bank is over capacity the lowest-scored go first. Beyond the paper:
the scores are taken over a rolling window of recent tasks of each skill's types (not only the
promotion iteration's), a skill is never pruned in the round that promoted it, and where some
skill has no score the capacity cut ranks by U.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from skillvet.stats import t_interval
from skillvet.types import Decision, Episode


@dataclass(frozen=True)
class Utility:
    value: float
    """U: mean of the per-task u."""
    lo: float
    hi: float
    per_task: tuple[float, ...]
    pairs: int


def task_utility(base_P: Sequence[float], augmented_P: Sequence[float]) -> float:
    """u for one task: mean augmented reward minus mean base reward."""
    if not base_P or not augmented_P:
        raise ValueError("a task needs rewards in both halves")
    return float(np.mean(augmented_P) - np.mean(base_P))


def utility(
    base_KP: Sequence[Sequence[float]], augmented_KP: Sequence[Sequence[float]], confidence: float
) -> Utility:
    """U and its interval from K tasks' matched halves (rewards of pair p at [k][p])."""
    if len(base_KP) != len(augmented_KP) or not base_KP:
        raise ValueError("need the same tasks, at least one, in both halves")
    u_K = [task_utility(b, a) for b, a in zip(base_KP, augmented_KP)]
    if len(u_K) >= 2:
        lo, hi = t_interval(u_K, confidence)
    else:
        lo, hi = t_interval([a - b for a, b in zip(augmented_KP[0], base_KP[0])], confidence)
    pairs = sum(min(len(b), len(a)) for b, a in zip(base_KP, augmented_KP))
    return Utility(float(np.mean(u_K)), lo, hi, tuple(u_K), pairs)


@dataclass(frozen=True)
class Candidate:
    id: int
    utility: float
    lo: float
    embedding: np.ndarray


def promotion(
    candidates: Sequence[Candidate],
    bank_E: np.ndarray,
    bank_ids: Sequence[int],
    *,
    top: float,
    novelty: float,
    require_lcb: bool,
    gate: bool = True,
) -> list[Decision]:
    """One promotion round: a decision (promoted or discarded) for every candidate."""
    if not gate:
        return [
            Decision(c.id, "promoted", "no gate: every candidate is stored", {"U": c.utility})
            for c in candidates
        ]
    ranked = sorted(candidates, key=lambda c: (-c.utility, c.id))
    n_top = math.ceil(top * len(ranked))
    kept_E = (
        list(np.asarray(bank_E, dtype=np.float32).reshape(len(bank_ids), -1))
        if len(bank_ids)
        else []
    )
    kept_ids = list(bank_ids)
    decisions = []
    for rank, c in enumerate(ranked):
        figures = {"U": c.utility, "lo": c.lo, "rank": rank + 1, "of": len(ranked)}
        if c.utility <= 0:
            decisions.append(
                Decision(c.id, "discarded", f"U = {c.utility:+.3f} is not above 0", figures)
            )
            continue
        if rank >= n_top:
            decisions.append(
                Decision(
                    c.id,
                    "discarded",
                    f"rank {rank + 1} of {len(ranked)}: not in the top {top:.0%} by U",
                    figures,
                )
            )
            continue
        if require_lcb and not c.lo > 0:
            decisions.append(
                Decision(c.id, "discarded", f"lower bound {c.lo:+.3f} is not above 0", figures)
            )
            continue
        if kept_E:
            sims = np.stack(kept_E) @ c.embedding
            j = int(np.argmax(sims))
            if sims[j] >= novelty:
                figures["similarity"] = float(sims[j])
                decisions.append(
                    Decision(
                        c.id,
                        "discarded",
                        f"not novel: similarity {sims[j]:.2f} to skill {kept_ids[j]}",
                        figures,
                    )
                )
                continue
        decisions.append(
            Decision(
                c.id,
                "promoted",
                f"U = {c.utility:+.3f} > 0, rank {rank + 1} of {len(ranked)}, novel",
                figures,
            )
        )
        kept_E.append(c.embedding)
        kept_ids.append(c.id)
    return decisions


def pruning(
    ids: Sequence[int],
    scores: Sequence[float | None],
    utilities: Sequence[float | None],
    *,
    capacity: int,
    margin: float,
    protected: Iterable[int] = (),
) -> list[Decision]:
    """Skills to prune from a bank of `ids`: scores below median - margin, then the lowest over
    capacity. Skills in `protected` (promoted in this round) are never pruned, though they count
    towards capacity. Over capacity, skills rank by their score when every one of them has one,
    else by U (a score and a U cannot be compared; a skill never measured ranks lowest)."""
    keep = set(protected)
    decisions: list[Decision] = []
    known = [s for s in scores if s is not None]
    median = float(np.median(known)) if known else None
    alive = []
    for sid, score, u in zip(ids, scores, utilities):
        if (
            sid not in keep
            and median is not None
            and score is not None
            and len(known) >= 3
            and score < median - margin
        ):
            decisions.append(
                Decision(
                    sid,
                    "pruned",
                    f"score {score:.3f} below the bank's median {median:.3f} - {margin}",
                    {"score": score, "median": median},
                )
            )
        else:
            alive.append((sid, score, u))
    over = len(alive) - capacity
    if over > 0:
        candidates = [a for a in alive if a[0] not in keep]
        by_score = all(score is not None for _, score, _ in candidates)

        def key(item):
            _, score, u = item
            if by_score:
                return score
            return u if u is not None else -math.inf

        what = "lowest score" if by_score else "lowest U (not every skill had a score)"
        for sid, score, u in sorted(candidates, key=key)[:over]:
            decisions.append(
                Decision(
                    sid,
                    "pruned",
                    f"bank over capacity {capacity}: {what}",
                    {"score": score, "U": u},
                )
            )
    return decisions


def generator_weights(
    utilities: Sequence[float], promoted: Sequence[bool], discard_weight: float
) -> np.ndarray:
    """The weights w of SAPO's generator loss -sum_s w_s * mean_token log pi(s | c), one per
    policy-written skill decided in a round, scaled so that sum |w| = 1 (all 0 when none count).

    w = U for a promoted skill with U > 0 (learn to write it); w = -discard_weight * |U| for any
    skill with U <= 0, promoted without the gate or not (learn not to); w = 0 for a skill with
    U > 0 that lost only on rank, novelty or its lower bound: it did help, so it is not pushed
    down. The scaling keeps the term's size that of `skills.gen_coef` whatever U's units
    (rewards of 10 per success) and however many skills a round decides; the paper leaves it
    unscaled, which lets one round's raw U outweigh the actor loss.
    """
    u_S = np.asarray(utilities, dtype=np.float64)
    kept_S = np.asarray(promoted, dtype=bool)
    if u_S.shape != kept_S.shape:
        raise ValueError("need one promoted flag per utility")
    w_S = np.where(u_S > 0, np.where(kept_S, u_S, 0.0), -discard_weight * np.abs(u_S))
    total = np.abs(w_S).sum()
    return w_S / total if total > 0 else w_S


def pair_seeds(base_seed: int, groups: int, half: int) -> list[int]:
    """One sampling seed per (task, pair), shared by the pair's base and augmented rollouts."""
    state = np.random.SeedSequence([base_seed, 7]).generate_state(groups * half)
    return [int(s) for s in state]


def matched_rewards(
    base: Sequence[Episode], augmented: Sequence[Episode], groups: Sequence[int], half: int
) -> tuple[list[list[float]], list[list[float]], list[str]]:
    """Per task in `groups`: the rewards of the pairs where neither environment crashed."""
    by = {(e.group, e.index): e for e in [*base, *augmented]}
    base_KP, aug_KP, task_ids = [], [], []
    for g in groups:
        b_row, a_row = [], []
        for n in range(half):
            b, a = by.get((g, n)), by.get((g, half + n))
            if b is None or a is None or b.error is not None or a.error is not None:
                continue
            b_row.append(b.reward)
            a_row.append(a.reward)
        if b_row:
            base_KP.append(b_row)
            aug_KP.append(a_row)
            task_ids.append(by[(g, 0)].task.id if (g, 0) in by else str(g))
    return base_KP, aug_KP, task_ids
