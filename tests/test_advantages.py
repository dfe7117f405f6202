"""The advantage core three ways: hand-worked cases, a slow plain loop, and properties."""

import difflib
import math
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skillvet.advantages import (
    anchor_groups,
    discounted_returns,
    episode_advantages,
    factorize,
    gigpo_advantages,
    grpo_advantages,
    rloo_advantages,
)

# ---------------------------------------------------------------------------------------------
# Hand-worked cases
# ---------------------------------------------------------------------------------------------


def test_discounted_returns_by_hand_shuffled_rows():
    # trajectory a: rewards 0, 0, 10 at t = 0, 1, 2; trajectory b: 1, 2 at t = 0, 1.
    rewards = [10.0, 2.0, 0.0, 1.0, 0.0]
    traj = ["a", "b", "a", "b", "a"]
    time = [2, 1, 0, 0, 1]
    got = discounted_returns(rewards, traj, time, gamma=0.5)
    np.testing.assert_allclose(got, [10.0, 2.0, 2.5, 2.0, 5.0])


def test_discounted_returns_rejects_duplicate_time_steps():
    with pytest.raises(ValueError, match="share time step 1"):
        discounted_returns([1.0, 1.0], ["a", "a"], [1, 1], gamma=0.9)


def test_episode_advantage_by_hand_mean_std():
    # one group, trajectories of scores 10 (2 rows) and 0 (1 row). Per step rows: mean 20/3,
    # unbiased std sqrt(((10/3)^2 * 2 + (20/3)^2) / 2) = sqrt(100/3).
    got = episode_advantages(
        [10.0, 10.0, 0.0], ["g", "g", "g"], ["t1", "t1", "t2"], eps=0.0 + 1e-12
    )
    std = math.sqrt(100 / 3)
    np.testing.assert_allclose(got, [(10 / 3) / std, (10 / 3) / std, (-20 / 3) / std], rtol=1e-9)
    # per trajectory: samples 10 and 0: mean 5, std sqrt(50)
    got = episode_advantages(
        [10.0, 10.0, 0.0], ["g"] * 3, ["t1", "t1", "t2"], eps=1e-12, episode_stats="trajectories"
    )
    np.testing.assert_allclose(got, [5 / math.sqrt(50)] * 2 + [-5 / math.sqrt(50)], rtol=1e-9)


def test_singleton_rules():
    # A group with one row keeps its raw score (/(1+eps)); a step group of one row gives 0.
    adv = gigpo_advantages([4.0], [3.0], ["s"], ["g"], ["t"], eps=1e-6)
    np.testing.assert_allclose(adv, [4.0 / (1 + 1e-6)])
    adv = gigpo_advantages([4.0], [3.0], ["s"], ["g"], ["t"], norm="mean")
    np.testing.assert_allclose(adv, [4.0])


def test_step_groups_cross_trajectories_and_time_but_not_episode_groups():
    anchors = ["kitchen", "kitchen", "hall", "kitchen", "kitchen"]
    groups = ["g1", "g1", "g1", "g2", "g1"]
    assert anchor_groups(anchors, groups).tolist() == [0, 0, 1, 2, 0]


def test_gigpo_by_hand():
    # group g: trajectory A wins (score 10) in two steps, B fails (0) in two steps.
    # Both start in state s0; A then sees s1, B sees s2.
    scores = [10.0, 10.0, 0.0, 0.0]
    returns = [9.5, 10.0, 0.0, 0.0]
    anchors = ["s0", "s1", "s0", "s2"]
    groups = ["g"] * 4
    traj = ["A", "A", "B", "B"]
    adv = gigpo_advantages(scores, returns, anchors, groups, traj, norm="mean", step_weight=1.0)
    # A^E = score - 5; A^S: s0 group {9.5, 0} has mean 4.75; s1 and s2 are singletons.
    np.testing.assert_allclose(adv, [5 + 4.75, 5.0, -5 - 4.75, -5.0])


