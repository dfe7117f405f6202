"""A run explains itself: PNG figures and one self-contained `report.html` (figures embedded as
data URIs, no network), and a comparison of runs across seeds. This module reads the run
directory (config.yaml, metrics.jsonl, eval.jsonl, trajectories.jsonl, sft.jsonl, and the skill
bank), so a report can be made while a run is going on; it writes the files and computes the
comparison (recipes, seeds, paired differences, the markdown table). The figures are drawn in
`skillvet.report_figures` and the pages put together in `skillvet.report_html`.

    skillvet report runs/household-tiny-20261121-114828
    skillvet compare runs/cmp-gigpo-* runs/cmp-grpo-* --out runs/compare
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from skillvet.config import load_config, to_dict
from skillvet.jsonl import read_jsonl
from skillvet.report_figures import compare_figure, run_figures
from skillvet.report_html import compare_page, run_page
from skillvet.stats import t_interval

__all__ = [
    "compare",
    "format_table",
    "load_run",
    "paired_differences",
    "recipe_key",
    "run_figures",
    "write_report",
]


def load_run(run_dir: str | Path) -> dict:
    d = Path(run_dir)
    if not (d / "config.yaml").is_file():
        raise FileNotFoundError(f"{d} is not a run directory (no config.yaml)")
    return {
        "dir": d,
        # resolved through the current config classes: fields added since the run took their
        # defaults, so old and new runs of one recipe compare equal
        "config": to_dict(load_config(d / "config.yaml")),
        "metrics": read_jsonl(d / "metrics.jsonl"),
        "eval": read_jsonl(d / "eval.jsonl"),
        "trajectories": read_jsonl(d / "trajectories.jsonl"),
        "sft": read_jsonl(d / "sft.jsonl"),
    }


def write_report(run_dir: str | Path, out: str | Path | None = None, trajectories: int = 3) -> Path:
    """Figures and report.html for one run; returns the HTML path."""
    run = load_run(run_dir)
    out = Path(out) if out else run["dir"] / "report"
    out.mkdir(parents=True, exist_ok=True)
    figs = run_figures(run, out)
    path = out / "report.html"
    path.write_text(run_page(run, figs, trajectories))
    return path


# --------------------------------------------------------------------------------------------
# Comparison across seeds
# --------------------------------------------------------------------------------------------


def recipe_key(config: dict, ignore: Sequence[str] = ()) -> str:
    """Runs share a recipe when their configs agree on everything but the seed and naming, and
    the dotted keys in `ignore` (e.g. `model.name` for arms that start from each seed's own
    warm start)."""
    c = json.loads(json.dumps(config))
    c["run"] = {}
    for key in ignore:
        *parents, leaf = key.split(".")
        node = c
        for part in parents:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if not isinstance(node, dict) or leaf not in node:
            raise ValueError(f"--ignore {key}: the runs' configs have no such key")
        node.pop(leaf)
    return json.dumps(c, sort_keys=True)


def compare(
    run_dirs: Sequence[str | Path], out: str | Path | None = None, ignore: Sequence[str] = ()
) -> tuple[list[dict], Path | None]:
    """Group runs by recipe (configs equal but for run.* and the dotted keys in `ignore`); table
    rows of final eval success (mean, std over seeds), and a figure of train and eval success
    with mean and spread."""
    runs = [load_run(d) for d in run_dirs]
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in runs:
        groups[recipe_key(r["config"], ignore)].append(r)
    rows = [_recipe_row(members) for members in groups.values()]
    fig_path = None
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        fig_path = compare_figure(rows, out / "compare.png")
        table = format_table(rows)
        (out / "compare.md").write_text(table + "\n")
        (out / "compare.html").write_text(compare_page(fig_path, table))
    for row in rows:
        row.pop("_members")
    return rows, fig_path


def _recipe_row(members: list[dict]) -> dict:
    """The comparison row of the runs of one recipe (its loaded runs kept under `_members`)."""
    finals = [
        next((e["success_rate"] for e in r["eval"] if e["stage"] == "after"), None) for r in members
    ]
    befores = [
        next((e["success_rate"] for e in r["eval"] if e["stage"] == "before"), None)
        for r in members
    ]
    finals_ok = [f for f in finals if f is not None]
    befores_ok = [b for b in befores if b is not None]
    cfg = members[0]["config"]
    name = (
        cfg["run"]["name"].rsplit("-s", 1)[0]
        if len({m["config"]["run"]["name"] for m in members}) > 1
        else cfg["run"]["name"]
    )
    return {
        "recipe": name,
        "estimator": cfg["algo"]["estimator"],
        "seeds": sorted(m["config"]["run"]["seed"] for m in members),
        "runs": len(members),
        "finished": len(finals_ok),
        "before_mean": float(np.mean(befores_ok)) if befores_ok else None,
        "after_mean": float(np.mean(finals_ok)) if finals_ok else None,
        "after_std": float(np.std(finals_ok, ddof=1)) if len(finals_ok) > 1 else 0.0,
        "after_ci95": list(t_interval(finals_ok, 0.95)) if len(finals_ok) > 1 else None,
        "after_each": finals_ok,
        "after_by_seed": {
            m["config"]["run"]["seed"]: f for m, f in zip(members, finals) if f is not None
        },
        "after_by_type": _by_type_over_seeds(members),
        "dirs": [str(m["dir"]) for m in members],
        "_members": members,
    }


def _by_type_over_seeds(members: list[dict]) -> dict:
    """Task type -> mean, std and 95% t interval over seeds of the final eval's success."""
    per_type: dict[str, list[float]] = defaultdict(list)
    for m in members:
        after = next((e for e in m["eval"] if e["stage"] == "after"), None)
        for t, v in (after or {}).get("by_type", {}).items():
            per_type[t].append(v["success_rate"])
    return {
        t: {
            "mean": float(np.mean(v)),
            "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
            "ci95": list(t_interval(v, 0.95)) if len(v) > 1 else None,
            "seeds": len(v),
        }
        for t, v in sorted(per_type.items())
    }


