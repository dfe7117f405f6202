"""The HTML of the report pages: the shared style sheet, figures embedded as PNG data URIs,
the run's summary table, its sample trajectories of the last iteration, its skill bank (read
read-only from `skills.sqlite`), and the assembled pages (`run_page` for one run's
`report.html`, `compare_page` for `compare.html`). Every value taken from the run is escaped;
the only script marks on `<body>` how many figures the browser decoded, so a headless browser
can check the page. Reading the run and writing the files is `report`'s job.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from skillvet.report_figures import Figure
from skillvet.stats import format_rate, invalid_words

CSS = (
    "\n"
    "body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;"
    "max-width:1100px;color:#1b1b1b;padding:0 1rem}\n"
    "h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}\n"
    ".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:1rem}\n"
    "figure{margin:0;border:1px solid #e4e4e4;border-radius:6px;padding:.5rem;background:#fff}\n"
    "figure img{width:100%;height:auto}figcaption{font-size:.85rem;color:#555}\n"
    "table{border-collapse:collapse;font-size:.9rem}"
    "td,th{border:1px solid #ddd;padding:.25rem .6rem;text-align:left}\n"
    ".traj{border:1px solid #e4e4e4;border-radius:6px;padding:.5rem 1rem;margin:.8rem 0}\n"
    ".step{margin:.4rem 0;font-size:.88rem}.bad{color:#a40000}.won{color:#0a6b00;font-weight:600}\n"
    "pre{white-space:pre-wrap;background:#f6f6f6;padding:.5rem;border-radius:4px;font-size:.8rem;"
    "max-height:18rem;overflow:auto}\n"
)


# Marks on <body> how many figures the browser decoded: lets a headless browser check the page.
LOADED_SCRIPT = (
    "window.addEventListener('load',()=>{const i=[...document.images];"
    "document.body.dataset.figures=i.length;"
    "document.body.dataset.figuresLoaded=i.filter(x=>x.complete&&x.naturalWidth>0).length;});"
)


def img_uri(path: Path) -> str:
    """The PNG at `path` as a data URI."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def summary_table(run: dict) -> str:
    """The run's recipe, progress, every evaluation with its 95% interval, and the machine."""
    cfg = run["config"]
    env = cfg["env"]
    rows = [
        ("environment", f"{env['name']} (train {env['train_split']}, eval {env['eval_split']})"),
        ("model", f"{cfg['model']['name']}" + (" + LoRA" if cfg["model"].get("lora") else "")),
        ("estimator", cfg["algo"]["estimator"]),
        (
            "tasks x rollouts",
            f"{cfg['train']['tasks_per_iteration']} x {cfg['train']['group_size']}",
        ),
        ("iterations done", f"{len(run['metrics'])} of {cfg['train']['iterations']}"),
    ]
    for e in run["eval"]:
        wins = e.get("successes", round(e["success_rate"] * e["episodes"]))
        invalid = ""
        if e.get("invalid_by_word"):  # evals recorded before the breakdown have none
            invalid = (
                f" · invalid actions {e['invalid_rate']:.1%} of steps ({invalid_words(e, 3)}), "
                f"{e['invalid_repeats']:.1%} repeating the step before"
            )
        rows.append(
            (
                f"eval {e['stage']} (iteration {e['iteration']})",
                f"{format_rate(wins, e['episodes'])} (95% interval){invalid}",
            )
        )
    machine = run["dir"] / "machine.json" if isinstance(run.get("dir"), Path) else None
    if machine is not None and machine.is_file():
        m = json.loads(machine.read_text())
        rows.append(
            (
                "machine",
                f"{m['cpu']} ({m['cores']} cores, {m['torch_threads']} threads), "
                f"torch {m['torch']}",
            )
        )
    return (
        "<table>"
        + "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows
        )
        + "</table>"
    )


def trajectories(run: dict, limit: int) -> str:
    """Up to `limit` trajectories of the last iteration: goal, outcome, skills shown, and each
    step's action, reward and observation (the prompt folded away)."""
    if not run["trajectories"]:
        return "<p>No trajectories recorded.</p>"
    last = max(t["iteration"] for t in run["trajectories"])
    parts = []
    for t in [t for t in run["trajectories"] if t["iteration"] == last][:limit]:
        outcome = '<span class="won">won</span>' if t["won"] else "not won"
        skills = (
            "".join(f"<li>{html.escape(s)}</li>" for s in t.get("skills", [])) or "<li>none</li>"
        )
        steps = "".join(_step(i, s) for i, s in enumerate(t["steps"], 1))
        parts.append(
            f'<div class="traj"><h3>{html.escape(t["goal"])} '
            f"<small>({html.escape(t['task_type'])}, task {html.escape(t['task'])}, "
            f"iteration {t['iteration']})</small> · {outcome}</h3>"
            f"<p>skills used:</p><ul>{skills}</ul>{steps}</div>"
        )
    return "".join(parts)


def _step(i: int, s: dict) -> str:
    prompt = (
        f"<details><summary>prompt</summary><pre>{html.escape(s['prompt'])}</pre></details>"
        if s.get("prompt")
        else ""
    )
    cls = "" if s["valid"] else ' class="bad"'
    return (
        f'<div class="step">{prompt}<b>{i}.</b> action: '
        f"<code{cls}>{html.escape(str(s['action']))}</code>"
        f" · reward {s['reward']:g}<br>observation: {html.escape(s['observation'])}</div>"
    )


def skills_section(run_dir: Path) -> str:
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
        f"<tr><td>{s.id}</td><td>{s.status}</td><td>{fmt(s.utility)}</td>"
        f"<td>[{fmt(s.utility_lo)}, {fmt(s.utility_hi)}]</td>"
        f"<td>{html.escape(s.writer)}</td><td>{s.uses}</td><td>{s.iteration}</td>"
        f"<td>{html.escape(s.skill.text())}</td></tr>"
        for s in reversed(skills)
    )
    summary = " · ".join(f"{k} {v}" for k, v in counts.items())
    return (
        f"<p>{summary} (details: "
        f"<code>skillvet skills show {html.escape(str(run_dir))} ID</code>)</p>"
        "<table><tr><th>id</th><th>status</th><th>U</th><th>interval</th><th>writer</th>"
        "<th>uses</th>"
        f"<th>iteration</th><th>skill</th></tr>{rows}</table>"
    )


def run_page(run: dict, figs: list[Figure], trajectory_limit: int) -> str:
    """The whole `report.html` of one run, its figures embedded."""
    figures = "".join(
        f'<figure><img alt="{html.escape(cap)}" src="{img_uri(p)}">'
        f"<figcaption>{html.escape(cap)}</figcaption></figure>"
        for cap, p in figs
    )
    skills_note = skills_section(run["dir"])
    name = html.escape(run["dir"].name)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>skillvet report: {name}</title>"
        f"<style>{CSS}</style></head><body><h1>skillvet run {name}</h1>"
        f"{summary_table(run)}<h2>Training</h2><div class='grid'>{figures}</div>"
        f"<h2>Skills</h2>{skills_note}"
        f"<h2>Sample trajectories (last iteration)</h2>{trajectories(run, trajectory_limit)}"
        f"<script>{LOADED_SCRIPT}</script></body></html>"
    )


def compare_page(fig_path: Path, table: str) -> str:
    """The whole `compare.html`: the comparison figure and the markdown table."""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>skillvet compare</title><style>{CSS}</style></head>"
        "<body><h1>Run comparison</h1>"
        f"<figure><img alt='comparison' src='{img_uri(fig_path)}'></figure>"
        f"<pre>{html.escape(table)}</pre></body></html>"
    )
