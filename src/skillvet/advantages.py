"""Group-relative advantages: GiGPO, GRPO and RLOO, as pure vectorised numpy functions.

Every function works on flat per-row arrays. For GiGPO a row is one agent step; for GRPO and
RLOO a row is one trajectory. Group ids, trajectory ids and anchors may be any hashable values
(strings, ints, tuples) or numpy arrays; they are turned into integer codes once, and all the
arithmetic is then `np.bincount` over those codes: no Python loop over rows.

Equation numbers refer to GiGPO (Feng et al., arXiv 2505.10978); "the reference" is its code,
verl-agent `gigpo/core_gigpo.py`, against which `tests/test_reference_fixture.py` checks every
output to 1e-4.

Choices, all as in the reference unless named otherwise:
- Standard deviations are unbiased (n - 1). "mean_std" divides by (std + eps); "mean" only
  subtracts the mean.
- Episode statistics, `episode_stats="steps"` (reference, default): every step row of an
  episode group is one sample, so long trajectories weigh more. `"trajectories"` (the paper's
  Eq. 3): one sample per trajectory, the trajectory's score being the mean of its rows' scores
  (equal to its return when, as in the paper, the score is constant along the trajectory).
- An episode group with a single sample has mean 0 and std 1: its advantage is its raw score
  (divided by 1 + eps under "mean_std"). A step group with a single row has advantage 0.
- Step groups (Eq. 6): rows of the same episode group whose anchors are equal, across
  trajectories and time steps. The optional similarity mode clusters text anchors greedily in
  row order: a row joins the first cluster whose first member has difflib ratio >= threshold.
- Discounted step returns (Eq. 5) are ordered by each row's time step, not by row order, so
  rows may arrive shuffled.
"""

from __future__ import annotations

import difflib
from collections.abc import Hashable, Sequence
from typing import Literal

import numpy as np

Norm = Literal["mean_std", "mean"]
EpisodeStats = Literal["steps", "trajectories"]

__all__ = [
    "anchor_groups",
    "discounted_returns",
    "episode_advantages",
    "factorize",
    "gigpo_advantages",
    "grpo_advantages",
    "rloo_advantages",
    "step_advantages",
]


# --------------------------------------------------------------------------------------------
# Labels -> integer codes
# --------------------------------------------------------------------------------------------


def _hashable_key(x: object) -> Hashable:
    """A hashable stand-in for an unhashable anchor: arrays keep shape and dtype, lists nest."""
    if isinstance(x, np.ndarray):
        a = np.ascontiguousarray(x)
        return ("ndarray", a.shape, a.dtype.str, a.tobytes())
    if isinstance(x, list):
        return ("list", *(_hashable_key(e) for e in x))
    return x


def _first_occurrence_codes(inverse_N: np.ndarray, first_U: np.ndarray) -> np.ndarray:
    """Relabel `np.unique` codes so that labels count up in order of first appearance."""
    rank_U = np.empty(len(first_U), dtype=np.int64)
    rank_U[np.argsort(first_U, kind="stable")] = np.arange(len(first_U))
    return rank_U[inverse_N]


def factorize(labels: Sequence[Hashable] | np.ndarray) -> np.ndarray:
    """Integer codes 0..k-1 for `labels`, numbered in order of first appearance.

    `labels` is a sequence of hashable values or numpy arrays, or an ndarray whose first axis
    indexes rows (a `(N, H, W)` array is N anchors of shape `(H, W)`).
    """
    if isinstance(labels, np.ndarray) and labels.dtype != object:
        n = labels.shape[0]
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        rows = labels.reshape(n, -1) if labels.ndim > 1 else labels
        if labels.ndim > 1:  # compare whole rows as raw bytes
            rows = np.ascontiguousarray(rows)
            rows = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
        _, first_U, inverse_N = np.unique(rows, return_index=True, return_inverse=True)
        return _first_occurrence_codes(inverse_N.ravel(), first_U)

    keys = list(labels)
    try:
        table = dict.fromkeys(keys)  # hashes in C, keeps first-occurrence order
    except TypeError:
        keys = [_hashable_key(k) for k in keys]
        try:
            table = dict.fromkeys(keys)
        except TypeError as err:
            raise TypeError(
                f"labels and anchors must be hashable, lists or numpy arrays: {err}"
            ) from err
    code_of = dict(zip(table, range(len(table))))
    return np.fromiter(map(code_of.__getitem__, keys), dtype=np.int64, count=len(keys))