def paired_differences(rows: list[dict]) -> list[dict]:
    """For each two recipes that share at least two seeds: the mean over shared seeds of
    (first - second) in final eval success, with its 95% t interval (seeds are the pairs)."""
    out = []
    for i, a in enumerate(rows):
        for b in rows[i + 1 :]:
            seeds = sorted(set(a["after_by_seed"]) & set(b["after_by_seed"]))
            if len(seeds) < 2:
                continue
            diffs = [a["after_by_seed"][s] - b["after_by_seed"][s] for s in seeds]
            lo, hi = t_interval(diffs, 0.95)
            out.append(
                {
                    "first": a["recipe"],
                    "second": b["recipe"],
                    "seeds": seeds,
                    "mean": float(np.mean(diffs)),
                    "ci95": [lo, hi],
                    "each": diffs,
                }
            )
    return out


def format_table(rows: list[dict]) -> str:
    """The comparison as markdown: final eval success per recipe, per task type (when the runs
    recorded types), and the paired differences of recipes that share seeds."""
    lines = [
        "| recipe | estimator | seeds | eval success before RL (mean) "
        "| eval success after RL (mean ± std) | each seed |",
        "| --- | --- | --- | ---: | ---: | --- |",
    ]
    lines += [_recipe_line(r) for r in rows]
    lines += _type_lines(rows)
    lines += _pair_lines(paired_differences(rows))
    lines += [
        "",
        "Success rates are means over seeds ± their standard deviation, with the 95% Student t "
        "interval of the mean in brackets (points).",
    ]
    return "\n".join(lines)


def _recipe_line(r: dict) -> str:
    before = "n/a" if r["before_mean"] is None else f"{r['before_mean']:.1%}"
    after = "n/a" if r["after_mean"] is None else f"{r['after_mean']:.1%} ± {r['after_std']:.1%}"
    if r.get("after_ci95"):
        after += f" [{100 * r['after_ci95'][0]:.1f}, {100 * r['after_ci95'][1]:.1f}]"
    each = ", ".join(f"{x:.1%}" for x in r["after_each"])
    seeds = ", ".join(map(str, r["seeds"]))
    return f"| {r['recipe']} | {r['estimator']} | {seeds} | {before} | {after} | {each} |"


def _type_lines(rows: list[dict]) -> list[str]:
    """The per-task-type table (mean ± std [95% interval clipped to 0-100]); none without types."""
    types = sorted({t for r in rows for t in r.get("after_by_type", {})})
    if not types:
        return []
    lines = ["", "| recipe | " + " | ".join(types) + " |", "| --- |" + " ---: |" * len(types)]
    for r in rows:
        cells = []
        for t in types:
            v = r["after_by_type"].get(t)
            cell = "n/a" if v is None else f"{v['mean']:.1%} ± {v['std']:.1%}"
            if v is not None and v["ci95"]:
                cell += f" [{100 * max(0.0, v['ci95'][0]):.0f}, {100 * min(1.0, v['ci95'][1]):.0f}]"
            cells.append(cell)
        lines.append(f"| {r['recipe']} | " + " | ".join(cells) + " |")
    return lines


def _pair_lines(pairs: list[dict]) -> list[str]:
    """The paired-differences table in points; none when no two recipes share two seeds."""
    if not pairs:
        return []
    lines = [
        "",
        "| paired difference (same seeds) | seeds | mean [95% interval] | each seed |",
        "| --- | --- | ---: | --- |",
    ]
    for p in pairs:
        each = ", ".join(f"{100 * d:+.1f}" for d in p["each"])
        lines.append(
            f"| {p['first']} - {p['second']} | {', '.join(map(str, p['seeds']))} | "
            f"{100 * p['mean']:+.1f} [{100 * p['ci95'][0]:+.1f}, {100 * p['ci95'][1]:+.1f}] "
            f"points | {each} |"
        )
    return lines
