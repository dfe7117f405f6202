"""The report's figures, drawn with matplotlib (Agg, no display) as PNG files: the training
curves of one run (`run_figures`: success, per-type success, reward, episode length, invalid
actions, KL, entropy, loss, throughput, the rollout/learner time split, GiGPO step-group sizes
and the warm-start curves, each only where the run's records support it) and the figure that
compares recipes over seeds (`compare_figure`). Each figure comes with its caption; `report`
embeds them in the HTML pages.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

Figure = tuple[str, Path]
"""A caption and the PNG it describes."""


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _series(metrics: list[dict], key: str) -> tuple[list[int], list[float]]:
    xs = [m["iteration"] for m in metrics if key in m]
    return xs, [float(m[key]) for m in metrics if key in m]


def _line_figure(
    path: Path,
    title: str,
    ylabel: str,
    lines: dict[str, tuple[list, list]],
    points=None,
    xlabel: str = "iteration",
) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    for label, (xs, ys) in lines.items():
        ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.5, label=label)
    for label, (xs, ys) in (points or {}).items():
        ax.plot(xs, ys, marker="s", markersize=7, linestyle="--", linewidth=1, label=label)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(lines) + len(points or {}) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def run_figures(run: dict, out: Path) -> list[Figure]:
    """(caption, png) for every figure the run's records support."""
    m = run["metrics"]
    figs = _success_figures(m, run["eval"], out)
    for key, title, ylabel in [
        ("reward", "Mean episode reward", "reward"),
        ("episode_length", "Episode length", "steps"),
        ("invalid_rate", "Invalid-action rate", "share of steps"),
        ("kl", "KL(pi || pi_ref), k3 estimate", "KL"),
        ("entropy", "Entropy of the sampled tokens", "nats"),
    ]:
        figs.append(
            (title + ".", _line_figure(out / f"{key}.png", title, ylabel, {key: _series(m, key)}))
        )
    figs.append(
        (
            "Loss: total, and its policy-gradient part.",
            _line_figure(
                out / "loss.png",
                "Loss",
                "loss",
                {"loss": _series(m, "loss"), "policy gradient": _series(m, "pg_loss")},
            ),
        )
    )
    figs.append(
        (
            "Throughput: generated tokens/s in rollouts, trained tokens/s in the learner.",
            _line_figure(
                out / "tokens_per_s.png",
                "Tokens per second",
                "tokens/s",
                {
                    "rollout": _series(m, "rollout_tokens_per_s"),
                    "learner": _series(m, "learner_tokens_per_s"),
                },
            ),
        )
    )
    figs.append(_time_split_figure(m, out))
    figs += _step_group_figure(m, out)
    figs += _sft_figures(run["sft"], out)
    return figs


def _success_figures(m: list[dict], ev: list[dict], out: Path) -> list[Figure]:
    """Train and eval success, then success per task type in training and in evaluation."""
    figs: list[Figure] = []
    ev_x = [e["iteration"] for e in ev]
    figs.append(
        (
            "Success rate: training rollouts per iteration, and evaluation (greedy) before, "
            "during and after RL.",
            _line_figure(
                out / "success.png",
                "Success rate",
                "success",
                {"train": _series(m, "train_success")},
                {"eval": (ev_x, [e["success_rate"] for e in ev])},
            ),
        )
    )
    types = sorted({t for x in m for t in x.get("success_by_type", {})})
    if types:
        lines = {
            t: (
                [x["iteration"] for x in m if t in x["success_by_type"]],
                [x["success_by_type"][t] for x in m if t in x["success_by_type"]],
            )
            for t in types
        }
        figs.append(
            (
                "Training success per task type.",
                _line_figure(
                    out / "success_by_type.png", "Train success by task type", "success", lines
                ),
            )
        )
    eval_types = sorted({t for e in ev for t in e.get("by_type", {})})
    if eval_types and ev:
        lines = {
            t: (
                [e["iteration"] for e in ev if t in e["by_type"]],
                [e["by_type"][t]["success_rate"] for e in ev if t in e["by_type"]],
            )
            for t in eval_types
        }
        figs.append(
            (
                "Evaluation success per task type.",
                _line_figure(
                    out / "eval_by_type.png", "Eval success by task type", "success", lines
                ),
            )
        )
    return figs


def _time_split_figure(m: list[dict], out: Path) -> Figure:
    """Stacked bars of rollout and learner seconds per iteration."""
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
    return ("Seconds per iteration, split into rollout and learner.", out / "time_split.png")


