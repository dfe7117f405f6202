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