def test_anchor_types_arrays_tuples_and_shape_dtype():
    a = np.zeros((2, 2), dtype=np.int8)
    same = np.zeros((2, 2), dtype=np.int8)
    other_shape = np.zeros((4,), dtype=np.int8)
    other_dtype = np.zeros((2, 2), dtype=np.int16)
    labels = anchor_groups([a, same, other_shape, other_dtype, (1, "x"), (1, "x")], ["g"] * 6)
    assert labels.tolist() == [0, 0, 1, 2, 3, 3]
    stacked = np.stack([a, same, a + 1])
    assert anchor_groups(stacked, ["g"] * 3).tolist() == [0, 0, 1]


def test_similarity_mode_greedy_first_member():
    # "abcdefghij" and "abcdefghiX" have ratio 0.9; "abcdefghXY" vs the first member 0.8.
    anchors = ["abcdefghij", "abcdefghiX", "abcdefghXY", "zzzzzzzzzz"]
    labels = anchor_groups(anchors, ["g"] * 4, similarity=0.85)
    assert labels.tolist() == [0, 0, 1, 2]
    with pytest.raises(ValueError):
        anchor_groups(anchors, ["g"] * 4, similarity=1.0)


def test_grpo_and_rloo_by_hand():
    scores = [1.0, 3.0, 5.0, 7.0]
    groups = ["a", "a", "b", "b"]
    np.testing.assert_allclose(grpo_advantages(scores, groups, norm="mean"), [-1, 1, -1, 1])
    # RLOO: 1 - 3 = -2, 3 - 1 = 2
    np.testing.assert_allclose(rloo_advantages(scores, groups), [-2, 2, -2, 2])
    np.testing.assert_allclose(rloo_advantages([2.0], ["a"]), [2.0])


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="differ in length"):
        gigpo_advantages([1.0], [1.0, 2.0], ["s"], ["g"], ["t"])
    with pytest.raises(ValueError, match="NaN"):
        grpo_advantages([float("nan")], ["g"])
    with pytest.raises(ValueError, match="norm"):
        grpo_advantages([1.0], ["g"], norm="std")
    with pytest.raises(ValueError, match="more than one episode group"):
        episode_advantages([1.0, 2.0], ["g1", "g2"], ["t", "t"], episode_stats="trajectories")
    with pytest.raises(TypeError, match="hashable"):
        factorize([{"a": 1}])


# ---------------------------------------------------------------------------------------------
# A slow, obviously correct loop implementation of the definitions
# ---------------------------------------------------------------------------------------------


def _mean_std(values):
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def slow_returns(rewards, traj, time, gamma):
    out = [0.0] * len(rewards)
    for t_id in set(traj):
        rows = sorted((time[i], i) for i in range(len(rewards)) if traj[i] == t_id)
        for pos, (_, i) in enumerate(rows):
            out[i] = sum(gamma**k * rewards[j] for k, (_, j) in enumerate(rows[pos:]))
    return out


def slow_gigpo(  # noqa: C901
    scores, returns, anchors, groups, traj, w, norm, eps, episode_stats, similarity
):
    n = len(scores)
    # episode level
    samples = defaultdict(list)
    if episode_stats == "steps":
        for i in range(n):
            samples[groups[i]].append(scores[i])
    else:
        per_traj = defaultdict(list)
        for i in range(n):
            per_traj[(groups[i], traj[i])].append(scores[i])
        for (g, _), vals in per_traj.items():
            samples[g].append(sum(vals) / len(vals))
    adv = []
    for i in range(n):
        vals = samples[groups[i]]
        mean, std = (0.0, 1.0) if len(vals) == 1 else _mean_std(vals)
        a = scores[i] - mean
        adv.append(a / (std + eps) if norm == "mean_std" else a)
    # step level: clusters built by a plain loop
    cluster_of = [None] * n
    reps = defaultdict(list)  # group -> [(first member, cluster id)]
    for i in range(n):
        for rep, cid in reps[groups[i]]:
            same = (
                anchors[i] == rep
                if similarity is None
                else difflib.SequenceMatcher(None, anchors[i], rep).ratio() >= similarity
            )
            if same:
                cluster_of[i] = cid
                break
        else:
            cid = (groups[i], len(reps[groups[i]]))
            reps[groups[i]].append((anchors[i], cid))
            cluster_of[i] = cid
    for i in range(n):
        members = [returns[j] for j in range(n) if cluster_of[j] == cluster_of[i]]
        if len(members) == 1:
            step = 0.0
        else:
            mean, std = _mean_std(members)
            step = returns[i] - mean
            step = step / (std + eps) if norm == "mean_std" else step
        adv[i] += w * step
    return adv


