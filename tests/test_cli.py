import subprocess
import sys

from skillvet.cli import main


def test_config_show_prints_resolved_config(capsys):
    assert main(["config", "show", "recipes/household-tiny.yaml", "algo.step_weight=0.5"]) == 0
    out = capsys.readouterr().out
    assert "step_weight: 0.5" in out
    assert "estimator: gigpo" in out


def test_config_error_is_a_clear_message_and_exit_2(capsys):
    assert main(["config", "show", "recipes/household-tiny.yaml", "algo.gama=1"]) == 2
    err = capsys.readouterr().err
    assert "did you mean algo.gamma" in err


def test_console_script_help_runs():
    out = subprocess.run(
        [sys.executable, "-m", "skillvet", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "config" in out


def test_env_check_household_json(capsys):
    import json

    assert (
        main(
            ["env", "check", "household", "--split", "eval", "--limit", "60", "--expert", "--json"]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["success_rate"] == 1.0
    assert report["episodes"] == 60
    assert report["steps_per_second"] > 0
    assert len(report["by_type"]) == 6


def test_env_list_names_every_environment(capsys):
    assert main(["env", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("household", "alfworld", "scienceworld", "textworld", "sokoban"):
        assert f"{name}:" in out
    assert "eval: 600 tasks" in out


def test_env_play_reads_numbers_and_text(monkeypatch, capsys):
    answers = iter(["0", "not an action", "quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    assert main(["env", "play", "household", "--split", "eval", "--task", "1000000"]) == 0
    out = capsys.readouterr().out
    assert "You arrive at" in out
    assert "[invalid action]" in out
