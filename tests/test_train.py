"""The training loop end to end on household with a very small tiny model: run directory,
metrics, evaluation, checkpoints, and a SIGKILL followed by --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import TINY_MODEL

pytest.importorskip("torch")
pytest.importorskip("transformers")

from skillvet.config import load_config

SMALL = [
    *TINY_MODEL,
    "sft.steps=3",
    "sft.tasks=5",
    "sft.batch_size=8",
    "train.tasks_per_iteration=2",
    "train.group_size=2",
    "train.micro_batch_size=8",
    "env.max_steps=3",
    "eval.tasks=4",
    "sampling.max_action_tokens=8",
]

METRIC_KEYS = {
    "iteration",
    "train_success",
    "reward",
    "episode_length",
    "invalid_rate",
    "step_group_size_mean",
    "step_group_size_hist",
    "kl",
    "entropy",
    "loss",
    "rollout_tokens_per_s",
    "learner_tokens_per_s",
    "time_rollout_s",
    "time_learner_s",
    "success_by_type",
}


def _lines(path: Path) -> list[dict]:
    return (
        [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        if path.is_file()
        else []
    )


def test_a_run_directory_holds_everything_a_person_needs(tmp_path):
    from skillvet.train import start_run, train

    cfg = load_config(None, [*SMALL, "train.iterations=2", f"run.out_dir={tmp_path}"])
    run = start_run(cfg, quiet=True)
    result = train(run)
    d = run.dir
    assert d.parent == tmp_path and d.name.startswith("household-tiny-")
    metrics = _lines(d / "metrics.jsonl")
    assert [m["iteration"] for m in metrics] == [1, 2]
    assert set(metrics[0]) >= METRIC_KEYS
    assert all(0.0 <= m["train_success"] <= 1.0 for m in metrics)
    evals = _lines(d / "eval.jsonl")
    assert [e["stage"] for e in evals] == ["before", "after"] and evals[0]["episodes"] == 4
    assert result["after"] == evals[-1]["success_rate"]
    trajectories = _lines(d / "trajectories.jsonl")
    assert trajectories and all(t["steps"] for t in trajectories)
    assert json.loads((d / "checkpoints" / "latest.json").read_text())["iteration"] == 2
    assert (d / "model" / "config.json").is_file() and (d / "config.yaml").is_file()
    assert load_config(d / "config.yaml").train.iterations == 2
    assert _lines(d / "sft.jsonl")


def _run(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "skillvet", "train", *args, "--quiet"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_sigkill_then_resume_loses_no_line_and_repeats_no_iteration(tmp_path):
    iterations = 6
    args = [*SMALL, f"train.iterations={iterations}"]
    killed_root, clean_root = tmp_path / "killed", tmp_path / "clean"
    proc = _run([*args, f"run.out_dir={killed_root}"], tmp_path)
    deadline = time.time() + 300
    metrics_file = None
    while time.time() < deadline:
        found = list(killed_root.glob("*/metrics.jsonl"))
        if found and len(_lines(found[0])) >= 2:
            metrics_file = found[0]
            break
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.05)
    assert metrics_file is not None, "the run never wrote two metrics lines"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_dir = metrics_file.parent
    seen_at_kill = len(_lines(metrics_file))
    assert seen_at_kill < iterations

    resumed = subprocess.run(
        [sys.executable, "-m", "skillvet", "train", "--resume", str(run_dir), "--quiet"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    got = _lines(metrics_file)
    assert [m["iteration"] for m in got] == list(range(1, iterations + 1))
    assert [e["stage"] for e in _lines(run_dir / "eval.jsonl")] == ["before", "after"]

    # the same run without a kill gives the same numbers: the resumed run went on exactly
    clean = _run([*args, f"run.out_dir={clean_root}"], tmp_path)
    clean.communicate(timeout=600)
    assert clean.returncode == 0
    want = _lines(next(clean_root.glob("*/metrics.jsonl")))
    for a, b in zip(got, want):
        assert (a["reward"], a["train_success"], a["samples"]) == (
            b["reward"],
            b["train_success"],
            b["samples"],
        )
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-6)


def test_resume_refuses_a_folder_that_is_not_a_run(tmp_path):
    from skillvet.train import resume_run

    with pytest.raises(FileNotFoundError, match="not a run directory"):
        resume_run(tmp_path)


def test_tensorboard_gets_the_same_numbers_as_metrics_jsonl(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from skillvet.train import start_run, train

    cfg = load_config(
        None, [*SMALL, "train.iterations=2", "log.tensorboard=true", f"run.out_dir={tmp_path}"]
    )
    run = start_run(cfg, quiet=True)
    train(run)
    events = EventAccumulator(str(run.dir / "tensorboard"))
    events.Reload()
    rewards = [e.value for e in events.Scalars("train/reward")]
    metrics = _lines(run.dir / "metrics.jsonl")
    assert rewards == pytest.approx([m["reward"] for m in metrics])
    assert [e.step for e in events.Scalars("eval/success_rate")] == [0, 2]


def test_a_run_whose_groups_never_carry_signal_says_so(tmp_path, capsys):
    """One step per episode: no household task can be won, every group scores 0 alike."""
    from skillvet.train import no_signal_warning, start_run, train

    cfg = load_config(
        None, [*SMALL, "env.max_steps=1", "train.iterations=2", f"run.out_dir={tmp_path}"]
    )
    run = start_run(cfg, quiet=True)
    result = train(run)
    metrics = _lines(run.dir / "metrics.jsonl")
    assert [m["zero_signal_share"] for m in metrics] == [1.0, 1.0]
    assert all(m["train_success"] == 0.0 and m["advantage_abs_mean"] == 0.0 for m in metrics)
    assert "no learning signal in any of the 2 iterations" in capsys.readouterr().err
    summary = json.loads((run.dir / "summary.json").read_text())
    assert (
        summary["warnings"] == result["warnings"]
        and "no rollout ever succeeded" in summary["warnings"][0]
    )
    # one iteration with signal is enough to stay quiet
    assert no_signal_warning([*metrics, {**metrics[0], "zero_signal_share": 0.75}]) is None


def test_the_run_directory_records_the_machine_and_the_chosen_warm_start(tmp_path):
    import torch

    from skillvet.train import start_run, train

    cfg = load_config(
        None,
        [
            *SMALL,
            "sft.steps=4",
            "sft.val_every=2",
            "sft.val_tasks=3",
            "train.iterations=1",
            f"run.out_dir={tmp_path}",
        ],
    )
    run = start_run(cfg, quiet=True)
    result = train(run)
    machine = json.loads((run.dir / "machine.json").read_text())
    assert machine["cores"] >= 1 and machine["torch"] == torch.__version__ and machine["cpu"]
    assert machine["torch_threads"] == 1  # model.threads=1
    assert result["machine"]["cpu"] == machine["cpu"]
    val = [x for x in _lines(run.dir / "sft.jsonl") if "val_accuracy" in x]
    assert [x["step"] for x in val] == [2, 4]
    best = max(val, key=lambda x: (x["val_accuracy"], -x["val_loss"]))
    assert result["warm_start"]["step"] == best["step"] and result["warm_start"]["select"] == "best"
    held_out = json.loads((run.dir / "warm_start.json").read_text())["val_steps"]
    for x in val:  # every validation counts each held-out step under the kind of its action
        assert sum(k["steps"] for k in x["val_by_kind"].values()) == held_out
        assert all(0 <= k["right"] <= k["steps"] for k in x["val_by_kind"].values())
    lo, hi = result["after_eval"]["ci95"]
    assert lo <= result["after"] <= hi


def test_a_warm_start_chosen_by_held_out_play_records_what_it_won(tmp_path):
    from skillvet.runs import _player
    from skillvet.train import start_run

    cfg = load_config(
        None,
        [
            *SMALL,
            "sft.steps=6",
            "sft.val_every=2",
            "sft.val_tasks=3",
            "sft.val_play=5",
            "sft.val_play_from=4",
            f"run.out_dir={tmp_path}",
        ],
    )
    run = start_run(cfg, quiet=True)
    val = [x for x in _lines(run.dir / "sft.jsonl") if "val_accuracy" in x]
    assert [x["step"] for x in val] == [2, 4, 6] and "val_played" not in val[0]
    assert all(x["val_played"]["episodes"] == 5 for x in val[1:])
    kept = json.loads((run.dir / "warm_start.json").read_text())
    best = max(
        val[1:],
        key=lambda x: (x["val_played"]["successes"], x["val_accuracy"], -x["val_loss"]),
    )
    assert kept["step"] == best["step"] and kept["val_played"] == best["val_played"]
    # the kept weights, played again on the same held-out tasks and seeds, win the same
    held_out = run.source.tasks(cfg.env.train_split)[cfg.sft.tasks : cfg.sft.tasks + 5]
    again = _player(cfg, run.source, held_out)(run.policy)
    assert again == (kept["val_played"]["successes"], 5)


def test_held_out_play_asks_for_tasks_the_split_has(tmp_path):
    from skillvet.config import ConfigError
    from skillvet.train import start_run

    with pytest.raises(ConfigError, match="val_tasks >= 1"):
        load_config(None, ["sft.val_tasks=0", "sft.val_play=5"])
    many = [*SMALL, "sft.steps=2", "sft.val_play=100000", f"run.out_dir={tmp_path}"]
    with pytest.raises(ConfigError, match=r"sft\.val_play: 100000 held-out tasks asked"):
        start_run(load_config(None, [*many, "sft.val_play_from=1"]), quiet=True)
    assert not any(tmp_path.iterdir())  # refused before a run directory was made
    # an SFT that ends before sft.val_play_from plays nothing, so asks for no tasks
    assert start_run(load_config(None, [*many, "sft.val_play_from=3"]), quiet=True).dir.is_dir()


def test_a_baseline_can_sample_its_tasks_in_clusters_as_sapo_does():
    import numpy as np

    from skillvet.config import ConfigError
    from skillvet.envs.household import HouseholdSource
    from skillvet.sampling import clustered_tasks

    pool = HouseholdSource().tasks("train")
    a = clustered_tasks(pool, 8, 4, np.random.default_rng(3))
    assert len(a) == 8 and len({t.id for t in a}) == 8
    assert len({t.task_type for t in a[:4]}) == 1 and len({t.task_type for t in a[4:]}) == 1
    assert [t.id for t in clustered_tasks(pool, 8, 4, np.random.default_rng(3))] == [
        t.id for t in a
    ]
    assert load_config(None, ["train.task_clusters=4"]).train.task_clusters == 4
    with pytest.raises(ConfigError, match="must divide"):
        load_config(None, ["train.task_clusters=3"])


def test_a_run_on_an_engine_that_is_not_installed_fails_before_it_starts(tmp_path):
    import importlib.util

    from skillvet.train import start_run

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    cfg = load_config(None, [*SMALL, "sampling.engine=vllm", f"run.out_dir={tmp_path}"])
    with pytest.raises(ImportError, match=r"vllm-cpu-env\.sh"):
        start_run(cfg, quiet=True)
    assert not any(tmp_path.iterdir())  # no run directory was made


def test_a_split_the_environment_lacks_is_refused_before_the_run_starts(tmp_path):
    from skillvet.configerror import ConfigError
    from skillvet.train import start_run

    cfg = load_config(None, [*SMALL, "env.eval_split=dev", f"run.out_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=r"env\.eval_split: household has no split 'dev'"):
        start_run(cfg, quiet=True)
    assert not any(tmp_path.iterdir())  # no run directory was made