rows_strategy = st.integers(min_value=1, max_value=40)


@st.composite
def batches(draw, text_anchors=False):
    """A random batch of step rows: groups of trajectories of random length."""
    n_groups = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    scores, groups, traj, time, anchors = [], [], [], [], []
    for g in range(n_groups):
        for t in range(draw(st.integers(1, 4))):
            length = int(rng.integers(1, 6))
            win = float(rng.choice([0.0, 10.0]))
            for k in range(length):
                groups.append(f"g{g}")
                traj.append(f"g{g}-t{t}")
                time.append(k)
                scores.append(win - (0.1 if rng.random() < 0.2 else 0.0))
                if text_anchors:
                    anchors.append(
                        "you are in room "
                        + "abc"[int(rng.integers(0, 3))] * int(rng.integers(8, 12))
                    )
                else:
                    anchors.append(f"s{int(rng.integers(0, 3))}")
    rewards = [float(rng.choice([0.0, 0.0, 1.0, -0.1])) for _ in scores]
    perm = rng.permutation(len(scores))
    pick = lambda xs: [xs[i] for i in perm]  # noqa: E731
    return pick(scores), pick(rewards), pick(anchors), pick(groups), pick(traj), pick(time)


@settings(max_examples=150, deadline=None)
@given(
    batch=batches(),
    w=st.sampled_from([0.0, 0.5, 1.0]),
    norm=st.sampled_from(["mean", "mean_std"]),
    episode_stats=st.sampled_from(["steps", "trajectories"]),
    gamma=st.sampled_from([0.9, 0.95, 1.0]),
)
def test_vectorised_equals_slow_loop(batch, w, norm, episode_stats, gamma):
    scores, rewards, anchors, groups, traj, time = batch
    returns = discounted_returns(rewards, traj, time, gamma)
    np.testing.assert_allclose(returns, slow_returns(rewards, traj, time, gamma), atol=1e-9)
    got = gigpo_advantages(
        scores,
        returns,
        anchors,
        groups,
        traj,
        step_weight=w,
        norm=norm,
        episode_stats=episode_stats,
    )
    want = slow_gigpo(
        scores, list(returns), anchors, groups, traj, w, norm, 1e-6, episode_stats, None
    )
    np.testing.assert_allclose(got, want, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(batch=batches(text_anchors=True), threshold=st.sampled_from([0.6, 0.8, 0.95]))
def test_similarity_mode_equals_slow_loop(batch, threshold):
    scores, rewards, anchors, groups, traj, time = batch
    returns = discounted_returns(rewards, traj, time, 0.95)
    got = gigpo_advantages(scores, returns, anchors, groups, traj, similarity=threshold)
    want = slow_gigpo(
        scores, list(returns), anchors, groups, traj, 1.0, "mean_std", 1e-6, "steps", threshold
    )
    np.testing.assert_allclose(got, want, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(batch=batches(), norm=st.sampled_from(["mean", "mean_std"]))
def test_zero_mean_per_episode_group_over_trajectories(batch, norm):
    scores, _, _, groups, traj, _ = batch
    adv = episode_advantages(scores, groups, traj, norm=norm, episode_stats="trajectories")
    per_traj = defaultdict(list)
    for a, g, t in zip(adv, groups, traj):
        per_traj[(g, t)].append(a)
    per_group = defaultdict(list)
    for (g, _), vals in per_traj.items():
        per_group[g].append(np.mean(vals))
    for g, vals in per_group.items():
        if len(vals) > 1:  # a group of one trajectory keeps its raw score by definition
            assert abs(np.mean(vals)) < 1e-8, g


@settings(max_examples=100, deadline=None)
@given(batch=batches())
def test_singleton_step_groups_give_zero_step_advantage(batch):
    scores, rewards, anchors, groups, traj, time = batch
    anchors = [f"unique-{i}" for i in range(len(anchors))]
    returns = discounted_returns(rewards, traj, time, 0.95)
    with_steps = gigpo_advantages(scores, returns, anchors, groups, traj, step_weight=1.0)
    without = gigpo_advantages(scores, returns, anchors, groups, traj, step_weight=0.0)
    np.testing.assert_allclose(with_steps, without, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(
    batch=batches(),
    shift=st.floats(-50, 50),
    episode_stats=st.sampled_from(["steps", "trajectories"]),
)
def test_invariant_to_constant_shift(batch, shift, episode_stats):
    scores, rewards, anchors, groups, traj, time = batch
    # A group with a single sample keeps its raw score by definition, so the property is about
    # batches where every episode group has at least two samples (rows, or trajectories).
    samples = defaultdict(set)
    for i, (g, t) in enumerate(zip(groups, traj)):
        samples[g].add(i if episode_stats == "steps" else t)
    if any(len(v) < 2 for v in samples.values()):
        return
    returns = discounted_returns(rewards, traj, time, 0.95)
    a = gigpo_advantages(scores, returns, anchors, groups, traj, episode_stats=episode_stats)
    b = gigpo_advantages(
        np.asarray(scores) + shift,
        returns + shift,
        anchors,
        groups,
        traj,
        episode_stats=episode_stats,
    )
    np.testing.assert_allclose(a, b, atol=1e-6)


@settings(max_examples=100, deadline=None)
@given(batch=batches(), seed=st.integers(0, 1000), norm=st.sampled_from(["mean", "mean_std"]))
def test_invariant_to_row_order(batch, seed, norm):
    scores, rewards, anchors, groups, traj, time = batch
    returns = discounted_returns(rewards, traj, time, 0.95)
    a = gigpo_advantages(scores, returns, anchors, groups, traj, norm=norm)
    perm = np.random.default_rng(seed).permutation(len(scores))
    take = lambda xs: [xs[i] for i in perm]  # noqa: E731
    returns_p = discounted_returns(take(rewards), take(traj), take(time), 0.95)
    np.testing.assert_allclose(returns_p, returns[perm], atol=1e-12)
    b = gigpo_advantages(
        take(scores), returns_p, take(anchors), take(groups), take(traj), norm=norm
    )
    np.testing.assert_allclose(b, a[perm], atol=1e-9)


@settings(max_examples=50, deadline=None)
@given(batch=batches())
def test_grpo_is_gigpo_without_step_term_over_trajectories(batch):
    scores, _, anchors, groups, traj, _ = batch
    # one score per trajectory (the trajectory mean), broadcast back to its rows
    per_traj = defaultdict(list)
    for s, t in zip(scores, traj):
        per_traj[t].append(s)
    traj_ids = list(per_traj)
    traj_scores = [float(np.mean(per_traj[t])) for t in traj_ids]
    traj_groups = [groups[traj.index(t)] for t in traj_ids]
    grpo = dict(zip(traj_ids, grpo_advantages(traj_scores, traj_groups)))
    gigpo = gigpo_advantages(
        [float(np.mean(per_traj[t])) for t in traj],
        [0.0] * len(traj),
        anchors,
        groups,
        traj,
        step_weight=0.0,
        episode_stats="trajectories",
    )
    np.testing.assert_allclose(gigpo, [grpo[t] for t in traj], atol=1e-9)
