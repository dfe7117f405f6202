"""A user's own environment plugs in by import path, with its settings from the recipe: the
README's example (`examples/countdown_env.py`) is checked and trained on here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skillvet.cli import main
from skillvet.config import ConfigError, load_config
from skillvet.envs import make_source

ROOT = Path(__file__).resolve().parents[1]
NAME = "examples.countdown_env:make_source"


def test_the_example_environment_plugs_in_and_its_expert_wins(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert main(["env", "check", NAME, "--expert", "--json", "--set", "options.start_max=9"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["episodes"] == 200 and report["success_rate"] == 1.0
    source = make_source(load_config(None, [f"env.name={NAME}", "env.options.start_max=9"]).env)
    assert source.start_max == 9 and source.name == "countdown"


def test_plugin_names_and_options_are_checked(monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(ConfigError, match=r"package\.module:factory"):
        load_config(None, ["env.name=not a module"])
    with pytest.raises(ConfigError, match="plug-in"):
        load_config(None, ["env.options.start_max=3"])  # household takes no options
    with pytest.raises(ValueError, match="cannot import"):
        make_source(load_config(None, ["env.name=no_such_package.envs:make"]).env)
    with pytest.raises(ValueError, match="has no function"):
        make_source(load_config(None, ["env.name=examples.countdown_env:nothing"]).env)
    with pytest.raises(ValueError, match="no setting"):
        make_source(load_config(None, [f"env.name={NAME}", "env.options.speed=2"]).env)


def test_training_runs_on_the_plugin_environment(monkeypatch, tmp_path):
    pytest.importorskip("transformers")
    from skillvet.train import start_run, train

    monkeypatch.chdir(ROOT)
    cfg = load_config(
        None,
        [
            f"env.name={NAME}",
            "env.options.start_max=4",
            "env.max_steps=6",
            "model.tiny.layers=1",
            "model.tiny.hidden=32",
            "model.tiny.heads=2",
            "model.tiny.vocab_size=300",
            "model.tiny.tokenizer_tasks=5",
            "model.threads=1",
            "sft.steps=20",
            "sft.tasks=40",
            "sft.batch_size=16",
            "sft.val_tasks=5",
            "sft.lr=1e-2",
            "train.iterations=2",
            "train.tasks_per_iteration=2",
            "train.group_size=4",
            "eval.tasks=10",
            "env.eval_split=eval",
            "sampling.max_action_tokens=12",
            f"run.out_dir={tmp_path}",
        ],
    )
    result = train(start_run(cfg, quiet=True))
    metrics = [
        json.loads(x) for x in (Path(result["run_dir"]) / "metrics.jsonl").read_text().splitlines()
    ]
    assert [m["iteration"] for m in metrics] == [1, 2] and result["after_eval"]["episodes"] == 10
