"""Rollout and learner throughput of the HF policy on this machine, for the tiny model and
SmolLM2-135M-Instruct.

    python bench/throughput.py                 # print the table
    python bench/throughput.py --write         # also write it into bench/README.md
    python bench/throughput.py --models tiny   # only the tiny model
    python bench/throughput.py --models tiny --dtypes float32 bfloat16   # fp32 beside bf16 autocast

Method: household tasks (the default small room), B tasks x N rollouts, episodes cut at
`--steps` steps, answers up to 32 tokens, temperature 1, on an untrained policy (the tiny
model is random-init, SmolLM2 is zero-shot: answer lengths are what these models produce).
Rollout: one call of `skillvet.rollout.rollout`, timed end to end (prompt building, batched
prefill and sampling with the KV cache, environment steps); reported as generated tokens/s and
prompt tokens/s. Learner: one `skillvet.learner.update` over the same samples (forward with
gradients, reference forward for the KL, backward, AdamW step), reported as response tokens/s
(the tokens trained on) and all tokens/s (prompt + response, the tokens pushed through the
model). Best of `--repeats` runs (default 2) after a short warm-up, time.perf_counter, torch's
default thread count. `--dtypes` runs each model once per compute dtype (`model.dtype`: autocast
over float32 weights for the tiny model, LoRA's base stored in it for SmolLM2), one after the
other in the same process.
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

from advantages import cpu_name  # bench/advantages.py, beside this script
from skillvet.config import AlgoConfig, HouseholdConfig, ModelConfig, TinyModelConfig, TrainConfig
from skillvet.envs.household import HouseholdSource
from skillvet.learner import compute_advantages, update
from skillvet.policy.hf import Policy
from skillvet.policy.models import build_tiny, chatml_text, resolve
from skillvet.rollout import rollout
from skillvet.sft import expert_demos

README = Path(__file__).with_name("README.md")


def load(name: str, tmp: Path, source: HouseholdSource, dtype: str) -> Policy:
    if name == "tiny":
        folder = tmp / "tiny"
        if not folder.exists():
            demos = expert_demos(source, source.tasks("train")[:200])
            texts = [chatml_text(d.prompt, d.answer) for d in demos]
            build_tiny(texts, TinyModelConfig(), folder, seed=0)
        return Policy.load(folder, ModelConfig(device="cpu", dtype=dtype))
    return Policy.load(resolve(name), ModelConfig(name=name, lora=True, device="cpu", dtype=dtype))


def measure(
    policy: Policy, source: HouseholdSource, tasks: int, group: int, micro: int, repeats: int
) -> dict:
    best: dict = {}
    # warm-up
    rollout(policy, source, source.tasks("train")[:1], 1, max_new_tokens=8, temperature=1.0)
    for run in range(1, repeats + 1):
        gen = torch.Generator().manual_seed(run)
        t0 = time.perf_counter()
        episodes = rollout(
            policy,
            source,
            source.tasks("train")[:tasks],
            group,
            max_new_tokens=32,
            temperature=1.0,
            generator=gen,
        )
        t_roll = time.perf_counter() - t0
        steps_ = [s for e in episodes for s in e.steps]
        generated = sum(len(s.response_ids) for s in steps_)
        prompt = sum(len(s.prompt_ids) for s in steps_)
        rows = compute_advantages(episodes, AlgoConfig())
        # non-zero gradients
        rows.advantages = np.random.default_rng(run).standard_normal(len(rows.prompts))
        optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-6)
        t1 = time.perf_counter()
        update(
            policy,
            optimizer,
            rows,
            TrainConfig(micro_batch_size=micro),
            AlgoConfig(),
            1.0,
            np.random.default_rng(0),
        )
        t_learn = time.perf_counter() - t1
        result = {
            "samples": len(steps_),
            "gen_tok_s": generated / t_roll,
            "prompt_tok_s": prompt / t_roll,
            "learn_resp_tok_s": generated / t_learn,
            "learn_all_tok_s": (generated + prompt) / t_learn,
            "rollout_s": t_roll,
            "learner_s": t_learn,
            "mean_prompt": prompt / len(steps_),
            "mean_answer": generated / len(steps_),
        }
        if not best or result["gen_tok_s"] > best["gen_tok_s"]:
            best = result
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "smollm2-135m-instruct"])
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument(
        "--repeats", type=int, default=2, help="measured runs per model (best kept)"
    )
    parser.add_argument(
        "--dtypes", nargs="+", default=["float32"], help="compute dtypes (model.dtype), in turn"
    )
    parser.add_argument("--write", action="store_true", help="write the table into bench/README.md")
    args = parser.parse_args()
    source = HouseholdSource(HouseholdConfig(), max_steps=args.steps)
    lines = [
        "| model | B x N x steps | samples | prompt / answer tokens | rollout: generated tok/s "
        "| rollout: prompt tok/s | learner: response tok/s | learner: all tok/s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name, dtype in [(m, d) for m in args.models for d in args.dtypes]:
            policy = load(name, Path(tmp), source, dtype)
            r = measure(
                policy,
                source,
                args.tasks,
                args.group,
                micro=32 if name == "tiny" else 4,
                repeats=args.repeats,
            )
            label = (name if name == "tiny" else f"{name} (LoRA r16)") + f", {dtype}"
            lines.append(
                f"| {label} | {args.tasks} x {args.group} x {args.steps} | {r['samples']} | "
                f"{r['mean_prompt']:.0f} / {r['mean_answer']:.1f} | {r['gen_tok_s']:,.0f} | "
                f"{r['prompt_tok_s']:,.0f} | "
                f"{r['learn_resp_tok_s']:,.0f} | {r['learn_all_tok_s']:,.0f} |"
            )
            print(lines[-1], flush=True)
    machine = (
        f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    text = "\n".join(lines)
    print(f"\n{text}\n\nmachine: {machine}")
    if args.write:
        block = f"<!-- throughput:start -->\n{text}\n\nMachine: {machine}.\n<!-- throughput:end -->"
        old = README.read_text()
        pattern = re.compile(r"<!-- throughput:start -->.*<!-- throughput:end -->", re.S)
        README.write_text(
            pattern.sub(block, old) if pattern.search(old) else old.rstrip() + "\n\n" + block + "\n"
        )


if __name__ == "__main__":
    main()
