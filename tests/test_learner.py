"""From episodes to advantages and one update: penalties, crashed episodes, estimators, NaN stop."""

from __future__ import annotations

import math

import numpy as np
import pytest

from skillvet.advantages import gigpo_advantages
from skillvet.config import AlgoConfig
from skillvet.types import Episode, Step, Task

torch = pytest.importorskip("torch")


def _episode(
    group: int, index: int, plan: list[tuple[str, float, bool]], error: str | None = None
) -> Episode:
    """plan: (anchor, reward, valid) per step."""
    e = Episode(Task("household", "train", str(group), "pick_and_place"), group, index, "goal")
    for anchor, reward, valid in plan:
        e.steps.append(
            Step(
                [1, 2],
                [3, 4],
                [-0.5, -0.5],
                "a",
                "x" if valid else None,
                anchor,
                reward,
                valid,
                "o",
            )
        )
    e.won = any(r > 0 for _, r, _ in plan)
    e.error = error
    return e


def _batch() -> list[Episode]:
    return [
        _episode(0, 0, [("s0", 0, True), ("s1", 0, True), ("s2", 10, True)]),
        _episode(0, 1, [("s0", 0, False), ("s0", 0, True), ("s1", 0, True)]),
        _episode(0, 2, [("s0", 0, True), ("s3", 0, True)], error="worker died"),
        _episode(1, 0, [("t0", 10, True)]),
        _episode(1, 1, [("t0", 0, True), ("t1", 0, True)]),
    ]


def test_gigpo_rows_follow_the_reference_reward_shaping():
    from skillvet.learner import compute_advantages

    algo = AlgoConfig(invalid_penalty=0.1)
    rows = compute_advantages(_batch(), algo)
    assert len(rows.prompts) == 3 + 3 + 1 + 2  # the crashed episode is left out
    # by hand: scores = return - own penalty; step returns discounted, minus own penalty
    scores = [10, 10, 10, -0.1, 0, 0, 10, 0, 0]
    g = 0.95
    returns = [10 * g * g, 10 * g, 10, -0.1, 0, 0, 10, 0, 0]
    anchors = ["s0", "s1", "s2", "s0", "s0", "s1", "t0", "t0", "t1"]
    groups = [0, 0, 0, 0, 0, 0, 1, 1, 1]
    traj = [0, 0, 0, 1, 1, 1, 2, 3, 3]
    want = gigpo_advantages(scores, returns, anchors, groups, traj)
    np.testing.assert_allclose(rows.advantages, want, atol=1e-9)
    assert rows.step_group_sizes.tolist() == [3, 2, 1, 3, 3, 2, 2, 2, 1]


def test_grpo_and_rloo_give_one_advantage_per_trajectory():
    from skillvet.learner import compute_advantages

    batch = [
        _episode(0, 0, [("a", 0, True), ("b", 10, True)]),
        _episode(0, 1, [("a", 0, True), ("c", 0, True)]),
    ]
    for estimator in ("grpo", "rloo"):
        rows = compute_advantages(batch, AlgoConfig(estimator=estimator))
        assert rows.advantages[0] == pytest.approx(rows.advantages[1])
        assert rows.advantages[2] == pytest.approx(rows.advantages[3])
        assert rows.advantages[0] > 0 > rows.advantages[2]
    rloo = compute_advantages(batch, AlgoConfig(estimator="rloo")).advantages
    assert rloo[0] == pytest.approx(10.0) and rloo[2] == pytest.approx(-10.0)


def test_no_rows_when_every_episode_crashed():
    from skillvet.learner import compute_advantages

    rows = compute_advantages([_episode(0, 0, [("a", 0, True)], error="boom")], AlgoConfig())
    assert rows.prompts == [] and rows.advantages.shape == (0,)


