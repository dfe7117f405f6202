"""A run explains itself: PNG figures and one self-contained `report.html` (figures embedded as
data URIs, no scripts, no network), and a comparison of runs across seeds.

    skillvet report runs/household-tiny-20261121-114828
    skillvet compare runs/cmp-gigpo-* runs/cmp-grpo-* --out runs/compare

Everything is read from the run directory (config.yaml, metrics.jsonl, eval.jsonl,
trajectories.jsonl, summary.json), so a report can be made while a run is going on.
"""

from __future__ import annotations

import base64
import html
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from skillvet.config import load_config, to_dict
from skillvet.jsonl import read_jsonl
from skillvet.stats import format_rate, t_interval


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


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _series(metrics: list[dict], key: str) -> tuple[list[int], list[float]]:
    xs = [m["iteration"] for m in metrics if key in m]
    return xs, [float(m[key]) for m in metrics if key in m]


def _line_figure(path: Path, title: str, ylabel: str, lines: dict[str, tuple[list, list]], points=None) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    for label, (xs, ys) in lines.items():
        ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.5, label=label)
    for label, (xs, ys) in (points or {}).items():
        ax.plot(xs, ys, marker="s", markersize=7, linestyle="--", linewidth=1, label=label)
    ax.set_title(title)
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(lines) + len(points or {}) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def run_figures(run: dict, out: Path) -> list[tuple[str, Path]]:
    """(caption, png) for every figure the run's records support."""
    m, ev = run["metrics"], run["eval"]
    figs: list[tuple[str, Path]] = []
    ev_x = [e["iteration"] for e in ev]
    figs.append((
        "Success rate: training rollouts per iteration, and evaluation (greedy) before, during and after RL.",
        _line_figure(out / "success.png", "Success rate", "success", {"train": _series(m, "train_success")},
                     {"eval": (ev_x, [e["success_rate"] for e in ev])}),
    ))
    types = sorted({t for x in m for t in x.get("success_by_type", {})})
    if types:
        lines = {t: ([x["iteration"] for x in m if t in x["success_by_type"]],
                     [x["success_by_type"][t] for x in m if t in x["success_by_type"]]) for t in types}
        figs.append(("Training success per task type.", _line_figure(out / "success_by_type.png", "Train success by task type", "success", lines)))
    eval_types = sorted({t for e in ev for t in e.get("by_type", {})})
    if eval_types and ev:
        lines = {t: ([e["iteration"] for e in ev if t in e["by_type"]], [e["by_type"][t]["success_rate"] for e in ev if t in e["by_type"]]) for t in eval_types}
        figs.append(("Evaluation success per task type.", _line_figure(out / "eval_by_type.png", "Eval success by task type", "success", lines)))
    for key, title, ylabel in [
        ("reward", "Mean episode reward", "reward"),
        ("episode_length", "Episode length", "steps"),
        ("invalid_rate", "Invalid-action rate", "share of steps"),
        ("kl", "KL(pi || pi_ref), k3 estimate", "KL"),
        ("entropy", "Entropy of the sampled tokens", "nats"),
    ]:
        figs.append((title + ".", _line_figure(out / f"{key}.png", title, ylabel, {key: _series(m, key)})))
    figs.append(("Loss: total, and its policy-gradient part.", _line_figure(
        out / "loss.png", "Loss", "loss", {"loss": _series(m, "loss"), "policy gradient": _series(m, "pg_loss")})))
    figs.append(("Throughput: generated tokens/s in rollouts, trained tokens/s in the learner.", _line_figure(
        out / "tokens_per_s.png", "Tokens per second", "tokens/s",
        {"rollout": _series(m, "rollout_tokens_per_s"), "learner": _series(m, "learner_tokens_per_s")})))
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    xs, roll = _series(m, "time_rollout_s")
    _, learn = _series(m, "time_learner_s")
    ax.bar(xs, roll, label="rollout")
    ax.bar(xs, learn, bottom=roll, label="learner")
    ax.set_title("Time per iteration: rollout vs learner")
    ax.set_xlabel("iteration")
    ax.set_ylabel("seconds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "time_split.png")
    plt.close(fig)
    figs.append(("Seconds per iteration, split into rollout and learner.", out / "time_split.png"))
    hists = [x.get("step_group_size_hist") for x in m]
    if any(hists):
        grid = np.array([h if h else [0] * 16 for h in hists], dtype=float).T  # sizes x iterations
        grid = grid / np.maximum(grid.sum(0, keepdims=True), 1)
        fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
        image = ax.imshow(grid, aspect="auto", origin="lower", cmap="viridis",
                          extent=(0.5, len(hists) + 0.5, 0.5, grid.shape[0] + 0.5))
        ax.set_title("GiGPO step-group sizes (share of rows)")
        ax.set_xlabel("iteration")
        ax.set_ylabel("step-group size (16 = 16 or more)")
        fig.colorbar(image, ax=ax)
        fig.tight_layout()
        fig.savefig(out / "step_groups.png")
        plt.close(fig)
        figs.append(("Distribution of step-group sizes over training: size 1 gets no step-level signal.", out / "step_groups.png"))
    train_loss = [s for s in run["sft"] if "loss" in s]
    val = [s for s in run["sft"] if "val_loss" in s]
    if train_loss:
        lines = {"train": ([s["step"] for s in train_loss], [s["loss"] for s in train_loss])}
        if val:
            lines["validation"] = ([s["step"] for s in val], [s["val_loss"] for s in val])
        figs.append(("Warm-start (SFT) loss, on the training batches and on the held-out expert steps.", _line_figure(
            out / "sft_loss.png", "Warm-start loss", "cross-entropy", lines)))
    if val:
        figs.append(("Warm-start action accuracy on the held-out expert steps (the whole answer the most likely).",
                     _line_figure(out / "sft_accuracy.png", "Warm-start validation", "action accuracy",
                                  {"validation": ([s["step"] for s in val], [s["val_accuracy"] for s in val])})))
    return figs


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;color:#1b1b1b;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:1rem}
figure{margin:0;border:1px solid #e4e4e4;border-radius:6px;padding:.5rem;background:#fff}
figure img{width:100%;height:auto}figcaption{font-size:.85rem;color:#555}
table{border-collapse:collapse;font-size:.9rem}td,th{border:1px solid #ddd;padding:.25rem .6rem;text-align:left}
.traj{border:1px solid #e4e4e4;border-radius:6px;padding:.5rem 1rem;margin:.8rem 0}
.step{margin:.4rem 0;font-size:.88rem}.bad{color:#a40000}.won{color:#0a6b00;font-weight:600}
pre{white-space:pre-wrap;background:#f6f6f6;padding:.5rem;border-radius:4px;font-size:.8rem;max-height:18rem;overflow:auto}
"""


# Marks on <body> how many figures the browser decoded: lets a headless browser check the page.
_LOADED_SCRIPT = (
    "window.addEventListener('load',()=>{const i=[...document.images];"
    "document.body.dataset.figures=i.length;"
    "document.body.dataset.figuresLoaded=i.filter(x=>x.complete&&x.naturalWidth>0).length;});"
)


def _img(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _summary_table(run: dict) -> str:
    cfg = run["config"]
    rows = [
        ("environment", f"{cfg['env']['name']} (train {cfg['env']['train_split']}, eval {cfg['env']['eval_split']})"),
        ("model", f"{cfg['model']['name']}" + (" + LoRA" if cfg["model"].get("lora") else "")),
        ("estimator", cfg["algo"]["estimator"]),
        ("tasks x rollouts", f"{cfg['train']['tasks_per_iteration']} x {cfg['train']['group_size']}"),
        ("iterations done", f"{len(run['metrics'])} of {cfg['train']['iterations']}"),
    ]
    for e in run["eval"]:
        wins = e.get("successes", round(e["success_rate"] * e["episodes"]))
        rows.append((f"eval {e['stage']} (iteration {e['iteration']})", f"{format_rate(wins, e['episodes'])} (95% interval)"))
    machine = run["dir"] / "machine.json" if isinstance(run.get("dir"), Path) else None
    if machine is not None and machine.is_file():
        m = json.loads(machine.read_text())
        rows.append(("machine", f"{m['cpu']} ({m['cores']} cores, {m['torch_threads']} threads), torch {m['torch']}"))
    return "<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows) + "</table>"


def _trajectories(run: dict, limit: int) -> str:
    if not run["trajectories"]:
        return "<p>No trajectories recorded.</p>"
    last = max(t["iteration"] for t in run["trajectories"])
    parts = []
    for t in [t for t in run["trajectories"] if t["iteration"] == last][:limit]:
        outcome = '<span class="won">won</span>' if t["won"] else "not won"
        skills = "".join(f"<li>{html.escape(s)}</li>" for s in t.get("skills", [])) or "<li>none</li>"
        steps = []
        for i, s in enumerate(t["steps"], 1):
            prompt = f"<details><summary>prompt</summary><pre>{html.escape(s['prompt'])}</pre></details>" if s.get("prompt") else ""
            cls = "" if s["valid"] else ' class="bad"'
            steps.append(
                f'<div class="step">{prompt}<b>{i}.</b> action: <code{cls}>{html.escape(str(s["action"]))}</code>'
                f" · reward {s['reward']:g}<br>observation: {html.escape(s['observation'])}</div>"
            )
        parts.append(
            f'<div class="traj"><h3>{html.escape(t["goal"])} <small>({html.escape(t["task_type"])}, task {html.escape(t["task"])}, '
            f"iteration {t['iteration']})</small> · {outcome}</h3><p>skills used:</p><ul>{skills}</ul>{''.join(steps)}</div>"
        )
    return "".join(parts)


def _skills_section(run_dir: Path) -> str:
    """The bank's skills (every status), newest first, with U, its interval, writer and uses."""
    if not (run_dir / "skills.sqlite").is_file():
        return "<p>This run kept no skill bank.</p>"
    from skillvet.skills.bank import Bank

    bank = Bank(run_dir / "skills.sqlite", read_only=True)
    try:
        counts, skills = bank.counts(), bank.skills()
    finally:
        bank.close()

    def fmt(v):
        return "n/a" if v is None else f"{v:+.2f}"

    rows = "".join(
        f"<tr><td>{s.id}</td><td>{s.status}</td><td>{fmt(s.utility)}</td><td>[{fmt(s.utility_lo)}, {fmt(s.utility_hi)}]</td>"
        f"<td>{html.escape(s.writer)}</td><td>{s.uses}</td><td>{s.iteration}</td><td>{html.escape(s.skill.text())}</td></tr>"
        for s in reversed(skills)
    )
    summary = " · ".join(f"{k} {v}" for k, v in counts.items())
    return (
        f"<p>{summary} (details: <code>skillvet skills show {html.escape(str(run_dir))} ID</code>)</p>"
        "<table><tr><th>id</th><th>status</th><th>U</th><th>interval</th><th>writer</th><th>uses</th>"
        f"<th>iteration</th><th>skill</th></tr>{rows}</table>"
    )


def write_report(run_dir: str | Path, out: str | Path | None = None, trajectories: int = 3) -> Path:
    """Figures and report.html for one run; returns the HTML path."""
    run = load_run(run_dir)
    out = Path(out) if out else run["dir"] / "report"
    out.mkdir(parents=True, exist_ok=True)
    figs = run_figures(run, out)
    figures = "".join(
        f'<figure><img alt="{html.escape(cap)}" src="{_img(p)}"><figcaption>{html.escape(cap)}</figcaption></figure>'
        for cap, p in figs
    )
    skills_note = _skills_section(run["dir"])
    page = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>skillvet report: {html.escape(run['dir'].name)}</title>"
        f"<style>{_CSS}</style></head><body><h1>skillvet run {html.escape(run['dir'].name)}</h1>"
        f"{_summary_table(run)}<h2>Training</h2><div class='grid'>{figures}</div>"
        f"<h2>Skills</h2>{skills_note}<h2>Sample trajectories (last iteration)</h2>{_trajectories(run, trajectories)}"
        f"<script>{_LOADED_SCRIPT}</script></body></html>"
    )
    path = out / "report.html"
    path.write_text(page)
    return path


# --------------------------------------------------------------------------------------------
# Comparison across seeds
# --------------------------------------------------------------------------------------------


def recipe_key(config: dict) -> str:
    """Runs share a recipe when their configs agree on everything but the seed and naming."""
    c = json.loads(json.dumps(config))
    c["run"] = {}
    return json.dumps(c, sort_keys=True)


def compare(run_dirs: Sequence[str | Path], out: str | Path | None = None) -> tuple[list[dict], Path | None]:
    """Group runs by recipe; table rows of final eval success (mean, std over seeds), and a
    figure of train and eval success with mean and spread."""
    runs = [load_run(d) for d in run_dirs]
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in runs:
        groups[recipe_key(r["config"])].append(r)
    rows = []
    for members in groups.values():
        finals = [next((e["success_rate"] for e in r["eval"] if e["stage"] == "after"), None) for r in members]
        befores = [next((e["success_rate"] for e in r["eval"] if e["stage"] == "before"), None) for r in members]
        finals_ok = [f for f in finals if f is not None]
        befores_ok = [b for b in befores if b is not None]
        cfg = members[0]["config"]
        name = cfg["run"]["name"].rsplit("-s", 1)[0] if len({m["config"]["run"]["name"] for m in members}) > 1 else cfg["run"]["name"]
        rows.append({
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
            "after_by_seed": {m["config"]["run"]["seed"]: f for m, f in zip(members, finals) if f is not None},
            "after_by_type": _by_type_over_seeds(members),
            "dirs": [str(m["dir"]) for m in members],
            "_members": members,
        })
    fig_path = None
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        plt = _plt()
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), dpi=100)
        for row in rows:
            members = row["_members"]
            n = min(len(m["metrics"]) for m in members)
            if n:
                ys = np.array([[x["train_success"] for x in m["metrics"][:n]] for m in members])
                xs = np.arange(1, n + 1)
                mean, lo, hi = ys.mean(0), ys.min(0), ys.max(0)
                axes[0].plot(xs, mean, label=f"{row['recipe']} ({row['runs']} seeds)")
                axes[0].fill_between(xs, lo, hi, alpha=0.2)
            evs = [sorted(m["eval"], key=lambda e: e["iteration"]) for m in members]
            k = min(len(e) for e in evs)
            if k:
                xs = [e["iteration"] for e in evs[0][:k]]
                ys = np.array([[e["success_rate"] for e in ev[:k]] for ev in evs])
                axes[1].errorbar(xs, ys.mean(0), yerr=ys.std(0, ddof=1) if len(evs) > 1 else None, marker="o", capsize=4,
                                 label=f"{row['recipe']} ({row['runs']} seeds)")
        axes[0].set_title("Train success (mean, min-max over seeds)")
        axes[1].set_title("Eval success (mean ± std over seeds)")
        for ax in axes:
            ax.set_xlabel("iteration")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig_path = out / "compare.png"
        fig.savefig(fig_path)
        plt.close(fig)
        table = format_table(rows)
        (out / "compare.md").write_text(table + "\n")
        (out / "compare.html").write_text(
            f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>skillvet compare</title><style>{_CSS}</style></head>"
            f"<body><h1>Run comparison</h1><figure><img alt='comparison' src='{_img(fig_path)}'></figure>"
            f"<pre>{html.escape(table)}</pre></body></html>"
        )
    for row in rows:
        row.pop("_members")
    return rows, fig_path


def _by_type_over_seeds(members: list[dict]) -> dict:
    """Task type -> mean, std and 95% t interval over seeds of the final eval's success."""
    per_type: dict[str, list[float]] = defaultdict(list)
    for m in members:
        after = next((e for e in m["eval"] if e["stage"] == "after"), None)
        for t, v in (after or {}).get("by_type", {}).items():
            per_type[t].append(v["success_rate"])
    return {t: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                "ci95": list(t_interval(v, 0.95)) if len(v) > 1 else None, "seeds": len(v)}
            for t, v in sorted(per_type.items())}


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
            out.append({"first": a["recipe"], "second": b["recipe"], "seeds": seeds, "mean": float(np.mean(diffs)),
                        "ci95": [lo, hi], "each": diffs})
    return out


def format_table(rows: list[dict]) -> str:
    lines = [
        "| recipe | estimator | seeds | eval success before RL (mean) | eval success after RL (mean ± std) | each seed |",
        "| --- | --- | --- | ---: | ---: | --- |",
    ]
    for r in rows:
        before = "n/a" if r["before_mean"] is None else f"{r['before_mean']:.1%}"
        after = "n/a" if r["after_mean"] is None else f"{r['after_mean']:.1%} ± {r['after_std']:.1%}"
        if r.get("after_ci95"):
            after += f" [{100 * r['after_ci95'][0]:.1f}, {100 * r['after_ci95'][1]:.1f}]"
        each = ", ".join(f"{x:.1%}" for x in r["after_each"])
        lines.append(f"| {r['recipe']} | {r['estimator']} | {', '.join(map(str, r['seeds']))} | {before} | {after} | {each} |")
    types = sorted({t for r in rows for t in r.get("after_by_type", {})})
    if types:
        lines += ["", "| recipe | " + " | ".join(types) + " |", "| --- |" + " ---: |" * len(types)]
        for r in rows:
            cells = []
            for t in types:
                v = r["after_by_type"].get(t)
                cell = "n/a" if v is None else f"{v['mean']:.1%} ± {v['std']:.1%}"
                if v is not None and v["ci95"]:
                    cell += f" [{100 * max(0.0, v['ci95'][0]):.0f}, {100 * min(1.0, v['ci95'][1]):.0f}]"
                cells.append(cell)
            lines.append(f"| {r['recipe']} | " + " | ".join(cells) + " |")
    pairs = paired_differences(rows)
    if pairs:
        lines += ["", "| paired difference (same seeds) | seeds | mean [95% interval] | each seed |", "| --- | --- | ---: | --- |"]
        for p in pairs:
            each = ", ".join(f"{100 * d:+.1f}" for d in p["each"])
            lines.append(f"| {p['first']} - {p['second']} | {', '.join(map(str, p['seeds']))} | "
                         f"{100 * p['mean']:+.1f} [{100 * p['ci95'][0]:+.1f}, {100 * p['ci95'][1]:+.1f}] points | {each} |")
    lines += ["", "Success rates are means over seeds ± their standard deviation, with the 95% Student t interval "
              "of the mean in brackets (points)."]
    return "\n".join(lines)
