"""ALFWorld through the environment pool: expert steps per second and episodes per minute in
this process, with 1 and 2 worker processes, and with 1 and 2 Ray actors (local cluster), in one
run.

    python3 bench/env_pool.py [--games 8] [--group 4] [--repeats 3] [--data ../shared/alfworld]

Each repeat makes `--group` environments for each of the first `--games` valid_seen games (a
rollout's batch: B tasks x N rollouts), resets them all (`reset_all`) and plays every game's
walkthrough, one batch step at a time (`step_all`), as a rollout does. New environments go to
the worker hosting the fewest, so each worker holds half of every group. The figure is the
median over repeats of walkthrough steps per second of wall time, resets included (loading a
game is most of ALFWorld's cost), and the batch's episodes per minute (an eval's throughput on
the environments' side: the policy's time is not in it). Workers start before the clock does.
`--backends process` leaves Ray out. Prints a Markdown table for bench/README.md.
"""

from __future__ import annotations

import argparse
import statistics
import time

from skillvet.config import EnvConfig
from skillvet.envs import make_source
from skillvet.envs.process import ProcessSource, reset_all, step_all
from skillvet.machine import machine_info


def play(source, tasks, plans) -> tuple[int, float]:
    """(walkthrough steps, seconds) for one batch of every task."""
    start = time.perf_counter()
    envs = [source.make(t) for t in tasks]
    reset_all(envs)
    steps = 0
    for k in range(max(len(p) for p in plans)):
        live = [i for i, p in enumerate(plans) if k < len(p)]
        step_all([envs[i] for i in live], [plans[i][k] for i in live])
        steps += len(live)
    for env in envs:
        env.close()
    return steps, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--games", type=int, default=8)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", default="../shared/alfworld")
    parser.add_argument("--backends", nargs="+", default=["process", "ray"])
    args = parser.parse_args()
    rows = []
    runs = [("process", w) for w in (0, 1, 2)]
    runs += [("ray", w) for w in (1, 2) if "ray" in args.backends]
    for backend, workers in runs:
        source = make_source(
            EnvConfig(
                name="alfworld", data=args.data, workers=workers, max_steps=50, backend=backend
            )
        )
        tasks = [t for t in source.tasks("valid_seen")[: args.games] for _ in range(args.group)]
        plans = [source.expert(t) for t in tasks]
        if isinstance(source, ProcessSource):  # start the workers (and import ALFWorld) untimed
            for env in [source.make(tasks[0]) for _ in range(workers)]:
                env.close()
        rates = []
        for _ in range(args.repeats):
            steps, seconds = play(source, tasks, plans)
            rates.append(steps / seconds)
        if isinstance(source, ProcessSource):
            source.close()
        rows.append((backend, workers, steps, statistics.median(rates)))
    machine = machine_info()
    print(
        "| where the games run | games x rollouts | steps per batch | steps/s | episodes/min "
        "| relative to 1 worker process |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    one = next(rate for b, w, _, rate in rows if (b, w) == ("process", 1))
    episodes = len(tasks)
    for backend, workers, steps, rate in rows:
        names = {"ray": ("Ray actor", "Ray actors"), "process": ("worker", "workers")}
        where = "this process" if workers == 0 else f"{workers} {names[backend][workers > 1]}"
        per_minute = episodes / (steps / rate) * 60
        print(
            f"| {where} | {args.games} x {args.group} | {steps} | {rate:.1f} | {per_minute:.1f} "
            f"| {rate / one:.2f}x |"
        )
    print(
        f"\nMachine: {machine['cpu']} (family/model {machine['cpu_family_model']}), "
        f"{machine['cores']} cores; median of {args.repeats}."
    )


if __name__ == "__main__":
    main()
