"""Cost of a SAPO iteration against a GiGPO iteration at equal rollouts.

    python bench/sapo_cost.py --model runs/<sapo run>/model-sft            # print the table
    python bench/sapo_cost.py --model runs/<sapo run>/model-sft --write    # and into README.md

Method: two run directories on the same warm-started model and recipe
(`recipes/household-tiny-sapo.yaml`, B 8 tasks x N 8 rollouts, 20 steps), one with
`skills.enabled=false` (GiGPO) and one with it on (SAPO: base half, induction, augmented half,
utility, promotion every iteration so its cost is in every measured iteration). The two run
iteration by iteration in alternation on the same tasks seeds (`train_iteration`, iterations 1..k,
so both see the same policy drift), wall time of each iteration by time.perf_counter, the
first iteration of each dropped as warm-up; reported: mean seconds per iteration and its parts,
and the ratio SAPO / GiGPO. Torch's default thread count; machine otherwise idle.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from advantages import cpu_name  # bench/advantages.py, beside this script
from skillvet.config import load_config
from skillvet.train import start_run, train_iteration

README = Path(__file__).with_name("README.md")
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "household-tiny-sapo.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", required=True, help="warm-started model folder (a SAPO run's model-sft)"
    )
    parser.add_argument(
        "--iterations", type=int, default=4, help="iterations of each, the first is warm-up"
    )
    parser.add_argument("--write", action="store_true", help="write the table into bench/README.md")
    args = parser.parse_args()
    common = [
        f"model.name={args.model}",
        "sft.steps=0",
        "eval.before=false",
        f"train.iterations={args.iterations}",
        "skills.promote_every=1",
    ]
    times: dict[str, list[dict]] = {"gigpo": [], "sapo": []}
    with tempfile.TemporaryDirectory() as tmp:
        runs = {
            "gigpo": start_run(
                load_config(RECIPE, [*common, "skills.enabled=false"]),
                quiet=True,
                run_dir=Path(tmp) / "g",
            ),
            "sapo": start_run(load_config(RECIPE, common), quiet=True, run_dir=Path(tmp) / "s"),
        }
        for it in range(1, args.iterations + 1):
            for name, run in runs.items():
                t0 = time.perf_counter()
                record = train_iteration(run, it)
                record["total"] = time.perf_counter() - t0
                if it > 1:
                    times[name].append(record)
                print(
                    f"{name} iteration {it}: {record['total']:.1f} s "
                    f"(rollout {record['time_rollout_s']:.1f}, "
                    f"learner {record['time_learner_s']:.1f}, samples {record['samples']})",
                    flush=True,
                )
    g, s = times["gigpo"], times["sapo"]

    def mean(rows, key):
        return float(np.mean([r.get(key, 0.0) or 0.0 for r in rows]))

    per_sample_ratio = (mean(s, "total") / max(mean(s, "samples"), 1)) / (
        mean(g, "total") / max(mean(g, "samples"), 1)
    )
    lines = [
        "| | GiGPO | SAPO |",
        "| --- | ---: | ---: |",
        f"| seconds per iteration | {mean(g, 'total'):.1f} | {mean(s, 'total'):.1f} |",
        f"| rollout (SAPO: base + induce + augmented + utility) "
        f"| {mean(g, 'time_rollout_s'):.1f} | {mean(s, 'time_rollout_s'):.1f} |",
        f"| of which induction | | {mean(s, 'time_induce_s'):.2f} |",
        f"| promotion and pruning | | {mean(s, 'time_promote_s'):.2f} |",
        f"| learner | {mean(g, 'time_learner_s'):.1f} | {mean(s, 'time_learner_s'):.1f} |",
        f"| samples (agent steps) per iteration | {mean(g, 'samples'):.0f} "
        f"| {mean(s, 'samples'):.0f} |",
        f"| seconds per sample | {mean(g, 'total') / max(mean(g, 'samples'), 1):.3f} "
        f"| {mean(s, 'total') / max(mean(s, 'samples'), 1):.3f} |",
        "",
        f"SAPO / GiGPO per iteration: **{mean(s, 'total') / mean(g, 'total'):.2f}x**; per sample: "
        f"**{per_sample_ratio:.2f}x**.",
        "",
        f"Machine: {cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{args.iterations - 1} measured iterations each after one warm-up.",
    ]
    table = "\n".join(lines)
    print(table)
    if args.write:
        text = README.read_text()
        block = f"<!-- sapo:start -->\n{table}\n<!-- sapo:end -->"
        if "<!-- sapo:start -->" in text:
            text = re.sub(r"<!-- sapo:start -->.*?<!-- sapo:end -->", block, text, flags=re.S)
        else:
            text += "\n" + block + "\n"
        README.write_text(text)


if __name__ == "__main__":
    main()