def test_a_nan_loss_stops_before_the_optimizer_steps(tmp_path):
    from skillvet.config import ModelConfig, TinyModelConfig, TrainConfig
    from skillvet.learner import NonFiniteLoss, Rows, update
    from skillvet.policy.hf import Policy
    from skillvet.policy.models import build_tiny

    tiny = TinyModelConfig(layers=1, hidden=32, heads=2, vocab_size=300)
    folder = build_tiny(
        ["<|im_start|>user\nlook around<|im_end|>\n"] * 20, tiny, tmp_path / "m", seed=0
    )
    policy = Policy.load(folder, ModelConfig(tiny=tiny, device="cpu"))
    before = {k: v.clone() for k, v in policy.trainable_state().items()}
    rows = Rows([[5, 6, 7]], [[8, 9]], [[-1.0, -1.0]], np.array([float("nan")]), np.array([1]))
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-2)
    with pytest.raises(NonFiniteLoss, match="not applied"):
        update(policy, optimizer, rows, TrainConfig(), AlgoConfig(), 1.0, np.random.default_rng(0))
    after = policy.trainable_state()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_update_moves_probability_towards_positive_advantages(tmp_path):
    from skillvet.config import ModelConfig, TinyModelConfig, TrainConfig
    from skillvet.learner import Rows, update
    from skillvet.policy.hf import Policy
    from skillvet.policy.models import build_tiny

    tiny = TinyModelConfig(layers=1, hidden=32, heads=2, vocab_size=300)
    folder = build_tiny(
        ["<|im_start|>user\nlook around go north<|im_end|>\n"] * 20, tiny, tmp_path / "m", seed=0
    )
    policy = Policy.load(folder, ModelConfig(tiny=tiny, device="cpu"))
    prompt = policy.encode_prompt("where?")
    good, bad = policy.encode_answer("north"), policy.encode_answer("look")

    def score(ans):
        logp, _, mask = policy.token_logprobs([prompt], [ans])
        return float((logp * mask).sum().detach())

    old = [policy.token_logprobs([prompt], [a])[0][0, -len(a) :].tolist() for a in (good, bad)]
    g0, b0 = score(good), score(bad)
    rows = Rows([prompt, prompt], [good, bad], old, np.array([1.0, -1.0]), np.array([1, 1]))
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-2)
    out = update(
        policy,
        optimizer,
        rows,
        TrainConfig(micro_batch_size=1),
        AlgoConfig(),
        1.0,
        np.random.default_rng(0),
    )
    assert score(good) > g0 and score(bad) < b0
    assert out["tokens"] == len(good) + len(bad) and out["grad_norm"] > 0


def test_micro_batches_keep_a_context_together_and_cover_every_row_once():
    from skillvet.learner import compute_advantages, micro_batches

    rows = compute_advantages(_batch(), AlgoConfig(estimator="gigpo"))
    rows.contexts = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1])
    rows.prompts = [[1] * n for n in (5, 3, 4, 9, 1, 2, 7, 6, 8)]
    chunks = micro_batches(rows, list(range(9)), size=4)
    assert sorted(i for c in chunks for i in c) == list(range(9))
    assert [len(c) for c in chunks] == [3, 3, 3]  # six rows of context 0 split evenly, not 4 + 2
    assert all(len({int(rows.contexts[i]) for i in c}) == 1 for c in chunks)
    assert chunks[0] == [4, 5, 1]  # shortest first within a context


def test_rows_of_one_group_shown_different_skills_are_different_contexts():
    from skillvet.learner import compute_advantages

    episodes = _batch()
    episodes[1].skills = ("a candidate skill",)
    rows = compute_advantages(episodes, AlgoConfig(estimator="gigpo"))
    traj_of_row = [0, 0, 0, 1, 1, 1, 3, 4, 4]
    context = {t: int(c) for t, c in zip(traj_of_row, rows.contexts)}
    assert len(set(context.values())) == 3
    assert context[0] != context[1] and context[3] == context[4]


