"""Rollout engines and learners side by side, in one run, on SmolLM2-135M-Instruct in bf16:
the HF sampler against vLLM, and skillvet's learner against TRL's `GRPOTrainer`.

    scripts/vllm-cpu-env.sh && .venv-vllm/bin/python -m pip install trl   # once (CPU)
    .venv-vllm/bin/python bench/engines.py            # print the tables
    .venv-vllm/bin/python bench/engines.py --write    # also write them into bench/README.md

Method. Household tasks (the default small room), B tasks x N rollouts cut at `--steps` steps,
answers up to 32 tokens, temperature 1, zero-shot SmolLM2 (answer lengths are what it emits).
Rollouts: `skillvet.rollout.rollout` timed end to end (prompts, sampling, environment steps)
with each engine on the same tasks and seeds, full weights, compute in bf16 (HF: autocast over
fp32 weights; vLLM: bf16 weights); generated tokens/s, best of `--repeats` after a warm-up.
Learners: the HF rollout's samples, advantages drawn at random (non-zero gradients), one
update of LoRA r16 (alpha 32, all linear projections) under bf16 autocast, policy forward with
gradients + reference forward for the KL (beta 0.01) + backward + AdamW, micro-batches of
`--micro` rows and one optimizer step over all rows. TRL gets the very same token ids through
its `rollout_func` (so no generation is timed there and the lengths are equal), the same LoRA,
batch (`per_device_train_batch_size` = micro, gradient accumulation to all rows), beta 0.01,
bf16; its step time is `step_time` of its second step (the first is a warm-up), skillvet's the
second of two updates. Response tokens trained per second.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from skillvet.config import AlgoConfig, HouseholdConfig, ModelConfig, TrainConfig
from skillvet.envs.household import HouseholdSource
from skillvet.learner import compute_advantages, update
from skillvet.machine import machine_info
from skillvet.policy.hf import LORA_TARGETS, Policy
from skillvet.policy.models import resolve
from skillvet.policy.sampler import HfSampler
from skillvet.policy.vllm import VllmConfig, VllmSampler
from skillvet.rollout import rollout

README = Path(__file__).with_name("README.md")
SMOLLM2 = "smollm2-135m-instruct"


def machine_line() -> str:
    """The CPU (name, family/model, the flags that matter), cores, torch and its threads."""
    info = machine_info()
    return (
        f"{info['cpu']} (family/model {info['cpu_family_model']}, "
        f"{', '.join(info['cpu_flags'])}), {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )


def time_rollouts(sampler, source, tasks, group: int, repeats: int):
    rollout(sampler, source, tasks[:1], 1, max_new_tokens=8, temperature=1.0)  # warm-up
    best, kept = 0.0, None
    for run in range(repeats):
        gen = torch.Generator().manual_seed(run)
        t0 = time.perf_counter()
        episodes = rollout(
            sampler, source, tasks, group, max_new_tokens=32, temperature=1.0, generator=gen
        )
        seconds = time.perf_counter() - t0
        tokens = sum(len(s.response_ids) for e in episodes for s in e.steps)
        if tokens / seconds > best:
            best, kept = tokens / seconds, (episodes, seconds, tokens)
    return best, kept


def skillvet_learner(rows, micro: int) -> float:
    """Response tokens/s of the second of two updates on LoRA r16 in bf16."""
    policy = Policy.load(
        resolve(SMOLLM2), ModelConfig(name=SMOLLM2, lora=True, dtype="bfloat16", device="cpu")
    )
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-6)
    train = TrainConfig(mini_batches=1, micro_batch_size=micro)
    seconds = 0.0
    for k in range(2):
        t0 = time.perf_counter()
        out = update(
            policy, optimizer, rows, train, AlgoConfig(kl_coef=0.01), 1.0, np.random.default_rng(k)
        )
        seconds = time.perf_counter() - t0
    return out["tokens"] / seconds


def trl_learner(rows, micro: int, group: int, out_dir: str) -> float:
    """Response tokens/s of TRL's GRPOTrainer's second step on the same rows."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import GRPOConfig, GRPOTrainer

    n = len(rows.prompts) // group * group  # whole groups
    keys = [f"group-{g}" for g in range(n // group)]
    served: dict[str, int] = {}

    def replay(prompts, trainer):  # the rows' own token ids, group by group
        ids, answers, logps = [], [], []
        for key in prompts:
            g = int(key.split("-")[1])
            i = g * group + served.get(key, 0) % group
            served[key] = served.get(key, 0) + 1
            ids.append(list(rows.prompts[i]))
            answers.append(list(rows.responses[i]))
            logps.append(list(rows.old_logprobs[i]))
        return {"prompt_ids": ids, "completion_ids": answers, "logprobs": logps}

    rng = np.random.default_rng(0)
    lora = LoraConfig(
        r=16,
        lora_alpha=32,
        lora_dropout=0.0,
        target_modules=list(LORA_TARGETS),
        task_type="CAUSAL_LM",
    )
    args = GRPOConfig(
        output_dir=out_dir,
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=n // micro,
        num_generations=group,
        max_completion_length=32,
        beta=0.01,
        learning_rate=1e-6,
        max_steps=2,
        bf16=True,
        use_cpu=True,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        shuffle_dataset=False,
        dataloader_num_workers=0,
    )
    trainer = GRPOTrainer(
        model=resolve(SMOLLM2),
        reward_funcs=lambda completions, **kw: rng.standard_normal(len(completions)).tolist(),
        args=args,
        train_dataset=Dataset.from_dict({"prompt": keys * 4}),
        peft_config=lora,
        rollout_func=replay,
    )
    trainer.train()
    step = trainer.state.log_history[1]
    tokens = sum(len(r) for r in rows.responses[:n])
    return tokens / step["step_time"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--micro", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--write", action="store_true", help="write the tables into bench/README.md"
    )
    args = parser.parse_args()
    source = HouseholdSource(HouseholdConfig(), max_steps=args.steps)
    tasks = source.tasks("train")[: args.tasks]
    policy = Policy.load(
        resolve(SMOLLM2), ModelConfig(name=SMOLLM2, dtype="bfloat16", device="cpu")
    )
    hf_rate, (episodes, hf_s, hf_tokens) = time_rollouts(
        HfSampler(policy), source, tasks, args.group, args.repeats
    )
    print(f"HF sampler: {hf_tokens} tokens in {hf_s:.1f} s", flush=True)
    t0 = time.perf_counter()
    vllm = VllmSampler(policy, VllmConfig(kv_cache_gib=1.0, max_model_len=4096))
    startup = time.perf_counter() - t0
    vl_rate, (_, vl_s, vl_tokens) = time_rollouts(vllm, source, tasks, args.group, args.repeats)
    print(f"vLLM: {vl_tokens} tokens in {vl_s:.1f} s (start-up {startup:.0f} s)", flush=True)
    del vllm
    rows = compute_advantages(episodes, AlgoConfig())
    rows.advantages = np.random.default_rng(0).standard_normal(len(rows.prompts))
    ours = skillvet_learner(rows, args.micro)
    print(f"skillvet learner: {ours:.0f} response tok/s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        theirs = trl_learner(rows, args.micro, args.group, tmp)
    print(f"TRL learner: {theirs:.0f} response tok/s", flush=True)
    samples = len(rows.prompts)
    prompt = np.mean([len(p) for p in rows.prompts])
    answer = np.mean([len(r) for r in rows.responses])
    shape = f"{args.tasks} x {args.group} x {args.steps}"
    text = "\n".join(
        [
            "| rollout engine | B x N x steps | generated tokens | seconds | generated tok/s |",
            "| --- | --- | ---: | ---: | ---: |",
            f"| HF sampler (bf16 autocast) | {shape} | {hf_tokens:,} | {hf_s:.1f} "
            f"| {hf_rate:,.0f} |",
            f"| vLLM {_version('vllm')} (bf16) | {shape} | {vl_tokens:,} | {vl_s:.1f} "
            f"| {vl_rate:,.0f} |",
            "",
            f"vLLM / HF: **{vl_rate / hf_rate:.2f}x** (vLLM's start-up, {startup:.0f} s with its "
            "compilation, not counted).",
            "",
            "| learner (LoRA r16, bf16) | samples | prompt / answer tokens | response tok/s |",
            "| --- | ---: | ---: | ---: |",
            f"| skillvet `update` | {samples} | {prompt:.0f} / {answer:.1f} | {ours:,.0f} |",
            f"| TRL {_version('trl')} `GRPOTrainer` | {samples // args.group * args.group} "
            f"| the same token ids | {theirs:,.0f} |",
            "",
            f"skillvet / TRL: **{ours / theirs:.2f}x**.",
        ]
    )
    machine = f"{machine_line()}, transformers {_version('transformers')}"
    print(f"\n{text}\n\nmachine: {machine}")
    if args.write:
        block = f"<!-- engines:start -->\n{text}\n\nMachine: {machine}.\n<!-- engines:end -->"
        old = README.read_text()
        pattern = re.compile(r"<!-- engines:start -->.*<!-- engines:end -->", re.S)
        README.write_text(
            pattern.sub(block, old) if pattern.search(old) else old.rstrip() + "\n\n" + block + "\n"
        )


def _version(module: str) -> str:
    import importlib

    return importlib.import_module(module).__version__


if __name__ == "__main__":
    main()