def _step_group_figure(m: list[dict], out: Path) -> list[Figure]:
    """A heat map of GiGPO step-group sizes per iteration; none when no iteration logged one."""
    hists = [x.get("step_group_size_hist") for x in m]
    if not any(hists):
        return []
    plt = _plt()
    # sizes x iterations
    grid = np.array([h if h else [0] * 16 for h in hists], dtype=float).T
    grid = grid / np.maximum(grid.sum(0, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    image = ax.imshow(
        grid,
        aspect="auto",
        origin="lower",
        cmap="viridis",
        extent=(0.5, len(hists) + 0.5, 0.5, grid.shape[0] + 0.5),
    )
    ax.set_title("GiGPO step-group sizes (share of rows)")
    ax.set_xlabel("iteration")
    ax.set_ylabel("step-group size (16 = 16 or more)")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(out / "step_groups.png")
    plt.close(fig)
    return [
        (
            "Distribution of step-group sizes over training: size 1 gets no step-level signal.",
            out / "step_groups.png",
        )
    ]


def _sft_figures(sft: list[dict], out: Path) -> list[Figure]:
    """The warm-start loss (train and validation) and validation action accuracy."""
    figs: list[Figure] = []
    train_loss = [s for s in sft if "loss" in s]
    val = [s for s in sft if "val_loss" in s]
    if train_loss:
        lines = {"train": ([s["step"] for s in train_loss], [s["loss"] for s in train_loss])}
        if val:
            lines["validation"] = ([s["step"] for s in val], [s["val_loss"] for s in val])
        figs.append(
            (
                "Warm-start (SFT) loss, on the training batches and on the held-out expert steps.",
                _line_figure(
                    out / "sft_loss.png",
                    "Warm-start loss",
                    "cross-entropy",
                    lines,
                    xlabel="SFT step",
                ),
            )
        )
    if val:
        figs.append(
            (
                "Warm-start action accuracy on the held-out expert steps (the whole answer the "
                "most likely), overall and for the four most common kinds of expert action.",
                _line_figure(
                    out / "sft_accuracy.png",
                    "Warm-start validation",
                    "action accuracy",
                    _accuracy_lines(val),
                    xlabel="SFT step",
                ),
            )
        )
    played = [s for s in val if "val_played" in s]
    if played:
        won = [s["val_played"]["successes"] / max(s["val_played"]["episodes"], 1) for s in played]
        figs.append(
            (
                f"Warm-start success on the {played[-1]['val_played']['episodes']} held-out tasks "
                "played at validations (sft.val_play): what chose the warm start kept.",
                _line_figure(
                    out / "sft_played.png",
                    "Warm start, held-out tasks played",
                    "success",
                    {"held-out tasks": ([s["step"] for s in played], won)},
                    xlabel="SFT step",
                ),
            )
        )
    return figs


def _accuracy_lines(val: list[dict]) -> dict[str, tuple[list, list]]:
    """Overall validation accuracy by step, and per kind of action where recorded."""
    steps = [s["step"] for s in val]
    lines = {"all steps": (steps, [s["val_accuracy"] for s in val])}
    last = val[-1].get("val_by_kind", {})
    for kind in list(last)[:4]:
        rows = [s for s in val if kind in s.get("val_by_kind", {})]
        lines[f"{kind} ({last[kind]['steps']})"] = (
            [s["step"] for s in rows],
            [s["val_by_kind"][kind]["right"] / s["val_by_kind"][kind]["steps"] for s in rows],
        )
    return lines


def compare_figure(rows: list[dict], path: Path) -> Path:
    """Train success (mean, min-max band) and eval success (mean ± std) of each recipe in `rows`
    (each with its loaded runs under `_members`) over seeds, side by side; returns `path`."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), dpi=100)
    for row in rows:
        members = row["_members"]
        label = f"{row['recipe']} ({row['runs']} seeds)"
        n = min(len(m["metrics"]) for m in members)
        if n:
            ys = np.array([[x["train_success"] for x in m["metrics"][:n]] for m in members])
            xs = np.arange(1, n + 1)
            mean, lo, hi = ys.mean(0), ys.min(0), ys.max(0)
            axes[0].plot(xs, mean, label=label)
            axes[0].fill_between(xs, lo, hi, alpha=0.2)
        evs = [sorted(m["eval"], key=lambda e: e["iteration"]) for m in members]
        k = min(len(e) for e in evs)
        if k:
            xs = [e["iteration"] for e in evs[0][:k]]
            ys = np.array([[e["success_rate"] for e in ev[:k]] for ev in evs])
            axes[1].errorbar(
                xs,
                ys.mean(0),
                yerr=ys.std(0, ddof=1) if len(evs) > 1 else None,
                marker="o",
                capsize=4,
                label=label,
            )
    axes[0].set_title("Train success (mean, min-max over seeds)")
    axes[1].set_title("Eval success (mean ± std over seeds)")
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
