"""Sokoban, TextWorld and ScienceWorld: experts win, invalid input is harmless, a dead JVM is
replaced."""

import importlib.util
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from skillvet.config import EnvConfig, ScienceworldConfig, SokobanConfig, TextworldConfig
from skillvet.envs import make_group, make_source

BAD_ACTIONS = ["", "   ", "qwerty", "x" * 5000, "nach oben ⬆", "up\x00down", "\x1b[2J"]


def play(env, actions):
    result = env.reset()
    for action in actions:
        result = env.step(action)
    return result


# --- Sokoban ---------------------------------------------------------------------------------


def needs_sokoban():
    if importlib.util.find_spec("gym_sokoban") is None:
        pytest.skip("gym-sokoban is not installed")


def test_sokoban_expert_solves_rooms_of_one_and_two_boxes():
    needs_sokoban()
    for boxes in (1, 2):
        source = make_source(
            EnvConfig(name="sokoban", max_steps=100, sokoban=SokobanConfig(size=7, boxes=boxes))
        )
        for task in source.tasks("eval")[:25]:
            result = play(source.make(task), source.expert(task))
            assert result.won and result.reward == 10.0, task.id


def test_sokoban_group_copies_identical_and_invalid_moves_harmless():
    needs_sokoban()
    source = make_source(EnvConfig(name="sokoban"))
    task = source.tasks("train")[7]
    envs = make_group(source, task, 3)
    firsts = [e.reset() for e in envs]
    assert firsts[0] == firsts[1] == firsts[2]
    for bad in BAD_ACTIONS:
        result = envs[0].step(bad)
        assert not result.action_valid and result.observation == "Nothing happens."
        assert result.anchor == firsts[0].anchor
    assert envs[0].step(" UP ").action_valid


# --- TextWorld -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def textworld_source(tmp_path_factory):
    pytest.importorskip("textworld")
    cache = tmp_path_factory.mktemp("tw")
    cfg = EnvConfig(
        name="textworld", max_steps=60, textworld=TextworldConfig(cache_dir=str(cache), level=2)
    )
    return make_source(cfg)


def test_textworld_walkthroughs_win_each_game_type(textworld_source):
    tasks = textworld_source.tasks("eval")[:3]
    assert {t.task_type for t in tasks} == {"cooking", "coin_collector", "treasure_hunter"}
    for task in tasks:
        result = play(textworld_source.make(task), textworld_source.expert(task))
        assert result.won and result.done and result.reward == 10.0, task.id
        assert "$$" not in result.observation and "RESTART" not in result.observation


def test_textworld_group_identical_and_invalid_actions_harmless(textworld_source):
    task = textworld_source.tasks("eval")[1]
    envs = make_group(textworld_source, task, 2)
    firsts = [e.reset() for e in envs]
    assert firsts[0] == firsts[1]
    assert "Welcome" not in firsts[0].observation or "$$" not in firsts[0].observation
    for bad in BAD_ACTIONS:
        result = envs[0].step(bad)
        assert not result.action_valid and result.observation == "Nothing happens."
        assert result.anchor == firsts[0].anchor
    for env in envs:
        env.close()


# --- ScienceWorld ----------------------------------------------------------------------------

SCIENCE_TASKS = [
    "find-non-living-thing",
    "lifespan-longest-lived",
    "power-component",
    "test-conductivity",
    "use-thermometer",
]


@pytest.fixture(scope="module")
def science_source():
    pytest.importorskip("scienceworld")
    if shutil.which("java") is None:
        pytest.skip("ScienceWorld needs Java")
    cfg = EnvConfig(
        name="scienceworld",
        max_steps=100,
        scienceworld=ScienceworldConfig(task_names=SCIENCE_TASKS, workers=2),
    )
    source = make_source(cfg)
    yield source
    source.close()


def test_scienceworld_gold_paths_win_five_task_types(science_source):
    tasks = science_source.tasks("dev")[: len(SCIENCE_TASKS)]
    assert {t.task_type for t in tasks} == set(SCIENCE_TASKS)
    for task in tasks:
        env = science_source.make(task)
        result = play(env, science_source.expert(task))
        env.close()
        assert result.won and result.reward == 10.0, task.id


def _java_children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            ppid = int(
                next(line for line in status.splitlines() if line.startswith("PPid:")).split()[1]
            )
            if ppid == pid and "java" in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
    return found


def test_scienceworld_invalid_input_and_killed_jvm(science_source):
    task = science_source.tasks("dev")[0]
    env = science_source.make(task)
    first = env.reset()
    for bad in ["", "fly away please", "\x00\x07"]:
        result = env.step(bad)
        assert not result.action_valid and result.observation == "Nothing happens."
        assert result.anchor == first.anchor

    jvms = _java_children(env.worker.pid)
    assert jvms, "the worker should own a JVM"
    for pid in jvms:
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    result = env.step("look around")
    assert result.done and result.error and "JVM" in result.error
    replaced = science_source.replaced
    env.close()
    assert science_source.replaced == replaced + 1

    again = science_source.make(task)  # a fresh worker and JVM
    assert not again.reset().error
    assert again.step("look around").action_valid
    again.close()
