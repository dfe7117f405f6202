"""The report of a short real run, opened in headless Chromium: it loads without console
errors, every figure is decoded by the browser, and no figure is blank."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("transformers")

from skillvet.config import load_config

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SMALL = [
    "model.tiny.layers=1",
    "model.tiny.hidden=32",
    "model.tiny.heads=2",
    "model.tiny.vocab_size=300",
    "model.tiny.tokenizer_tasks=5",
    "sft.steps=3",
    "sft.tasks=5",
    "sft.batch_size=8",
    "sft.val_every=1",
    "sft.val_tasks=2",
    "sft.val_play=2",
    "sft.val_play_from=2",
    "train.tasks_per_iteration=2",
    "train.group_size=2",
    "env.max_steps=3",
    "eval.tasks=4",
    "sampling.max_action_tokens=8",
    "train.iterations=3",
    "train.eval_every=2",
]


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium for the report test")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from skillvet.report import write_report
    from skillvet.train import start_run, train

    root = tmp_path_factory.mktemp("runs")
    run = start_run(load_config(None, [*SMALL, f"run.out_dir={root}"]), quiet=True)
    train(run)
    return write_report(run.dir)


def _png_spread(data: bytes) -> float:
    import matplotlib.image as mpimg

    pixels = mpimg.imread(io.BytesIO(data), format="png")
    return float(pixels[..., :3].std())


def test_every_figure_is_embedded_and_not_blank(report):
    page = report.read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    pngs = sorted(p.name for p in report.parent.glob("*.png"))
    assert len(images) == len(pngs) >= 12
    assert {"sft_loss.png", "sft_accuracy.png", "sft_played.png"} <= set(pngs)
    for data in images:
        assert _png_spread(base64.b64decode(data)) > 0.01
    assert "http://" not in page and "https://" not in page  # opens from disk, offline


def test_the_summary_shows_what_each_evals_invalid_actions_were(report):
    from skillvet.jsonl import read_jsonl

    page = report.read_text()
    evals = read_jsonl(report.parent.parent / "eval.jsonl")
    assert evals and all(e["invalid_by_word"] for e in evals)  # a barely trained policy
    assert page.count("repeating the step before") == len(evals)
    first = next(iter(evals[0]["invalid_by_word"].items()))
    assert f"{first[0]} {first[1]:.1%}" in page


def test_the_page_loads_in_chromium_without_console_errors(report, tmp_path):
    chromium = _chromium()
    dom = subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--dump-dom",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert not console, console  # the page logs nothing: any console line is an error or a warning
    figures = re.search(r'data-figures="(\d+)"', dom.stdout)
    loaded = re.search(r'data-figures-loaded="(\d+)"', dom.stdout)
    assert figures and loaded, "the page's load handler did not run"
    assert int(figures.group(1)) >= 12 and loaded.group(1) == figures.group(1)

    shot = tmp_path / "report.png"
    subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            "--hide-scrollbars",
            "--window-size=1280,2400",
            f"--screenshot={shot}",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert _png_spread(shot.read_bytes()) > 0.05  # not a blank page


def test_compare_groups_seeds_and_reproduces_each_final_number(tmp_path):
    import json

    from skillvet.report import compare, format_table

    runs = []
    for seed, after in [(0, 0.25), (1, 0.5), (2, 0.75)]:
        d = tmp_path / f"r{seed}"
        d.mkdir()
        cfg = load_config(None, [f"run.seed={seed}", f"run.name=cmp-s{seed}"])
        from skillvet.config import save_config

        save_config(cfg, d / "config.yaml")
        (d / "eval.jsonl").write_text(
            json.dumps(
                {
                    "iteration": 0,
                    "stage": "before",
                    "success_rate": 0.1,
                    "episodes": 4,
                    "by_type": {},
                }
            )
            + "\n"
            + json.dumps(
                {
                    "iteration": 2,
                    "stage": "after",
                    "success_rate": after,
                    "episodes": 4,
                    "by_type": {},
                }
            )
            + "\n"
        )
        (d / "metrics.jsonl").write_text(
            "".join(json.dumps({"iteration": i, "train_success": 0.1 * i}) + "\n" for i in (1, 2))
        )
        runs.append(d)
    other = tmp_path / "grpo"
    other.mkdir()
    from skillvet.config import save_config

    save_config(load_config(None, ["algo.estimator=grpo"]), other / "config.yaml")
    rows, figure = compare([*runs, other], tmp_path / "out")
    assert len(rows) == 2
    row = next(r for r in rows if r["estimator"] == "gigpo")
    assert (
        row["runs"] == 3
        and row["after_mean"] == pytest.approx(0.5)
        and row["after_std"] == pytest.approx(0.25)
    )
    assert "50.0% ± 25.0%" in format_table(rows) and figure.is_file()


def test_compare_gives_intervals_over_seeds_per_type_and_the_paired_difference(tmp_path):
    import json

    from skillvet.config import save_config
    from skillvet.report import compare, format_table
    from skillvet.stats import t_interval

    finals = {"gigpo": [0.30, 0.40, 0.35], "grpo": [0.20, 0.35, 0.25]}
    dirs = []
    for estimator, values in finals.items():
        for seed, after in enumerate(values):
            d = tmp_path / f"{estimator}-s{seed}"
            d.mkdir()
            save_config(
                load_config(
                    None,
                    [
                        f"run.seed={seed}",
                        f"run.name=cmp-{estimator}-s{seed}",
                        f"algo.estimator={estimator}",
                    ],
                ),
                d / "config.yaml",
            )
            by_type = {
                "heat": {"success_rate": after, "episodes": 10},
                "cool": {"success_rate": after / 2, "episodes": 10},
            }
            (d / "eval.jsonl").write_text(
                json.dumps(
                    {
                        "iteration": 2,
                        "stage": "after",
                        "success_rate": after,
                        "episodes": 20,
                        "by_type": by_type,
                    }
                )
                + "\n"
            )
            dirs.append(d)
    rows, _ = compare(dirs)
    gigpo = next(r for r in rows if r["estimator"] == "gigpo")
    assert gigpo["after_ci95"] == pytest.approx(list(t_interval(finals["gigpo"], 0.95)))
    assert gigpo["after_by_type"]["heat"]["mean"] == pytest.approx(0.35)
    assert gigpo["after_by_type"]["cool"]["ci95"] == pytest.approx(
        list(t_interval([0.15, 0.2, 0.175], 0.95))
    )
    table = format_table(rows)
    diffs = [a - b for a, b in zip(finals["gigpo"], finals["grpo"])]
    lo, hi = t_interval(diffs, 0.95)
    assert f"{100 * sum(diffs) / 3:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] points" in table
    assert "cmp-gigpo - cmp-grpo" in table and "| cool | heat |" in table


def test_compare_pairs_arms_that_start_from_each_seeds_own_warm_start(tmp_path):
    import json

    from skillvet.config import save_config
    from skillvet.report import compare, paired_differences

    dirs = []
    for arm, extra, finals in (
        ("gigpo", [], [0.30, 0.10, 0.20]),
        ("grpo", ["algo.estimator=grpo", "sft.steps=0"], [0.35, 0.15, 0.20]),
    ):
        for seed, after in enumerate(finals):
            d = tmp_path / f"{arm}-s{seed}"
            d.mkdir()
            warm = [f"model.name={tmp_path}/gigpo-s{seed}/model-sft"] if arm == "grpo" else []
            overrides = [f"run.seed={seed}", f"run.name={arm}-s{seed}", *extra, *warm]
            save_config(load_config(None, overrides), d / "config.yaml")
            record = {"iteration": 12, "stage": "after", "success_rate": after, "episodes": 240}
            (d / "eval.jsonl").write_text(json.dumps(record) + "\n")
            dirs.append(d)
    rows, _ = compare(dirs)
    assert len(rows) == 4  # each GRPO run has a warm start of its own: a recipe of its own
    rows, _ = compare(dirs, ignore=["model.name"])
    assert sorted(r["runs"] for r in rows) == [3, 3]
    (pair,) = paired_differences(rows)
    assert pair["seeds"] == [0, 1, 2]
    assert sorted(pair["each"]) == pytest.approx([-0.05, -0.05, 0.0])
    with pytest.raises(ValueError, match="no such key"):
        compare(dirs, ignore=["model.nmae"])
