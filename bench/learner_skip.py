"""The learner's update with and without the rows that carry no gradient, side by side.

    skillvet sft --out runs/warm                                  # a warm start (or RUN/model-sft)
    python bench/learner_skip.py --model runs/warm/model-sft      # print the table
    python bench/learner_skip.py --model runs/warm/model-sft --write   # also into bench/README.md

Method: one training iteration's samples from the default recipe (`recipes/household-tiny.yaml`:
8 train tasks x 8 rollouts, up to 20 steps, temperature 1, the recipe's history and answer
length) played by the given warm start, GiGPO advantages as the recipe computes them. Then one
`skillvet.learner.update` (4 mini-batches, AdamW at the recipe's learning rate) over the same
rows, each time from the same weights and a fresh optimizer, three ways: the recipe's KL term
(coefficient 0.01: a reference forward per micro-batch, every row computed); no KL, every row
computed (the skip switched off); no KL with rows of advantage exactly 0 skipped (the
learner's behaviour). The last two give the same update (tests/test_learner.py); the table
says how far their weights differ. Wall time with time.perf_counter, median of `--repeats`
after one warm-up update, torch's default thread count, machine otherwise idle; the samples are
played once per `--seed`.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from advantages import warm_start_bench  # bench/advantages.py, beside this script
from skillvet import learner
from skillvet.config import load_config
from skillvet.envs import make_source
from skillvet.evaluate import episode_seeds
from skillvet.learner import compute_advantages, update
from skillvet.policy.hf import Policy
from skillvet.rollout import rollout
from skillvet.sampling import uniform_tasks

HERE = Path(__file__).parent
RECIPE = HERE.parent / "recipes" / "household-tiny.yaml"


def timed_update(folder: str, cfg, rows, kl_coef: float, compute_all: bool) -> tuple[float, dict]:
    """Seconds of one update from the warm start's weights, and the weights after it."""
    policy = Policy.load(folder, cfg.model)
    algo = dataclasses.replace(cfg.algo, kl_coef=kl_coef)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.train.lr)
    keep = learner.with_gradient
    if compute_all:
        learner.with_gradient = lambda rows, idx, algo, train: list(idx)
    try:
        t0 = time.perf_counter()
        update(policy, optimizer, rows, cfg.train, algo, cfg.sampling.temperature,
               np.random.default_rng(0))
        seconds = time.perf_counter() - t0
    finally:
        learner.with_gradient = keep
    return seconds, policy.trainable_state()


def measure(folder: str, seed: int, repeats: int) -> dict:
    cfg = load_config(RECIPE, [f"model.name={folder}"])
    source = make_source(cfg.env)
    policy = Policy.load(folder, cfg.model)
    rng = np.random.default_rng(seed)
    tasks = uniform_tasks(source.tasks("train"), cfg.train.tasks_per_iteration, rng)
    n = cfg.train.group_size
    episodes = rollout(
        policy, source, tasks, n,
        max_new_tokens=cfg.sampling.max_action_tokens,
        temperature=cfg.sampling.temperature,
        history_length=cfg.sampling.history_length,
        sampling_seeds=episode_seeds(seed, len(tasks) * n),
    )
    rows = compute_advantages(episodes, cfg.algo)
    zero = float(np.mean(rows.advantages == 0.0))
    ways = {"kl": (0.01, True), "all": (0.0, True), "skip": (0.0, False)}
    timed_update(folder, cfg, rows, 0.0, False)  # warm-up
    times: dict[str, list[float]] = {k: [] for k in ways}
    weights = {}
    for _ in range(repeats):
        for key, (kl, compute_all) in ways.items():
            seconds, weights[key] = timed_update(folder, cfg, rows, kl, compute_all)
            times[key].append(seconds)
    diff = max(float((weights["skip"][k] - weights["all"][k]).abs().max()) for k in weights["all"])
    return {
        "rows": len(rows.prompts),
        "won": sum(e.won for e in episodes),
        "zero": zero,
        **{k: statistics.median(v) for k, v in times.items()},
        "diff": diff,
    }


def _row(seed: int, r: dict) -> str:
    return (
        f"| {seed} | {r['rows']:,} | {r['won']} | {r['zero']:.1%} | {r['kl']:.2f} "
        f"| {r['all']:.2f} | {r['skip']:.2f} | {r['kl'] / r['skip']:.2f}x | {r['diff']:.1e} |"
    )


def main() -> None:
    warm_start_bench(
        __doc__,
        "learner_skip",
        [
            "| samples seed | rows | episodes won (of 64) | rows with advantage 0 "
            "| KL 0.01, all rows (s) | no KL, all rows (s) "
            "| no KL, rows with advantage 0 skipped (s) "
            "| speed-up over KL 0.01 | largest weight difference, skipped against all |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ],
        measure,
        _row,
        seeds=[1, 2, 3],
        repeats=3,
    )


if __name__ == "__main__":
    main()
