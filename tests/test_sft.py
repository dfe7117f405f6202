"""The supervised warm start: held-out validation and the weights it keeps, and recovery
demonstrations after an injected invalid action."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from skillvet.config import HouseholdConfig, ModelConfig, SftConfig, TinyModelConfig  # noqa: E402
from skillvet.envs.household import HouseholdSource  # noqa: E402
from skillvet.envs.protocol import NOTHING_HAPPENS  # noqa: E402
from skillvet.policy.hf import Policy  # noqa: E402
from skillvet.policy.models import build_tiny, chatml_text  # noqa: E402
from skillvet.prompts import parse_action  # noqa: E402
from skillvet.sft import expert_demos, supervised  # noqa: E402
from skillvet.validation import action_kind, better, validate  # noqa: E402

TINY = TinyModelConfig(layers=1, hidden=48, heads=2, vocab_size=400, tokenizer_tasks=10)


@pytest.fixture(scope="module")
def source() -> HouseholdSource:
    return HouseholdSource(HouseholdConfig(), max_steps=20)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory, source):
    demos = expert_demos(source, source.tasks("train")[:10])
    return build_tiny(
        [chatml_text(d.prompt, d.answer) for d in demos],
        TINY,
        tmp_path_factory.mktemp("tiny"),
        seed=0,
    )


def _policy(folder) -> Policy:
    return Policy.load(folder, ModelConfig(tiny=TINY, device="cpu", threads=1))


def test_validation_is_logged_on_schedule_and_the_best_weights_are_kept(model_folder, source):
    train = expert_demos(source, source.tasks("train")[:12])
    val = expert_demos(source, source.tasks("train")[12:16])
    policy = _policy(model_folder)
    seen = []
    # a peak learning rate high enough that the last step is not reliably the best
    result = supervised(
        policy,
        train,
        SftConfig(steps=30, batch_size=8, lr=3e-2, val_every=10),
        seed=0,
        val=val,
        on_validation=seen.append,
    )
    assert [v.step for v in result.validations] == [10, 20, 30] and seen == result.validations
    best = max(result.validations, key=lambda v: (v.accuracy, -v.loss))
    assert result.chosen == best
    prompts = [policy.encode_prompt(d.prompt) for d in val]
    answers = [policy.encode_answer(d.answer) for d in val]
    again = validate(policy, prompts, answers, step=30)
    assert again.accuracy == pytest.approx(best.accuracy) and again.loss == pytest.approx(
        best.loss, rel=1e-4
    )
    assert 0.0 <= best.accuracy <= 1.0 and best.loss < result.losses[0]

    last = _policy(model_folder)
    kept = supervised(
        last,
        train,
        SftConfig(steps=30, batch_size=8, lr=3e-2, val_every=10, select="last"),
        seed=0,
        val=val,
    )
    assert kept.chosen == kept.validations[-1]
    assert validate(last, prompts, answers, step=30).loss == pytest.approx(
        kept.validations[-1].loss, rel=1e-4
    )


def test_with_held_out_tasks_played_the_warm_start_kept_is_the_one_that_won_most(
    model_folder, source
):
    train = expert_demos(source, source.tasks("train")[:12])
    val = expert_demos(source, source.tasks("train")[12:16])
    policy = _policy(model_folder)
    scores = iter([(1, 5), (4, 5), (2, 5)])
    modes = []

    def play(p: Policy) -> tuple[int, int]:  # a stand-in for closed-loop episodes
        modes.append(p.model.training)
        return next(scores)

    cfg = SftConfig(steps=40, batch_size=8, lr=3e-2, val_every=10, val_play=5, val_play_from=20)
    result = supervised(policy, train, cfg, seed=0, val=val, play=play)
    assert [v.step for v in result.validations] == [10, 20, 30, 40]
    assert [v.played for v in result.validations] == [None, (1, 5), (4, 5), (2, 5)]
    assert modes == [False, False, False]  # played in eval mode, trained in train mode between
    assert result.chosen == result.validations[2]
    prompts = [policy.encode_prompt(d.prompt) for d in val]
    answers = [policy.encode_answer(d.answer) for d in val]
    assert validate(policy, prompts, answers, step=40).loss == pytest.approx(
        result.validations[2].loss, rel=1e-4
    )
    # a validation played beats any that was not, whatever its accuracy
    unplayed = result.validations[0]
    assert not better(unplayed, result.validations[1]) and better(result.validations[1], unplayed)


def test_accuracy_counts_a_step_right_only_when_its_whole_answer_is_the_most_likely(
    model_folder, source
):
    policy = _policy(model_folder)
    demos = expert_demos(source, source.tasks("train")[:6])
    supervised(policy, demos, SftConfig(steps=80, batch_size=16, lr=1e-2), seed=0)
    prompts = [policy.encode_prompt(d.prompt) for d in demos]
    answers = [policy.encode_answer(d.answer) for d in demos]
    kinds = [action_kind(d.answer) for d in demos]
    measured = validate(policy, prompts, answers, step=0, kinds=kinds)
    greedy = policy.generate(
        prompts, max_new_tokens=max(len(a) for a in answers) + 1, temperature=0.0, stop_text=None
    )
    right = [g.ids[: len(a)] == a for g, a in zip(greedy, answers)]
    assert measured.accuracy == pytest.approx(sum(right) / len(answers))
    # per kind of expert action: the same verdicts, counted by the action's first word
    assert {"go", "take"} <= set(measured.by_kind)
    for kind, (hits, steps) in measured.by_kind.items():
        mine = [r for r, k in zip(right, kinds) if k == kind]
        assert (hits, steps) == (sum(mine), len(mine))
    counts = [steps for _, steps in measured.by_kind.values()]
    assert counts == sorted(counts, reverse=True) and sum(counts) == len(demos)
    with pytest.raises(ValueError, match="kinds for"):
        validate(policy, prompts, answers, step=0, kinds=kinds[:-1])


def test_action_kind_is_the_first_word_of_the_action():
    assert action_kind("<action>go to desk 1</action>") == "go"
    assert action_kind("<think>hm</think><action>Take apple 1 from desk 1</action>") == "take"
    assert action_kind("no tags at all") == "(none)"


def test_recovery_demos_answer_an_invalid_repeat_with_the_experts_next_action(source):
    tasks = source.tasks("train")[:40]
    plain = expert_demos(source, tasks)
    recovered = expert_demos(source, tasks, recovery=0.5, seed=3, max_steps=source.max_steps)
    assert not any(NOTHING_HAPPENS in d.prompt for d in plain)
    injected = [
        d for d in recovered if d.prompt.split("Current observation")[1].count(NOTHING_HAPPENS)
    ]
    assert 0.25 * len(plain) < len(injected) < 0.6 * len(plain)
    # no expert step was cut off by the step limit
    assert len(recovered) == len(plain) + len(injected)
    # each injected step is followed by the same expert action as the clean step before it
    index = {id(d): i for i, d in enumerate(recovered)}
    for d in injected:
        before = recovered[index[id(d)] - 1]
        assert parse_action(d.answer) == parse_action(before.answer)
        last = d.prompt.split("Current observation")[0].rsplit("action: ", 1)[1].split("\n")[0]
        # the repeat was not admissible
        assert f"'{last}'" not in d.prompt.split("Admissible actions:")[1]
    # seeded
    assert (
        expert_demos(source, tasks, recovery=0.5, seed=3, max_steps=source.max_steps) == recovered
    )
    assert (
        expert_demos(source, tasks, recovery=0.5, seed=4, max_steps=source.max_steps) != recovered
    )
