"""What holding answers to the admissible actions costs, side by side (`sampling.admissible_only`).

    python bench/held_answers.py --model RUN/model-sft            # print the table
    python bench/held_answers.py --model RUN/model-sft --write    # also into bench/README.md

Method: one training iteration of the default recipe (`recipes/household-tiny.yaml`: 8 train
tasks x 8 rollouts, up to 20 steps, temperature 1) played by the given warm start twice with the
same sampling seeds, answers free and answers held; then one `skillvet.learner.update` (the
recipe's KL term, 4 mini-batches) over the held rows from the same weights and a fresh optimizer,
twice: scored under the restriction they were drawn with (the learner's behaviour) and over the
whole vocabulary (the restriction dropped, the only difference). Wall time with
time.perf_counter, median of `--repeats` after one warm-up of each, torch's default thread
count, machine otherwise idle.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from advantages import warm_start_bench  # bench/advantages.py, beside this script
from skillvet.config import load_config
from skillvet.envs import make_source
from skillvet.evaluate import episode_seeds
from skillvet.learner import compute_advantages, update
from skillvet.policy.hf import Policy
from skillvet.rollout import rollout
from skillvet.sampling import uniform_tasks

HERE = Path(__file__).parent
RECIPE = HERE.parent / "recipes" / "household-tiny.yaml"


def median_seconds(run, repeats: int) -> tuple[float, object]:
    """Median wall time of `run()` over `repeats` calls after one warm-up, and its last result."""
    out = run()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def measure(folder: str, seed: int, repeats: int) -> dict:
    cfg = load_config(RECIPE, [f"model.name={folder}"])
    source = make_source(cfg.env)
    policy = Policy.load(folder, cfg.model)
    tasks = uniform_tasks(
        source.tasks("train"), cfg.train.tasks_per_iteration, np.random.default_rng(seed)
    )
    n = cfg.train.group_size

    def play(held: bool):
        return rollout(
            policy, source, tasks, n,
            max_new_tokens=cfg.sampling.max_action_tokens,
            temperature=cfg.sampling.temperature,
            history_length=cfg.sampling.history_length,
            sampling_seeds=episode_seeds(seed, len(tasks) * n),
            admissible_only=held,
        )

    free_s, free = median_seconds(lambda: play(False), repeats)
    held_s, held = median_seconds(lambda: play(True), repeats)
    rows = compute_advantages(held, cfg.algo)
    unheld = dataclasses.replace(rows, allowed=None)

    def learn(rows):
        p = Policy.load(folder, cfg.model)
        optimizer = torch.optim.AdamW(p.parameters(), lr=cfg.train.lr)
        return update(p, optimizer, rows, cfg.train, cfg.algo, cfg.sampling.temperature,
                      np.random.default_rng(0))

    restricted_s, _ = median_seconds(lambda: learn(rows), repeats)
    whole_s, _ = median_seconds(lambda: learn(unheld), repeats)
    steps = [s for e in free for s in e.steps]
    return {
        "free_steps": len(steps),
        "free_invalid": float(np.mean([not s.valid for s in steps])),
        "held_steps": sum(len(e.steps) for e in held),
        "free_won": sum(e.won for e in free),
        "held_won": sum(e.won for e in held),
        "free_s": free_s, "held_s": held_s, "restricted_s": restricted_s, "whole_s": whole_s,
    }


def _row(seed: int, r: dict) -> str:
    return (
        f"| {seed} | {r['free_steps']:,}, {r['free_invalid']:.1%}, {r['free_won']} "
        f"| {r['held_steps']:,}, {r['held_won']} | {r['free_s']:.2f} | {r['held_s']:.2f} "
        f"| {r['restricted_s']:.2f} | {r['whole_s']:.2f} |"
    )


def main() -> None:
    warm_start_bench(
        __doc__,
        "held",
        [
            "| samples seed | free: steps, invalid, won | held: steps, won | rollout free (s) "
            "| rollout held (s) | update, held rows scored as drawn (s) "
            "| update, the same rows over the whole vocabulary (s) |",
            "| ---: | --- | --- | ---: | ---: | ---: | ---: |",
        ],
        measure,
        _row,
        seeds=[1, 2],
        repeats=2,
    )


if __name__ == "__main__":
    main()
