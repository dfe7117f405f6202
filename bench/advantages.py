"""Time discounted returns + GiGPO advantages on synthetic batches of realistic shape.

    python bench/advantages.py            # print the table
    python bench/advantages.py --write    # also write it into bench/README.md

Each batch is tasks x rollouts x steps rows: every trajectory runs the full step count, anchors
are text observations drawn from 40 states per task (so step groups of many sizes occur), the
reward is 10 on the last step of about a third of the trajectories, and rows are shuffled.
Anchors are Python strings, as the rollout produces them. Reported: the median wall time of 15
runs after 2 warm-up runs, timed with time.perf_counter.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from skillvet.advantages import discounted_returns, gigpo_advantages

SIZES = [(16, 8, 50), (32, 8, 50), (64, 8, 50), (128, 8, 50)]
README = Path(__file__).with_name("README.md")


def make_batch(tasks: int, rollouts: int, steps: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    n = tasks * rollouts * steps
    task = np.repeat(np.arange(tasks), rollouts * steps)
    traj = np.repeat(np.arange(tasks * rollouts), steps)
    t = np.tile(np.arange(steps), tasks * rollouts)
    won = rng.random(tasks * rollouts) < 0.33
    rewards = np.where((t == steps - 1) & won[traj], 10.0, 0.0)
    rewards -= np.where(rng.random(n) < 0.1, 0.1, 0.0)
    state = rng.integers(0, 40, n)
    perm = rng.permutation(n)
    return {
        "rewards": rewards[perm],
        "traj": [f"traj-{i}" for i in traj[perm]],
        "time": t[perm],
        "groups": [f"task-{i}" for i in task[perm]],
        "anchors": [
            f"You are in the kitchen of task {a}. You see state {b}."
            for a, b in zip(task[perm], state[perm])
        ],
    }


def loop_per_row(batch: dict) -> float:
    """The shape of the reference code: Python loops over rows, each scanning the whole batch
    (`np.where(traj == uid)` per row), so time grows with rows squared. Same outputs."""
    start = time.perf_counter()
    rewards, traj = batch["rewards"], np.asarray(batch["traj"])
    order = np.lexsort((batch["time"], traj))  # the reference expects rows in time order
    rewards, traj = rewards[order], traj[order]
    groups, anchors = np.asarray(batch["groups"])[order], [batch["anchors"][i] for i in order]
    returns = np.zeros_like(rewards)
    for uid in np.unique(traj):
        rows = np.where(traj == uid)[0]
        running = 0.0
        for r in reversed(rows):
            running = rewards[r] + 0.95 * running
            returns[r] = running
    for i in range(len(rewards)):  # the reference's per-row recombination
        rows = np.where(traj == traj[i])[0]
        _ = np.where(rows == i)[0][0]
    by_group: dict = {}
    for i in range(len(rewards)):
        by_group.setdefault(groups[i], []).append(returns[i])
    stats = {g: (np.mean(v), np.std(v, ddof=1)) for g, v in by_group.items()}
    clusters: dict = {}
    for i in range(len(rewards)):
        clusters.setdefault((groups[i], anchors[i]), []).append(returns[i])
    cstats = {
        k: (np.mean(v), np.std(v, ddof=1) if len(v) > 1 else 1.0) for k, v in clusters.items()
    }
    adv = np.empty_like(rewards)
    for i in range(len(rewards)):
        m, sd = stats[groups[i]]
        cm, csd = cstats[(groups[i], anchors[i])]
        adv[i] = (returns[i] - m) / (sd + 1e-6) + (returns[i] - cm) / (csd + 1e-6)
    return time.perf_counter() - start


def run_once(batch: dict) -> float:
    start = time.perf_counter()
    returns = discounted_returns(batch["rewards"], batch["traj"], batch["time"], 0.95)
    traj_codes = batch["traj"]
    scores = returns  # any per-row score works for timing; the rollout passes episode returns
    gigpo_advantages(scores, returns, batch["anchors"], batch["groups"], traj_codes)
    return time.perf_counter() - start


def measure(repeats: int = 15) -> list[tuple[tuple[int, int, int], int, float, float | None]]:
    rows = []
    for size in SIZES:
        batch = make_batch(*size)
        for _ in range(2):
            run_once(batch)
        times = [run_once(batch) for _ in range(repeats)]
        loop = statistics.median(loop_per_row(batch) for _ in range(3)) if size[0] <= 32 else None
        rows.append((size, len(batch["rewards"]), statistics.median(times), loop))
    return rows


def table(rows) -> str:
    base_rows, base_t = rows[0][1], rows[0][2]
    lines = [
        "| tasks x rollouts x steps | rows | skillvet (ms) | time / rows, relative to the first "
        "| loop per row (ms) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for (b, n, s), count, secs, loop in rows:
        rel = (secs / count) / (base_t / base_rows)
        loop_ms = f"{loop * 1e3:,.0f}" if loop is not None else "not run"
        lines.append(f"| {b} x {n} x {s} | {count:,} | {secs * 1e3:.2f} | {rel:.2f} | {loop_ms} |")
    return "\n".join(lines)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def machine_line(model: str) -> str:
    """The line under a learner bench's table: CPU, threads, torch, the warm start used."""
    import torch

    return (
        f"Machine: {cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
        f"warm start `{model}`."
    )


def write_section(name: str, table: str) -> None:
    """Put `table` between README.md's `<!-- name:start -->` and `<!-- name:end -->` lines."""
    README.write_text(
        re.sub(
            rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)",
            lambda m: m.group(1) + table + "\n" + m.group(2),
            README.read_text(),
            flags=re.S,
        )
    )


def warm_start_bench(
    doc: str,
    section: str,
    header: list[str],
    measure: Callable[[str, int, int], dict],
    row: Callable[[int, dict], str],
    seeds: list[int],
    repeats: int,
) -> None:
    """A learner bench's command line: `measure(model, seed, repeats)` per samples seed, each
    result a table row by `row(seed, result)` under `header`, then the machine line; printed,
    and with --write put into README.md's `section`."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a warm start's folder (RUN/model-sft)")
    parser.add_argument("--seeds", type=int, nargs="+", default=seeds)
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--write", action="store_true", help="write the table into bench/README.md")
    args = parser.parse_args()
    lines = list(header)
    for seed in args.seeds:
        lines.append(row(seed, measure(args.model, seed, args.repeats)))
        print(lines[-1], flush=True)
    lines += ["", machine_line(args.model)]
    table = "\n".join(lines)
    print(table)
    if args.write:
        write_section(section, table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write the table into bench/README.md")
    args = parser.parse_args()
    rows = measure()
    text = table(rows)
    machine = (
        f"{cpu_name()}, {os.cpu_count()} cores, CPython {platform.python_version()}, "
        f"numpy {np.__version__}"
    )
    print(text)
    print(f"\nmachine: {machine}")
    if args.write:
        block = f"<!-- advantages:start -->\n{text}\n\nMachine: {machine}.\n<!-- advantages:end -->"
        old = README.read_text()
        new = re.sub(r"<!-- advantages:start -->.*?<!-- advantages:end -->", block, old, flags=re.S)
        README.write_text(new)


if __name__ == "__main__":
    main()
