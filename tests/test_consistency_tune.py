"""examples/consistency_tune.py: the consistency fine-tune writes a run directory the
commands read, with weights that moved and a KL that foreign blocks make positive."""

import json
import subprocess
import sys
from pathlib import Path

import torch

from skillvet.cli import main
from skillvet.runs import load_model
from test_cli_train import SMALL

ROOT = Path(__file__).parents[1]


def tune(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "examples/consistency_tune.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


def test_consistency_tune_writes_a_run_the_commands_read(tmp_path, capsys):
    warm = tmp_path / "warm"
    assert (
        main(["sft", "--env", "household", "--steps", "2", "--out", str(warm), "--quiet", *SMALL])
        == 0
    )
    capsys.readouterr()
    out = tmp_path / "tuned"
    done = tune(str(warm), "--out", str(out), "--steps", "3", "--from-task", "100", "--tasks", "20")
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "consistency.json").read_text())
    # a block of other types' procedures changes an untrained policy's answers a little
    assert summary["held_out_kl"]["before"] > 0 and summary["held_out_kl"]["after"] > 0
    log = [json.loads(line) for line in (out / "consistency.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [0, 1, 2] and all(r["kl"] >= 0 for r in log)
    _, before, _ = load_model(str(warm))
    _, after, _ = load_model(str(out))
    moved = [
        not torch.equal(a, b)
        for a, b in zip(before.model.state_dict().values(), after.model.state_dict().values())
    ]
    assert any(moved)
    assert (
        main(
            [
                "eval",
                "--model",
                str(out),
                "--env",
                "household",
                "--limit",
                "2",
                "--max-steps",
                "2",
                "--quiet",
            ]
        )
        == 0
    )

    read = tune(
        str(warm),
        "--out",
        str(tmp_path / "read"),
        "--steps",
        "2",
        "--from-task",
        "100",
        "--tasks",
        "20",
        "--reading",
    )
    assert read.returncode == 0, read.stderr
    log = [
        json.loads(line)
        for line in (tmp_path / "read" / "consistency.jsonl").read_text().splitlines()
    ]
    assert len(log) == 2 and all(r["reading_ce"] > 0 for r in log)
    assert "reading_ce" not in json.loads((out / "consistency.jsonl").read_text().splitlines()[0])

    refused = tune(str(warm), "--out", str(tmp_path / "again"), "--from-task", "3")
    assert refused.returncode != 0 and "warm start's own tasks" in refused.stderr
    refused = tune(str(warm), "--out", str(tmp_path / "again"), "--pairs", "0")
    assert refused.returncode != 0 and "at least 1" in refused.stderr
