"""A LoRA policy's rollouts on three engines, in one run, on SmolLM2-135M-Instruct in bf16: the HF
sampler, vLLM given the adapter, and vLLM given the weights merged (`sampling.vllm.merge_lora`).

    scripts/vllm-cpu-env.sh                               # once (CPU)
    .venv-vllm/bin/python bench/lora_engines.py           # print the table
    .venv-vllm/bin/python bench/lora_engines.py --write   # also write it into bench/README.md

Method. As `bench/engines.py` (household tasks, B tasks x N rollouts cut at `--steps` steps,
answers up to 32 tokens, temperature 1, rollouts timed end to end on the same tasks and seeds,
generated tokens/s, best of `--repeats` after a warm-up), with a LoRA policy: r16, alpha 32, all
linear projections, its B matrices drawn at random (std 0.02, seed 0) so that the adapter
changes the model. Each vLLM engine starts from the same policy; its start-up is not counted.
For each engine, the learner's log-probs of the sampled tokens (`Policy.token_logprobs`, bf16
autocast) against the engine's own: mean and largest absolute difference per token, to show
that the engines sample the same policy.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from advantages import write_section
from engines import SMOLLM2, _version, machine_line, time_rollouts
from skillvet.config import HouseholdConfig, ModelConfig
from skillvet.envs.household import HouseholdSource
from skillvet.policy.hf import Policy
from skillvet.policy.models import resolve
from skillvet.policy.sampler import HfSampler
from skillvet.policy.vllm import VllmConfig, VllmSampler


def lora_policy() -> Policy:
    policy = Policy.load(
        resolve(SMOLLM2), ModelConfig(name=SMOLLM2, lora=True, dtype="bfloat16", device="cpu")
    )
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in policy.model.named_parameters():
            if ".lora_B." in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
    return policy


def logprob_gap(policy: Policy, episodes) -> tuple[float, float]:
    """Mean and largest |learner - engine| log-prob per sampled token."""
    steps = [s for e in episodes for s in e.steps]
    gaps = []
    for start in range(0, len(steps), 16):
        chunk = steps[start : start + 16]
        with torch.no_grad():
            logp, _, _ = policy.token_logprobs(
                [s.prompt_ids for s in chunk], [s.response_ids for s in chunk]
            )
        for i, s in enumerate(chunk):
            learner = logp[i, logp.shape[1] - len(s.response_ids) :].float().numpy()
            gaps += list(np.abs(learner - np.asarray(s.logprobs)))
    return float(np.mean(gaps)), float(np.max(gaps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="write the table into the README")
    args = parser.parse_args()
    source = HouseholdSource(HouseholdConfig(), max_steps=args.steps)
    tasks = source.tasks("train")[: args.tasks]
    policy = lora_policy()
    rows = []
    engines = [
        ("HF sampler (bf16 autocast)", lambda: HfSampler(policy)),
        (f"vLLM {_version('vllm')}, the adapter", lambda: vllm_sampler(policy, merge=False)),
        (f"vLLM {_version('vllm')}, merged", lambda: vllm_sampler(policy, merge=True)),
    ]
    for label, make in engines:
        t0 = time.perf_counter()
        sampler = make()
        startup = time.perf_counter() - t0
        rate, (episodes, seconds, tokens) = time_rollouts(
            sampler, source, tasks, args.group, args.repeats
        )
        mean_gap, max_gap = logprob_gap(policy, episodes)
        rows.append((label, tokens, seconds, rate, mean_gap, max_gap))
        print(f"{label}: {tokens} tokens in {seconds:.1f} s (start-up {startup:.0f} s), "
              f"log-prob gap {mean_gap:.4f} mean, {max_gap:.4f} max", flush=True)
        del sampler
    shape = f"{args.tasks} x {args.group} x {args.steps}"
    hf_rate = rows[0][3]
    lines = [
        "| engine, LoRA r16 policy | B x N x steps | generated tokens | seconds | generated tok/s "
        "| / HF | log-prob gap to the learner, mean / max |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, tokens, seconds, rate, mean_gap, max_gap in rows:
        lines.append(
            f"| {label} | {shape} | {tokens:,} | {seconds:.1f} | {rate:,.0f} "
            f"| {rate / hf_rate:.2f}x | {mean_gap:.4f} / {max_gap:.3f} |"
        )
    text = "\n".join(lines)
    machine = machine_line()
    print(f"\n{text}\n\nmachine: {machine}")
    if args.write:
        write_section("lora-engines", f"{text}\n\nMachine: {machine}.")


def vllm_sampler(policy: Policy, merge: bool) -> VllmSampler:
    return VllmSampler(policy, VllmConfig(kv_cache_gib=1.0, max_model_len=4096, merge_lora=merge))


if __name__ == "__main__":
    main()