# --------------------------------------------------------------------------------------------
# Group statistics
# --------------------------------------------------------------------------------------------


def _group_mean_std(
    values_N: np.ndarray, codes_N: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-group mean, unbiased std and size. Groups of one get std 0 here (callers decide)."""
    count_G = np.bincount(codes_N, minlength=n_groups).astype(np.float64)
    mean_G = np.bincount(codes_N, weights=values_N, minlength=n_groups) / count_G
    dev_N = values_N - mean_G[codes_N]
    sq_G = np.bincount(codes_N, weights=dev_N * dev_N, minlength=n_groups)
    std_G = np.sqrt(sq_G / np.maximum(count_G - 1.0, 1.0))
    return mean_G, std_G, count_G


def _check_norm(norm: str, eps: float) -> None:
    if norm not in ("mean_std", "mean"):
        raise ValueError(f'norm must be "mean_std" or "mean", got {norm!r}')
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")


def _check_lengths(**arrays: Sequence | np.ndarray) -> int:
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"per-row inputs differ in length: {lengths}")
    return next(iter(lengths.values()))


def _as_float(x: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    out = np.asarray(x, dtype=np.float64)
    if out.ndim != 1:
        raise ValueError(
            f"{name} must be one-dimensional (one value per row), got shape {out.shape}"
        )
    if not np.all(np.isfinite(out)):
        raise ValueError(
            f"{name} holds NaN or inf at rows {np.flatnonzero(~np.isfinite(out))[:10]}"
        )
    return out


# --------------------------------------------------------------------------------------------
# Discounted step returns (GiGPO Eq. 5)
# --------------------------------------------------------------------------------------------


def discounted_returns(
    rewards: Sequence[float] | np.ndarray,
    traj_ids: Sequence[Hashable] | np.ndarray,
    time_steps: Sequence[int] | np.ndarray,
    gamma: float,
) -> np.ndarray:
    """R_t = sum_{k >= t} gamma^(k - t) r_k within each row's own trajectory (Eq. 5).

    Rows may arrive in any order: each trajectory's rows are ordered by `time_steps`, which must
    be distinct within a trajectory (gaps are allowed; the discount counts rows, not the gap).
    Returns float64 `[N]`. The loop runs over time positions (at most the longest trajectory),
    vectorised across trajectories.
    """
    n = _check_lengths(rewards=rewards, traj_ids=traj_ids, time_steps=time_steps)
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    rewards_N = _as_float(rewards, "rewards")
    if n == 0:
        return rewards_N
    traj_N = factorize(traj_ids)
    time_N = np.asarray(time_steps, dtype=np.int64)

    order_N = np.lexsort((time_N, traj_N))  # by trajectory, then by time
    traj_S, time_S = traj_N[order_N], time_N[order_N]
    same_traj = traj_S[1:] == traj_S[:-1]
    if np.any(same_traj & (time_S[1:] == time_S[:-1])):
        dup = order_N[1:][same_traj & (time_S[1:] == time_S[:-1])][0]
        raise ValueError(f"two rows of trajectory {traj_ids[dup]!r} share time step {time_N[dup]}")
    starts = np.flatnonzero(np.r_[True, ~same_traj])
    lengths = np.diff(np.r_[starts, n])
    pos_S = np.arange(n) - np.repeat(starts, lengths)
    row_S = np.repeat(np.arange(len(starts)), lengths)

    padded_TL = np.zeros((len(starts), lengths.max()))
    padded_TL[row_S, pos_S] = rewards_N[order_N]
    running = np.zeros(len(starts))
    for p in range(padded_TL.shape[1] - 1, -1, -1):  # zero padding past each end adds nothing
        running = padded_TL[:, p] + gamma * running
        padded_TL[:, p] = running

    returns_N = np.empty(n)
    returns_N[order_N] = padded_TL[row_S, pos_S]
    return returns_N


# --------------------------------------------------------------------------------------------
# Step groups from anchor states (GiGPO Eq. 6)
# --------------------------------------------------------------------------------------------


def anchor_groups(
    anchors: Sequence[Hashable] | np.ndarray,
    episode_groups: Sequence[Hashable] | np.ndarray,
    similarity: float | None = None,
) -> np.ndarray:
    """Integer step-group labels `[N]`, numbered in order of first appearance.

    Rows share a label iff they are in the same episode group and their anchors are equal
    (exact mode) or, with `similarity=t`, they fall in the same greedy text cluster: in row
    order, each row joins the first cluster of its episode group whose first member has
    `difflib.SequenceMatcher(None, row, first).ratio() >= t`, else starts a new cluster.
    """
    n = _check_lengths(anchors=anchors, episode_groups=episode_groups)
    group_N = factorize(episode_groups)
    if similarity is None:
        anchor_N = factorize(anchors)
        pair_N = group_N * (int(anchor_N.max(initial=0)) + 1) + anchor_N
        return factorize(pair_N)
    if not 0.0 < similarity < 1.0:
        raise ValueError(f"similarity must be in (0, 1), got {similarity}")
    return _similarity_groups(list(anchors), group_N, similarity, n)


class _Cluster:
    """A text cluster, compared through its first member. difflib caches its analysis of seq2,
    so the first member is seq2 and each candidate row is set as seq1; the cheap upper bounds
    real_quick_ratio >= quick_ratio >= ratio skip hopeless comparisons."""

    def __init__(self, first: str, label: int) -> None:
        self.first, self.label = first, label
        self.matcher = difflib.SequenceMatcher(None, "", first)

    def accepts(self, text: str, threshold: float) -> bool:
        if text == self.first:
            return True
        m = self.matcher
        m.set_seq1(text)
        return (
            m.real_quick_ratio() >= threshold
            and m.quick_ratio() >= threshold
            and m.ratio() >= threshold
        )


def _similarity_groups(anchors: list, group_N: np.ndarray, threshold: float, n: int) -> np.ndarray:
    # Greedy and order-dependent by definition, so this one loops over rows.
    labels_N = np.empty(n, dtype=np.int64)
    clusters: dict[int, list[_Cluster]] = {}
    n_clusters = 0
    for i, (text, group) in enumerate(zip(anchors, group_N.tolist())):
        if not isinstance(text, str):
            raise TypeError(
                f"similarity grouping needs text anchors; row {i} is {type(text).__name__}"
            )
        members = clusters.setdefault(group, [])
        found = next((c for c in members if c.accepts(text, threshold)), None)
        if found is None:
            found = _Cluster(text, label=n_clusters)
            n_clusters += 1
            members.append(found)
        labels_N[i] = found.label
    return labels_N


# --------------------------------------------------------------------------------------------
# Episode and step advantages (GiGPO Eq. 3, Eq. 7, Eq. 8)
# --------------------------------------------------------------------------------------------


def episode_advantages(
    episode_scores: Sequence[float] | np.ndarray,
    episode_groups: Sequence[Hashable] | np.ndarray,
    traj_ids: Sequence[Hashable] | np.ndarray,
    *,
    norm: Norm = "mean_std",
    eps: float = 1e-6,
    episode_stats: EpisodeStats = "steps",
) -> np.ndarray:
    """A^E per row (Eq. 3): (score - mean of its episode group) / F, F = std + eps or 1."""
    _check_norm(norm, eps)
    _check_lengths(episode_scores=episode_scores, episode_groups=episode_groups, traj_ids=traj_ids)
    scores_N = _as_float(episode_scores, "episode_scores")
    group_N = factorize(episode_groups)
    n_groups = int(group_N.max(initial=-1)) + 1

    if episode_stats == "steps":
        mean_G, std_G, count_G = _group_mean_std(scores_N, group_N, n_groups)
    elif episode_stats == "trajectories":
        traj_N = factorize(traj_ids)
        n_traj = int(traj_N.max(initial=-1)) + 1
        traj_len = np.bincount(traj_N, minlength=n_traj)
        traj_score = np.bincount(traj_N, weights=scores_N, minlength=n_traj) / traj_len
        traj_group = np.zeros(n_traj, dtype=np.int64)
        traj_group[traj_N] = group_N
        if np.any(traj_group[traj_N] != group_N):
            bad = np.flatnonzero(traj_group[traj_N] != group_N)[0]
            raise ValueError(f"trajectory {traj_ids[bad]!r} appears in more than one episode group")
        mean_G, std_G, count_G = _group_mean_std(traj_score, traj_group, n_groups)
    else:
        raise ValueError(f'episode_stats must be "steps" or "trajectories", got {episode_stats!r}')

    single_G = count_G == 1
    mean_G = np.where(single_G, 0.0, mean_G)
    std_G = np.where(single_G, 1.0, std_G)
    centred_N = scores_N - mean_G[group_N]
    return centred_N / (std_G[group_N] + eps) if norm == "mean_std" else centred_N


def step_advantages(
    step_returns: Sequence[float] | np.ndarray,
    step_groups: Sequence[int] | np.ndarray,
    *,
    norm: Norm = "mean_std",
    eps: float = 1e-6,
) -> np.ndarray:
    """A^S per row (Eq. 7): (return - mean of its step group) / F; a singleton group gives 0."""
    _check_norm(norm, eps)
    _check_lengths(step_returns=step_returns, step_groups=step_groups)
    returns_N = _as_float(step_returns, "step_returns")
    group_N = np.asarray(step_groups, dtype=np.int64)
    mean_G, std_G, count_G = _group_mean_std(returns_N, group_N, int(group_N.max(initial=-1)) + 1)
    std_G = np.where(count_G == 1, 1.0, std_G)
    centred_N = returns_N - mean_G[group_N]
    return centred_N / (std_G[group_N] + eps) if norm == "mean_std" else centred_N


def gigpo_advantages(
    episode_scores: Sequence[float] | np.ndarray,
    step_returns: Sequence[float] | np.ndarray,
    anchors: Sequence[Hashable] | np.ndarray,
    episode_groups: Sequence[Hashable] | np.ndarray,
    traj_ids: Sequence[Hashable] | np.ndarray,
    *,
    step_weight: float = 1.0,
    norm: Norm = "mean_std",
    eps: float = 1e-6,
    episode_stats: EpisodeStats = "steps",
    similarity: float | None = None,
    step_groups: np.ndarray | None = None,
) -> np.ndarray:
    """GiGPO advantage per step row (Eq. 8): A = A^E + step_weight * A^S.

    `episode_scores[i]` is the return of row i's trajectory (the reference subtracts the row's
    own invalid-action penalty); `step_returns[i]` the discounted return from row i's step
    (`discounted_returns`). Pass `step_groups` when `anchor_groups` has already been computed
    (for logging group sizes, say) to avoid grouping twice; `anchors` and `similarity` are then
    not used.
    """
    adv_e = episode_advantages(
        episode_scores, episode_groups, traj_ids, norm=norm, eps=eps, episode_stats=episode_stats
    )
    if step_weight == 0.0:
        return adv_e
    if step_groups is None:
        step_groups = anchor_groups(anchors, episode_groups, similarity=similarity)
    return adv_e + step_weight * step_advantages(step_returns, step_groups, norm=norm, eps=eps)


# --------------------------------------------------------------------------------------------
# Trajectory-level baselines
# --------------------------------------------------------------------------------------------


def grpo_advantages(
    scores: Sequence[float] | np.ndarray,
    groups: Sequence[Hashable] | np.ndarray,
    *,
    norm: Norm = "mean_std",
    eps: float = 1e-6,
) -> np.ndarray:
    """GRPO: one advantage per trajectory, (score - group mean) / (group std + eps).

    A group of one keeps its raw score (mean 0, std 1), as GiGPO's episode level. GRPO equals
    GiGPO with step_weight 0 and `episode_stats="trajectories"`.
    """
    n = _check_lengths(scores=scores, groups=groups)
    return episode_advantages(
        scores, groups, np.arange(n), norm=norm, eps=eps, episode_stats="steps"
    )


def rloo_advantages(
    scores: Sequence[float] | np.ndarray, groups: Sequence[Hashable] | np.ndarray
) -> np.ndarray:
    """RLOO: score minus the mean of the *other* trajectories of its group.

    Equals n / (n - 1) * (score - group mean). A group of one has no baseline and keeps its raw
    score, as in GRPO.
    """
    _check_lengths(scores=scores, groups=groups)
    scores_N = _as_float(scores, "scores")
    group_N = factorize(groups)
    mean_G, _, count_G = _group_mean_std(scores_N, group_N, int(group_N.max(initial=-1)) + 1)
    n_N = count_G[group_N]
    loo_N = np.where(n_N > 1, (scores_N - mean_G[group_N]) * n_N / np.maximum(n_N - 1, 1), scores_N)
    return loo_N
