"""Bad input loses nothing and crashes nothing: a wrong command, a damaged or shared run
directory, a hostile client of `skillvet serve`, a bank that is not one."""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from helpers import TINY_MODEL, serving_in_thread

pytest.importorskip("transformers")

from skillvet.cli import main
from skillvet.config import load_config

SMALL = [
    *TINY_MODEL,
    "sft.steps=2",
    "sft.tasks=5",
    "sft.batch_size=8",
    "sft.val_tasks=2",
    "train.tasks_per_iteration=1",
    "train.group_size=2",
    "train.micro_batch_size=8",
    "env.max_steps=3",
    "eval.tasks=2",
    "sampling.max_action_tokens=8",
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished two-iteration run, started from inside its parent folder (relative paths)."""
    import os

    from skillvet.train import start_run, train

    root = tmp_path_factory.mktemp("runs")
    here = os.getcwd()
    os.chdir(root)
    try:
        cfg = load_config(None, [*SMALL, "train.iterations=2", "run.out_dir=runs"])
        run = start_run(cfg, quiet=True)
        train(run)
    finally:
        os.chdir(here)
    return root / run.dir


# ---------------------------------------------------------------------------------- run directories


def test_a_run_directory_works_from_anywhere_and_a_copy_reads_its_own_weights(
    finished_run, tmp_path, capsys
):
    start = json.loads((finished_run / "start.json").read_text())
    assert start["base"] == "model-sft"  # relative to the run directory itself
    assert (
        main(["eval", "--model", str(finished_run), "--env", "household", "--limit", "1", "--json"])
        == 0
    )
    capsys.readouterr()
    copy = tmp_path / "copy"
    shutil.copytree(finished_run, copy)
    from skillvet.rundir import read_start

    assert read_start(copy)[0] == str(copy / "model-sft")


def test_a_second_writer_is_refused_while_the_first_holds_the_run(finished_run):
    from skillvet.rundir import RunInUse, lock

    held = lock(finished_run)
    try:
        with pytest.raises(RunInUse, match="being written by process"):
            lock(finished_run)
        assert main(["train", "--resume", str(finished_run), "--quiet"]) == 2
    finally:
        held.close()
    lock(finished_run).close()  # free again once the first has let go


def test_resume_refuses_a_damaged_record_but_drops_a_torn_last_line(tmp_path):
    from skillvet.jsonl import DamagedRecord, keep_through, read_jsonl_strict

    records = tmp_path / "metrics.jsonl"
    records.write_text('{"iteration": 1}\n{"iteration": 2}\n{"iter')  # killed mid-write
    keep_through(records, 5)
    assert [r["iteration"] for r in read_jsonl_strict(records)] == [1, 2]
    records.write_text('{"itera#tion": 1\n{"iteration": 2}\n')  # a damaged first line
    with pytest.raises(DamagedRecord, match="line 1"):
        keep_through(records, 5)
    assert records.read_text().startswith('{"itera#tion"')  # nothing was dropped


def test_missing_or_damaged_checkpoints_get_a_message_naming_the_file(
    finished_run, tmp_path, capsys
):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "run.lock").unlink(missing_ok=True)
    latest = json.loads((run / "checkpoints" / "latest.json").read_text())
    folder = run / "checkpoints" / latest["folder"]
    (folder / "__0_0.distcp").write_bytes(b"not a checkpoint")
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    assert f"checkpoint {folder} is damaged" in capsys.readouterr().err
    shutil.rmtree(run / "checkpoints" / latest["folder"])
    assert main(["eval", "--model", str(run), "--env", "household", "--limit", "1"]) == 2
    assert "which is missing" in capsys.readouterr().err
    (run / "checkpoints" / "latest.json").write_text("{")
    assert main(["eval", "--model", str(run), "--env", "household", "--limit", "1"]) == 2
    assert "latest.json is damaged" in capsys.readouterr().err


def test_eval_of_a_run_starts_from_the_runs_own_env_settings():
    import argparse

    from skillvet.cli import env_config

    run_env = load_config(None, ["env.household.num_receptacles=10", "env.max_steps=9"]).env
    args = argparse.Namespace(
        env="household", data=None, max_steps=None, set=["household.distractors=1"]
    )
    got = env_config(args, run_env)
    assert got.household.num_receptacles == 10 and got.max_steps == 9  # the run's
    assert got.household.distractors == 1  # the command's override on top
    assert env_config(args).household.num_receptacles == 8  # a plain model: the defaults
    other = argparse.Namespace(env="sokoban", data=None, max_steps=None, set=None)
    assert env_config(other, run_env).name == "sokoban"  # another environment: its defaults


# ------------------------------------------------------------------------------ the command line


@pytest.mark.parametrize(
    "argv, says",
    [
        (["eval", "--model", "no/such/run/here", "--env", "household"], "no model folder"),
        (["eval", "--model", "runs", "--env", "household", "--limit", "0"], "must be >= 1"),
        (["eval", "--model", "runs", "--env", "household", "--batch-size", "0"], "must be >= 1"),
        (["eval", "--model", "runs", "--env", "household", "--limit", "-598"], "must be >= 1"),
        (["train", "model.name=../../etc"], "model folder"),
        (["train", "recipes/no-such-recipe.yaml"], "not found"),
        (["skills", "list", "no-such-run"], "no skill bank"),
    ],
)
def test_user_errors_are_one_line_messages(argv, says, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 2
        message = str(exit_.code) if not isinstance(exit_.code, int) else ""
    else:
        message = ""
    err = capsys.readouterr().err + message
    assert code == 2 and says in err and "Traceback" not in err
    # no run directory left
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_invalid_yaml_and_a_folder_in_use_are_messages(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    assert main(["train", str(bad)]) == 2
    assert "skillvet:" in capsys.readouterr().err
    out = tmp_path / "warm"
    out.mkdir()
    (out / "something").write_text("keep me")
    assert main(["sft", "--out", str(out), "--steps", "1"]) == 2
    assert "not empty" in capsys.readouterr().err and (out / "something").read_text() == "keep me"


def test_debug_shows_the_traceback():
    with pytest.raises(ValueError, match="no model folder"):
        main(["--debug", "eval", "--model", "no/such/run/here", "--env", "household"])


# ---------------------------------------------------------------------------------- the skill bank


def test_readers_refuse_what_is_not_a_bank_and_change_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "skills.sqlite").write_bytes(b"")
    assert main(["skills", "list", str(run)]) == 2
    assert "not a skill bank" in capsys.readouterr().err
    assert (run / "skills.sqlite").read_bytes() == b""  # no schema written into it
    from skillvet.skills.bank import Bank

    Bank(run / "skills.sqlite").close()  # a writer makes the bank
    db = sqlite3.connect(run / "skills.sqlite")
    db.execute("DROP TABLE events")
    db.commit()
    db.close()
    assert main(["skills", "show", str(run), "1"]) == 2
    db = sqlite3.connect(run / "skills.sqlite")
    # not recreated
    assert "events" not in {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    db.close()


@pytest.mark.parametrize(
    "record, says",
    [
        ({"title": None, "when": "w", "procedure": "p"}, "must be strings"),
        (
            {"title": "t", "when": "w", "procedure": "p", "task_types": "pick_and_place"},
            "must be a list",
        ),
        ({"title": "t", "when": "w", "procedure": "p", "task_types": [3]}, "must be a list"),
        (["title"], "JSON object"),
    ],
)
def test_skills_import_validates_each_record(record, says, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    from skillvet.skills.bank import Bank

    Bank(run / "skills.sqlite").close()
    file = tmp_path / "skills.jsonl"
    file.write_text(json.dumps(record) + "\n")
    with pytest.raises(SystemExit, match=says):
        main(["skills", "import", str(run), str(file)])


# ---------------------------------------------------------------------------------- serve


@pytest.fixture(scope="module")
def served(finished_run):
    from skillvet.runs import load_run_policy
    from skillvet.serve import make_server

    _, policy = load_run_policy(finished_run)
    with serving_in_thread(
        make_server(policy, "tiny", "127.0.0.1", 0, api_key="k3y", timeout=1.0)
    ) as server:
        yield server


def _post(server, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/chat/completions"
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": "Bearer k3y",
            **(headers or {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _chat(**fields) -> bytes:
    return json.dumps(
        {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 4, **fields}
    ).encode()


@pytest.mark.parametrize(
    "fields, says",
    [
        ({"seed": "abc"}, "seed"),
        ({"seed": 2**70}, "seed"),
        ({"temperature": 1e-45}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"max_tokens": 10**9}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "word " * 5000}]}, "context"),
    ],
)
def test_serve_answers_every_bad_field_with_a_json_400(served, fields, says):
    code, body = _post(served, _chat(**fields))
    assert code == 400 and says in body["error"]["message"]


def test_serve_limits_bodies_and_checks_the_key(served):
    assert _post(served, _chat(seed=3))[0] == 200
    code, body = _post(served, _chat(), headers={"Authorization": "Bearer wrong"})
    assert code == 401 and "Authorization" in body["error"]["message"]
    port = served.server_address[1]
    # a body declared as 100 GB
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k3y\r\n"
            b"Content-Length: 100000000000\r\n\r\n{"
        )
        assert b" 413 " in s.recv(4096)


def test_half_sent_requests_do_not_pin_threads(served):
    port = served.server_address[1]
    before = threading.active_count()
    sockets = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 50\r\n\r\n{")
        sockets.append(s)
    time.sleep(2.5)  # the server's read timeout is 1 s
    assert threading.active_count() <= before + 2
    for s in sockets:
        s.close()
    assert _post(served, _chat())[0] == 200