def test_zero_signal_share_counts_groups_whose_rows_all_have_zero_advantage():
    from skillvet.learner import compute_advantages, zero_signal_share

    all_fail = [_episode(0, i, [("s0", 0, True), ("s1", 0, True)]) for i in range(3)]
    rows = compute_advantages(all_fail, AlgoConfig())
    assert zero_signal_share(rows.advantages, rows.groups) == 1.0
    mixed = [
        *all_fail,
        _episode(1, 0, [("t0", 10, True)]),
        _episode(1, 1, [("t0", 0, True), ("t1", 0, True)]),
    ]
    rows = compute_advantages(mixed, AlgoConfig())
    # group 1 has a winner and a loser
    assert zero_signal_share(rows.advantages, rows.groups) == 0.5
    rows = compute_advantages(mixed, AlgoConfig(estimator="grpo"))
    assert zero_signal_share(rows.advantages, rows.groups) == 0.5
    # an invalid-action penalty is a signal: the all-fail group is no longer flat
    penalised = [_episode(0, 0, [("s0", 0, False), ("s1", 0, True)]), *all_fail[1:]]
    rows = compute_advantages(penalised, AlgoConfig(invalid_penalty=0.1))
    assert zero_signal_share(rows.advantages, rows.groups) == 0.0


def test_grpo_gives_every_row_its_trajectorys_one_score_so_an_all_fail_group_stays_bounded():
    """An all-fail group of 8 trajectories of 20 steps, one of them with one invalid step."""
    from skillvet.learner import compute_advantages

    def flat(group: int, index: int, invalid_at: int | None) -> Episode:
        return _episode(group, index, [(f"s{t}", 0, t != invalid_at) for t in range(20)])

    batch = [flat(0, 0, 5), *[flat(0, i, None) for i in range(1, 8)]]
    algo = AlgoConfig(estimator="grpo", invalid_penalty=0.1)
    adv = compute_advantages(batch, algo).advantages.reshape(8, 20)
    scores = np.array([-0.1] + [0.0] * 7)  # each trajectory's return with its penalties
    want = (scores - scores.mean()) / (scores.std(ddof=1) + algo.eps)
    np.testing.assert_allclose(adv, np.repeat(want[:, None], 20, axis=1), rtol=1e-9)
    assert np.abs(adv).max() < 3  # was -56 on the invalid row when it kept only its own penalty
    rloo = compute_advantages(
        batch, AlgoConfig(estimator="rloo", invalid_penalty=0.1)
    ).advantages.reshape(8, 20)
    np.testing.assert_allclose(rloo[:, 0], scores - (scores.sum() - scores) / 7, rtol=1e-9)
    assert np.all(rloo == rloo[:, :1])


def test_a_sampler_that_is_not_the_learner_is_measured_and_corrected(tmp_path):
    from skillvet.config import ModelConfig, TinyModelConfig, TrainConfig
    from skillvet.learner import Rows, update
    from skillvet.policy.hf import Policy
    from skillvet.policy.models import build_tiny

    tiny = TinyModelConfig(layers=1, hidden=32, heads=2, vocab_size=300)
    folder = build_tiny(
        ["<|im_start|>user\nlook around go north<|im_end|>\n"] * 20, tiny, tmp_path / "m", seed=0
    )
    prompt_answers = []
    policy = Policy.load(folder, ModelConfig(tiny=tiny, device="cpu"))
    prompt = policy.encode_prompt("where?")
    for text in ("north", "look", "go north"):
        prompt_answers.append((prompt, policy.encode_answer(text)))
    learner = [
        policy.token_logprobs([p], [a])[0][0, -len(a) :].tolist() for p, a in prompt_answers
    ]

    def run(olds, exact, cap):
        p = Policy.load(folder, ModelConfig(tiny=tiny, device="cpu"))
        rows = Rows(
            [p_ for p_, _ in prompt_answers],
            [a for _, a in prompt_answers],
            olds,
            np.array([1.0, -1.0, 0.5]),
            np.array([1, 1, 1]),
        )
        opt = torch.optim.AdamW(p.parameters(), lr=1e-2)
        out = update(
            p,
            opt,
            rows,
            TrainConfig(micro_batch_size=2, mini_batches=1),
            AlgoConfig(tis_cap=cap),
            1.0,
            np.random.default_rng(0),
            exact_sampler=exact,
        )
        return out, p.trainable_state()

    exact, exact_w = run(learner, True, 2.0)
    assert exact["mismatch_abs"] < 1e-5 and exact["mismatch_kl"] < 1e-8
    # another engine put every sampled token 0.25 nats lower than the learner does
    off = [[v - 0.25 for v in row] for row in learner]
    corrected, corrected_w = run(off, False, 2.0)
    assert corrected["mismatch_abs"] == pytest.approx(0.25, abs=1e-4)
    assert corrected["mismatch_kl"] == pytest.approx(math.exp(0.25) - 1.25, abs=1e-4)
    # the ratio uses the learner's recomputed log-probs, so the tokens' pg terms are the exact
    # run's times exp(0.25): the pg loss scales by it
    assert corrected["pg"] == pytest.approx(exact["pg"] * math.exp(0.25), rel=1e-3)
    # with the weights capped at 1 the correction is a no-op and the update is the exact one
    capped, capped_w = run(off, False, 1.0)
    assert capped["pg"] == pytest.approx(exact["pg"], rel=1e-4)
    assert all(torch.allclose(capped_w[k], exact_w[k], atol=1e-6) for k in exact_w)
    assert not all(torch.allclose(corrected_w[k], exact_w[k], atol=1e-6) for k in exact_w)


