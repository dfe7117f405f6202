"""On a GPU: the HF engine's rollout tokens/s, and the learner's tokens/s and peak memory, for a
random-init model of Qwen2.5-1.5B's architecture (no weights needed) at the ALFWorld recipe's
batch and lengths; then the precision tests on the device.

    PYTHONPATH=src python bench/gpu.py            # an H200: about 5 minutes
    PYTHONPATH=src python bench/gpu.py --small    # the same path on a 2-layer model (any device)

Method. Household tasks (pure Python, no data), the recipe alfworld-qwen2.5-1.5b.yaml's batch:
16 tasks x 8 rollouts, answers up to 512 tokens at temperature 1, bf16 compute over fp32 master
weights, full fine-tuning with the bf16 reference for the KL, micro-batches of 8, one optimizer
step. Episodes are cut at `--steps` steps. A random-init model rarely ends an answer early, so
answers run to the limit: the lengths are the recipe's worst case. Rollout: one call of
`skillvet.rollout.rollout`, generated tokens/s; learner: one `update` over its samples, response
tokens/s and all tokens/s, `torch.cuda.max_memory_allocated` over the update. A warm-up
rollout and update of one task run first. The tokenizer is a small one trained on household
text; token ids beyond it decode to nothing, which leaves the model's cost unchanged.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from skillvet.config import AlgoConfig, HouseholdConfig, ModelConfig, TinyModelConfig, TrainConfig
from skillvet.envs.household import HouseholdSource
from skillvet.learner import compute_advantages, update
from skillvet.machine import machine_info
from skillvet.policy.hf import Policy
from skillvet.policy.models import build_tiny, chatml_text
from skillvet.rollout import rollout
from skillvet.sft import expert_demos

QWEN25_15B = dict(  # Qwen2.5-1.5B-Instruct's config.json
    vocab_size=151936,
    hidden_size=1536,
    intermediate_size=8960,
    num_hidden_layers=28,
    num_attention_heads=12,
    num_key_value_heads=2,
    max_position_embeddings=32768,
    rope_theta=1000000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
)


def random_policy(small: bool, tmp: Path) -> Policy:
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    source = HouseholdSource(HouseholdConfig())
    texts = [
        chatml_text(d.prompt, d.answer) for d in expert_demos(source, source.tasks("train")[:50])
    ]
    folder = build_tiny(texts, TinyModelConfig(), tmp / "tokenizer", seed=0)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    arch = dict(QWEN25_15B, num_hidden_layers=2) if small else QWEN25_15B
    config = Qwen2Config(
        **arch, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(device)  # float32: the master weights
    cfg = ModelConfig(name="random-qwen2.5-1.5b", dtype="bfloat16", device=device)
    return Policy(model, tokenizer, cfg, "random-init")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2, help="steps per episode")
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--small", action="store_true", help="2 layers: check the path anywhere")
    args = parser.parse_args()
    source = HouseholdSource(HouseholdConfig(), max_steps=args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        policy = random_policy(args.small, Path(tmp))
    cuda = policy.device.type == "cuda"
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-6)
    train = TrainConfig(mini_batches=1, micro_batch_size=8)
    algo = AlgoConfig(kl_coef=0.01, invalid_penalty=0.1)

    def play(tasks, group):
        gen = torch.Generator(device=policy.device).manual_seed(0)
        return rollout(
            policy, source, tasks, group, max_new_tokens=args.tokens, temperature=1.0, generator=gen
        )

    warm = play(source.tasks("train")[:1], 2)  # warm-up
    update(
        policy,
        optimizer,
        compute_advantages(warm, algo),
        train,
        algo,
        1.0,
        np.random.default_rng(0),
    )
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    episodes = play(source.tasks("train")[: args.tasks], args.group)
    if cuda:
        torch.cuda.synchronize()
    t_roll = time.perf_counter() - t0
    steps = [s for e in episodes for s in e.steps]
    generated = sum(len(s.response_ids) for s in steps)
    prompt = sum(len(s.prompt_ids) for s in steps)
    rows = compute_advantages(episodes, algo)
    rows.advantages = np.random.default_rng(1).standard_normal(len(rows.prompts))
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t1 = time.perf_counter()
    update(policy, optimizer, rows, train, algo, 1.0, np.random.default_rng(2))
    if cuda:
        torch.cuda.synchronize()
    t_learn = time.perf_counter() - t1
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    info = machine_info()
    device = torch.cuda.get_device_name() if cuda else info["cpu"]
    print(
        "| model | B x N x steps | samples | prompt / answer tokens | rollout: generated tok/s "
        "| learner: response tok/s | learner: all tok/s | learner peak memory (GiB) |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    label = (
        "random Qwen2.5-1.5B" + (" (2 layers)" if args.small else "") + ", bf16, full fine-tuning"
    )
    print(
        f"| {label} | {args.tasks} x {args.group} x {args.steps} | {len(steps)} | "
        f"{prompt / len(steps):.0f} / {generated / len(steps):.0f} | {generated / t_roll:,.0f} | "
        f"{generated / t_learn:,.0f} | {(generated + prompt) / t_learn:,.0f} | {peak:.1f} |"
    )
    print(f"\nDevice: {device}; torch {torch.__version__}, transformers {info['transformers']}.")
    sys.stdout.flush()
    env = dict(os.environ, SKILLVET_TEST_DEVICE=str(policy.device))
    tests = Path(__file__).resolve().parents[1] / "tests" / "test_precision.py"
    sys.exit(
        subprocess.call(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)], env=env
        )
    )


if __name__ == "__main__":
    main()
