"""`skillvet sft` and `skillvet eval` from the command line, on a very small tiny model."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers")

from skillvet.cli import main

SMALL = [
    "--set", "model.tiny.layers=1", "--set", "model.tiny.hidden=32", "--set", "model.tiny.heads=2",
    "--set", "model.tiny.vocab_size=300", "--set", "sft.tasks=5", "--set", "sft.batch_size=8",
    "--set", "env.max_steps=3", "--set", "eval.tasks=4", "--set", "sampling.max_action_tokens=8",
]


def test_sft_writes_a_model_that_eval_reads(tmp_path, capsys):
    out = tmp_path / "warm"
    assert main(["sft", "--env", "household", "--steps", "3", "--out", str(out), "--quiet", *SMALL]) == 0
    printed = capsys.readouterr().out
    assert "eval success" in printed and (out / "model-sft" / "config.json").is_file()

    assert main(["eval", "--model", str(out / "model-sft"), "--env", "household", "--limit", "6",
                 "--max-steps", "3", "--json", "--out", str(tmp_path / "episodes.jsonl")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["episodes"] == 6 and 0.0 <= report["success_rate"] <= 1.0
    assert set(report["by_type"]) and sum(v["episodes"] for v in report["by_type"].values()) == 6
    lines = (tmp_path / "episodes.jsonl").read_text().splitlines()
    assert len(lines) == 6 and all(len(json.loads(x)["steps"]) <= 3 for x in lines)


def test_eval_reads_a_run_directory(tmp_path, capsys):
    from skillvet.config import load_config
    from skillvet.train import start_run, train

    overrides = [a for a in SMALL if a != "--set"]
    cfg = load_config(None, [*overrides, "sft.steps=2", "train.iterations=1", "train.tasks_per_iteration=1",
                             "train.group_size=2", "eval.before=false", f"run.out_dir={tmp_path}"])
    run = start_run(cfg, quiet=True)
    train(run)
    capsys.readouterr()
    assert main(["eval", "--model", str(run.dir), "--env", "household", "--limit", "3", "--max-steps", "2"]) == 0
    assert "success" in capsys.readouterr().out


def test_eval_says_what_is_wrong_with_the_tiny_name(capsys):
    with pytest.raises(SystemExit, match="untrained"):
        main(["eval", "--model", "tiny", "--env", "household", "--limit", "1"])
