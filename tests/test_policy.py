"""The HF policy: sampling records the exact log-probs the learner recomputes; batching, stops,
LoRA reference, checkpoints of the trainable weights."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from skillvet.config import HouseholdConfig, ModelConfig, TinyModelConfig  # noqa: E402
from skillvet.envs.household import HouseholdSource  # noqa: E402
from skillvet.policy.choices import ChoiceRows  # noqa: E402
from skillvet.policy.hf import Policy, shared_prefix_length  # noqa: E402
from skillvet.policy.models import build_tiny, chatml_text  # noqa: E402
from skillvet.prompts import answer_text, build_prompt  # noqa: E402
from skillvet.rollout import rollout  # noqa: E402
from skillvet.sft import expert_demos  # noqa: E402

TINY = TinyModelConfig(layers=2, hidden=64, heads=4, vocab_size=400, tokenizer_tasks=10)


@pytest.fixture(scope="module")
def source() -> HouseholdSource:
    return HouseholdSource(HouseholdConfig(), max_steps=5)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory, source):
    demos = expert_demos(source, source.tasks("train")[:10])
    texts = [chatml_text(d.prompt, d.answer) for d in demos]
    return build_tiny(texts, TINY, tmp_path_factory.mktemp("tiny"), seed=0)


def _policy(folder, lora: bool = False) -> Policy:
    return Policy.load(folder, ModelConfig(tiny=TINY, lora=lora, lora_rank=4, device="cpu"))


def test_recomputed_logprobs_equal_sampling_logprobs_across_multistep_episodes(tiny_folder, source):
    policy = _policy(tiny_folder)
    gen = torch.Generator().manual_seed(0)
    episodes = rollout(
        policy,
        source,
        source.tasks("train")[:3],
        3,
        max_new_tokens=12,
        temperature=1.0,
        generator=gen,
    )
    steps = [s for e in episodes for s in e.steps]
    assert len(steps) >= 3 * 3 * 2, (
        "episodes should run several steps (random model: invalid actions)"
    )
    assert all(len(e.steps) > 1 for e in episodes)
    logp, _, mask = policy.token_logprobs(
        [s.prompt_ids for s in steps], [s.response_ids for s in steps]
    )
    worst = 0.0
    for i, s in enumerate(steps):
        got = logp[i][mask[i].bool()]
        assert got.shape[0] == len(s.response_ids)
        worst = max(worst, float((got.detach() - torch.tensor(s.logprobs)).abs().max()))
    print(f"max |recomputed - sampled| log-prob over {len(steps)} steps: {worst:.2e}")
    assert worst < 1e-4


def test_a_shared_prompt_head_gives_the_logprobs_and_gradients_of_rows_scored_alone(
    tiny_folder, source
):
    """Rows of one task and skills block share their head: it is computed once, and every row
    continues from it; log-probs, entropies and gradients equal scoring each row on its own."""
    policy = _policy(tiny_folder)
    skills = (
        "Heat then place: find X; take X; go to microwave; heat X with microwave; "
        "go to Y; move X to Y",
    )
    prompts = [
        policy.encode_prompt(
            build_prompt("heat an egg and put it in the fridge", obs, [], None, skills=skills)
        )
        for obs in (
            "You see a fridge 1.",
            "You are at cabinet 2. It is closed. " * 3,
            "Nothing happens.",
        )
    ]
    answers = [
        policy.encode_answer(f"<action>{a}</action>")
        for a in ("open fridge 1", "look", "go to cabinet 10")
    ]
    assert shared_prefix_length(prompts) > 30

    def scored(rows):
        policy.model.zero_grad(set_to_none=True)
        logp, ent, mask = policy.token_logprobs(
            [prompts[i] for i in rows], [answers[i] for i in rows], 0.7, entropy=True
        )
        ((logp * mask).sum() + 0.1 * (ent * mask).sum()).backward()
        grads = [p.grad.clone() for p in policy.parameters()]
        return logp.detach()[mask.bool()], ent.detach()[mask.bool()], grads

    together = scored([0, 1, 2])
    alone = [scored([i]) for i in range(3)]
    assert torch.allclose(together[0], torch.cat([a[0] for a in alone]), atol=1e-5)
    assert torch.allclose(together[1], torch.cat([a[1] for a in alone]), atol=1e-5)
    for g, *parts in zip(together[2], *(a[2] for a in alone)):
        assert torch.allclose(g, sum(parts), atol=1e-5, rtol=1e-4)


def test_temperature_is_applied_the_same_way_when_scoring(tiny_folder, source):
    policy = _policy(tiny_folder)
    prompt = policy.encode_prompt("Your task is to: put a mug in the sink.")
    out = policy.generate(
        [prompt], 10, temperature=0.7, generator=torch.Generator().manual_seed(1)
    )[0]
    logp, _, mask = policy.token_logprobs([prompt], [out.ids], temperature=0.7)
    assert torch.allclose(logp[0][mask[0].bool()], torch.tensor(out.logprobs), atol=1e-4)


def test_a_batch_answers_each_prompt_as_it_would_alone(tiny_folder):
    policy = _policy(tiny_folder)
    short = policy.encode_prompt("look")
    long = policy.encode_prompt(
        "You are in the middle of a room. " * 10 + "Your task is to: heat an egg."
    )
    alone = policy.generate([short], 10, temperature=0.0)[0]
    batched = policy.generate([long, short], 10, temperature=0.0)[1]
    assert alone.ids == batched.ids
    assert all(abs(a - b) < 1e-4 for a, b in zip(alone.logprobs, batched.logprobs))


def test_generation_stops_at_the_closing_action_tag(tiny_folder, source):
    """A model fine-tuned to answer '<action>look</action>' stops right after the closing tag."""
    policy = _policy(tiny_folder)
    prompt = policy.encode_prompt("say look")
    answer = policy.encode_answer("<action>look</action>")
    optimizer = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    for _ in range(60):
        logp, _, mask = policy.token_logprobs([prompt], [answer])
        loss = -(logp * mask).sum() / mask.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    out = policy.generate([prompt], 30, temperature=0.0)[0]
    assert out.finish == "stop", out
    assert out.text.endswith("</action>")
    assert len(out.ids) < len(answer)  # the end-of-turn token was not needed


def test_token_limit_ends_an_answer(tiny_folder):
    policy = _policy(tiny_folder)
    outs = policy.generate(
        [policy.encode_prompt("x")] * 3,
        4,
        temperature=1.0,
        generator=torch.Generator().manual_seed(0),
    )
    for out in outs:
        assert len(out.ids) <= 4 and len(out.ids) == len(out.logprobs)
        assert out.finish in {"length", "eos", "stop"}
        assert out.finish != "length" or len(out.ids) == 4


def test_lora_reference_is_the_model_with_adapters_off(tiny_folder):
    policy = _policy(tiny_folder, lora=True)
    prompt, answer = policy.encode_prompt("go"), policy.encode_answer("<action>look</action>")
    ref0 = policy.ref_logprobs([prompt], [answer])
    logp0, _, _ = policy.token_logprobs([prompt], [answer])
    assert torch.allclose(ref0, logp0.detach(), atol=1e-6)  # LoRA B starts at zero
    trainable = {n for n, p in policy.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-2)
    for _ in range(3):
        logp, _, mask = policy.token_logprobs([prompt], [answer])
        loss = -(logp * mask).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    logp1, _, _ = policy.token_logprobs([prompt], [answer])
    assert not torch.allclose(logp1.detach(), logp0.detach(), atol=1e-3)
    assert torch.allclose(policy.ref_logprobs([prompt], [answer]), ref0, atol=1e-6)


def test_trainable_state_round_trips(tiny_folder):
    a, b = _policy(tiny_folder), _policy(tiny_folder)
    with torch.no_grad():
        for p in a.model.parameters():
            p.add_(0.01)
    b.load_trainable_state(a.trainable_state())
    prompt, answer = a.encode_prompt("go"), a.encode_answer("<action>look</action>")
    assert torch.allclose(
        a.token_logprobs([prompt], [answer])[0], b.token_logprobs([prompt], [answer])[0]
    )
    with pytest.raises(ValueError, match="does not fit"):
        b.load_trainable_state({"nope": torch.zeros(1)})


def test_the_tiny_tokenizer_encodes_as_trained_also_after_a_save(tiny_folder, tmp_path):
    from tokenizers import Tokenizer

    trained = Tokenizer.from_file(str(tiny_folder / "tokenizer.json"))
    text = "take knife 1 from sinkbasin 12, then go to cabinet 3."
    policy = _policy(tiny_folder)
    assert policy.tokenizer(text)["input_ids"] == trained.encode(text).ids
    pieces = policy.tokenizer.convert_ids_to_tokens(policy.tokenizer(" knife 1")["input_ids"])
    assert pieces[-1] == "Ġ1"  # a number keeps the space before it: one token, not two
    policy.save(tmp_path / "saved")
    again = Policy.load(tmp_path / "saved", ModelConfig(tiny=TINY, device="cpu"))
    assert again.tokenizer(text)["input_ids"] == trained.encode(text).ids


def test_choice_rows_allow_only_tokens_that_continue_a_choice():
    rows = ChoiceRows([[[1, 2, 3], [1, 4], [5]], None, [[]]])
    assert rows.allowed(0) == {1, 5} and rows.allowed(1) is None and rows.allowed(2) is None
    rows.advance([0, 1], [1, 7])
    assert rows.allowed(0) == {2, 4}
    bias = rows.bias([0, 1], vocab=6, device=torch.device("cpu"))
    assert bias[0].isinf().tolist() == [True, True, False, True, False, True]
    assert not bias[1].isinf().any()
    assert rows.bias([1], vocab=6, device=torch.device("cpu")) is None  # no row restricted
    rows.advance([0], [4])
    assert rows.allowed(0) == set()  # the choice "1 4" is written out: the row is free again
    assert rows.bias([0], vocab=6, device=torch.device("cpu")) is None


@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_answers_held_to_the_admissible_actions_are_valid_and_scored_as_drawn(
    tiny_folder, source, temperature
):
    """A random-init model writes invalid actions; held to the admissible ones it writes only
    them, token for token as their encoding spells them, and each token's recorded log-prob is
    the one among the tokens it could be drawn from, which the learner recomputes from
    `allowed`: at least the unrestricted one, and 0 where one token was allowed."""
    policy = _policy(tiny_folder)
    tasks = source.tasks("train")[:3]
    common = dict(max_new_tokens=64, temperature=temperature, sampling_seeds=list(range(9)))
    free = rollout(policy, source, tasks, 3, **common)
    assert any(not s.valid for e in free for s in e.steps)
    assert all(s.allowed is None for e in free for s in e.steps)
    held = rollout(policy, source, tasks, 3, admissible_only=True, **common)
    steps = [s for e in held for s in e.steps]
    assert steps and all(s.valid for s in steps)
    for s in steps:
        assert s.response_ids == policy.encode_answer(answer_text(s.action))[:-1]
        assert len(s.allowed) == len(s.response_ids)
        assert all(t in ids for t, ids in zip(s.response_ids, s.allowed))
    if temperature == 0:
        return
    prompts, responses = [s.prompt_ids for s in steps], [s.response_ids for s in steps]
    scored, _, mask = policy.token_logprobs(prompts, responses, allowed=[s.allowed for s in steps])
    unheld, _, _ = policy.token_logprobs(prompts, responses)
    gains = []
    for i, s in enumerate(steps):
        on = mask[i].bool()
        recomputed, sampled = scored[i][on].detach(), torch.tensor(s.logprobs)
        assert torch.allclose(recomputed, sampled, atol=1e-4)
        single = torch.tensor([len(ids) == 1 for ids in s.allowed])
        assert torch.all(sampled[single].abs() < 1e-6)
        gains.append(float((recomputed - unheld[i][on].detach()).min()))
    assert min(gains) > -1e-5 and max(gains) > 0.1


def test_the_learner_scores_held_answers_as_the_sampler_drew_them(tiny_folder, source):
    from skillvet.config import AlgoConfig, TrainConfig
    from skillvet.learner import compute_advantages, update

    policy = _policy(tiny_folder)
    episodes = rollout(
        policy, source, source.tasks("train")[:2], 4, max_new_tokens=64, temperature=1.0,
        sampling_seeds=list(range(8)), admissible_only=True,
    )
    for k, e in enumerate(episodes):  # advantages of both signs
        e.steps[-1].reward = 10.0 * (k % 2)
    rows = compute_advantages(episodes, AlgoConfig())

    def first_update(rows):
        p = _policy(tiny_folder)
        opt = torch.optim.AdamW(p.parameters(), lr=1e-3)
        rng = np.random.default_rng(0)
        return update(p, opt, rows, TrainConfig(mini_batches=1), AlgoConfig(), 1.0, rng)

    held = first_update(rows)
    assert held["mismatch_abs"] < 1e-5 and math.isfinite(held["kl"])
    rows.allowed = None  # scored over the whole vocabulary: not what was drawn
    assert first_update(rows)["mismatch_abs"] > 1e-2
