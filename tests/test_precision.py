"""Precision and memory of the policy: float32 master weights under bfloat16 autocast, the
sampler's prefill computing one position of logits, gradient checkpointing, LoRA unchanged.
SKILLVET_TEST_DEVICE (default cpu) runs them on another device (bench/gpu.py: cuda)."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from skillvet.config import HouseholdConfig, ModelConfig, TinyModelConfig  # noqa: E402
from skillvet.envs.household import HouseholdSource  # noqa: E402
from skillvet.policy.hf import Policy  # noqa: E402
from skillvet.policy.models import build_tiny, chatml_text  # noqa: E402
from skillvet.sft import expert_demos  # noqa: E402

DEVICE = os.environ.get("SKILLVET_TEST_DEVICE", "cpu")
TINY = TinyModelConfig(layers=2, hidden=64, heads=4, vocab_size=400, tokenizer_tasks=10)


@pytest.fixture(scope="module")
def demos():
    source = HouseholdSource(HouseholdConfig(), max_steps=5)
    return expert_demos(source, source.tasks("train")[:10])


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory, demos):
    texts = [chatml_text(d.prompt, d.answer) for d in demos]
    return build_tiny(texts, TINY, tmp_path_factory.mktemp("tiny"), seed=0)


def _policy(folder, **model) -> Policy:
    return Policy.load(folder, ModelConfig(tiny=TINY, device=DEVICE, lora_rank=4, **model))


def _one_update(policy: Policy, demos, lr: float) -> tuple[dict, torch.optim.Optimizer]:
    """One AdamW step on the answers' cross-entropy; the trainable weights before it."""
    before = {n: p.detach().clone() for n, p in policy.model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW(policy.parameters(), lr=lr, weight_decay=0.0)
    prompts = [policy.encode_prompt(d.prompt) for d in demos[:8]]
    answers = [policy.encode_answer(d.answer) for d in demos[:8]]
    logp, _, mask = policy.token_logprobs(prompts, answers)
    (-(logp * mask).sum() / mask.sum()).backward()
    optimizer.step()
    return before, optimizer


def _changed_share(policy: Policy, before: dict) -> float:
    params = dict(policy.model.named_parameters())
    changed = sum(int((params[n].detach() != w).sum()) for n, w in before.items())
    return changed / sum(w.numel() for w in before.values())


def test_a_bfloat16_full_fine_tuning_update_of_lr_1e6_moves_the_float32_master_weights(
    tiny_folder, demos
):
    policy = _policy(tiny_folder, dtype="bfloat16")
    assert all(p.dtype == torch.float32 for p in policy.parameters())
    assert all(p.dtype == torch.bfloat16 for p in policy._ref.parameters())  # frozen: compute dtype
    before, optimizer = _one_update(policy, demos, lr=1e-6)
    share = _changed_share(policy, before)
    print(f"share of trainable weights changed by one lr-1e-6 update: {share:.4f}")
    assert share > 0.9
    states = [
        v
        for state in optimizer.state.values()
        for v in state.values()
        if torch.is_tensor(v) and v.dim()
    ]
    assert states and all(v.dtype == torch.float32 for v in states)
    # the same step on weights stored in bfloat16 leaves most of them where they were
    stored = _policy(tiny_folder, dtype="bfloat16")
    stored.model.to(torch.bfloat16)
    before, _ = _one_update(stored, demos, lr=1e-6)
    assert _changed_share(stored, before) < 0.5


def test_forwards_run_in_bfloat16_under_autocast(tiny_folder, demos):
    policy = _policy(tiny_folder, dtype="bfloat16")
    seen = []
    hook = policy.model.lm_head.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    policy.token_logprobs(
        [policy.encode_prompt(demos[0].prompt)], [policy.encode_answer(demos[0].answer)]
    )
    hook.remove()
    assert seen == [torch.bfloat16]


def test_the_prefill_computes_logits_at_the_last_position_only(tiny_folder, demos):
    policy = _policy(tiny_folder)
    shapes = []
    hook = policy.model.lm_head.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
    prompts = [policy.encode_prompt(d.prompt) for d in demos[:3]]
    policy.generate(
        prompts, max_new_tokens=2, temperature=1.0, generator=torch.Generator().manual_seed(0)
    )
    hook.remove()
    vocab = policy.model.config.vocab_size
    assert shapes[0] == (3, 1, vocab)  # the prefill: [B, 1, V], not [B, L, V]
    assert all(s[1] == 1 for s in shapes)


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(tiny_folder, demos):
    grads = []
    for checkpointing in (False, True):
        policy = _policy(tiny_folder, gradient_checkpointing=checkpointing)
        policy.model.train()
        prompts = [policy.encode_prompt(d.prompt) for d in demos[:4]]
        answers = [policy.encode_answer(d.answer) for d in demos[:4]]
        logp, _, mask = policy.token_logprobs(prompts, answers)
        (-(logp * mask).sum()).backward()
        grads.append(
            {n: p.grad.clone() for n, p in policy.model.named_parameters() if p.grad is not None}
        )
    plain, checkpointed = grads
    assert plain.keys() == checkpointed.keys() and plain
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_lora_trains_float32_adapters_over_a_frozen_base_stored_in_the_compute_dtype(
    tiny_folder, demos, dtype
):
    policy = _policy(tiny_folder, lora=True, dtype=dtype)
    trainable = dict((n, p) for n, p in policy.model.named_parameters() if p.requires_grad)
    assert trainable and all("lora_" in n for n in trainable)
    assert all(p.dtype == torch.float32 for p in trainable.values())
    frozen = [p for n, p in policy.model.named_parameters() if not p.requires_grad]
    assert all(p.dtype == getattr(torch, dtype) for p in frozen)
    base_before = [p.detach().clone() for p in frozen]
    before, _ = _one_update(policy, demos, lr=1e-3)
    # LoRA's B starts at zero, so the first step moves B alone; A follows from the second
    assert _changed_share(policy, {n: w for n, w in before.items() if "lora_B" in n}) > 0.9
    assert all(torch.equal(p, w) for p, w in zip(frozen, base_before))