def test_rows_without_gradient_are_skipped_and_the_update_is_the_one_computing_them_gives(
    tmp_path, monkeypatch
):
    from skillvet import learner
    from skillvet.config import ModelConfig, TinyModelConfig, TrainConfig
    from skillvet.learner import Rows, update
    from skillvet.policy.hf import Policy
    from skillvet.policy.models import build_tiny

    tiny = TinyModelConfig(layers=1, hidden=32, heads=2, vocab_size=300)
    folder = build_tiny(
        ["<|im_start|>user\nlook around go north<|im_end|>\n"] * 20, tiny, tmp_path / "m", seed=0
    )
    policy = Policy.load(folder, ModelConfig(tiny=tiny, device="cpu"))
    pairs = [(policy.encode_prompt(q), policy.encode_answer(a))
             for q in ("where?", "what now?") for a in ("north", "look", "go north")]
    olds = [policy.token_logprobs([p], [a])[0][0, -len(a):].tolist() for p, a in pairs]

    def run(kl_coef, compute_all):
        # two updates: rows with signal (Adam's moments fill), then rows all without it
        if compute_all:
            monkeypatch.setattr(learner, "with_gradient", lambda rows, idx, algo, train: list(idx))
        else:
            monkeypatch.undo()
        p = Policy.load(folder, ModelConfig(tiny=tiny, device="cpu"))
        opt = torch.optim.AdamW(p.parameters(), lr=1e-2)
        train, algo = TrainConfig(micro_batch_size=2, mini_batches=2), AlgoConfig(kl_coef=kl_coef)
        outs = []
        for adv in ([1.0, 0.0, -1.0, 0.0, 0.0, 0.5], [0.0] * 6):
            rows = Rows([q for q, _ in pairs], [a for _, a in pairs], olds, np.array(adv),
                        np.ones(6, dtype=np.int64))
            outs.append(update(p, opt, rows, train, algo, 1.0, np.random.default_rng(0)))
        return outs, p.trainable_state()

    skipping, skipped_w = run(0.0, compute_all=False)
    computed, computed_w = run(0.0, compute_all=True)
    assert [o["rows_skipped"] for o in skipping] == [0.5, 1.0]
    assert [o["rows_skipped"] for o in computed] == [0.0, 0.0]
    assert skipping[0]["pg"] != 0.0 and skipping[0]["grad_norm"] > 0
    # the same weights after both updates: the second (nothing computed) still moved them
    # through Adam's moments, as the computed one did
    assert all(torch.allclose(skipped_w[k], computed_w[k], atol=1e-4) for k in computed_w)
    assert [o["pg"] for o in skipping] == pytest.approx([o["pg"] for o in computed], abs=1e-6)
    start = Policy.load(folder, ModelConfig(tiny=tiny, device="cpu")).trainable_state()
    assert not all(torch.allclose(skipped_w[k], start[k], atol=1e-3) for k in start)
    # with a KL term every row has a gradient: none is skipped
    with_kl, _ = run(0.01, compute_all=False)
    assert [o["rows_skipped"] for o in with_kl] == [0.0, 0.0]
