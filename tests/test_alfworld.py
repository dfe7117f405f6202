"""The ALFWorld adapter on the real games in the shared data folder."""

import pytest

pytest.importorskip("alfworld")
pytest.importorskip("textworld")

from skillvet.envs import make_group
from skillvet.envs.alfworld import AlfworldSource, find_data_root
from skillvet.types import TASK_TYPES


@pytest.fixture(scope="module")
def source(shared):
    return AlfworldSource(shared / "alfworld", max_steps=50)


def test_splits_and_task_types(source):
    splits = source.splits()
    assert splits["valid_seen"] == 140 and splits["train"] == 600
    tasks = source.tasks("valid_seen")
    assert {t.task_type for t in tasks[:6]} == set(TASK_TYPES)  # task types take turns


def test_expert_walkthrough_wins_one_game_of_each_type(source):
    for task in source.tasks("valid_seen")[:6]:
        env = source.make(task)
        result = env.reset()
        assert result.task and "Your task is to:" in result.observation
        assert "help" not in result.admissible
        for action in source.expert(task):
            result = env.step(action)
        assert result.won and result.done and result.reward == 10.0, task.id
        env.close()


def test_group_copies_are_identical_and_invalid_actions_change_nothing(source):
    task = source.tasks("valid_seen")[1]
    group = make_group(source, task, 2)
    first = [env.reset() for env in group]
    assert first[0] == first[1]
    env = group[0]
    for bad in ["", "fly to the moon", "x" * 5000, "nehmen Sie den Apfel ☕", "look\x00\x07"]:
        result = env.step(bad)
        assert not result.action_valid and result.observation == "Nothing happens."
        assert result.anchor == first[0].anchor
    moved = env.step(first[0].admissible[0].upper())
    assert moved.action_valid and moved.anchor != first[0].anchor
    for e in group:
        e.close()


def test_data_root_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no ALFWorld games"):
        find_data_root(tmp_path)


def test_games_through_the_worker_pool_play_as_in_this_process(shared):
    """`make_source` puts ALFWorld in worker processes by default; the games answer alike."""
    from skillvet.config import EnvConfig
    from skillvet.envs import make_source
    from skillvet.envs.process import ProcessSource, reset_all, step_all

    local = make_source(
        EnvConfig(name="alfworld", data=str(shared / "alfworld"), workers=0, max_steps=50)
    )
    pool = make_source(
        EnvConfig(name="alfworld", data=str(shared / "alfworld"), workers=2, max_steps=50)
    )
    assert isinstance(pool, ProcessSource) and not isinstance(local, ProcessSource)
    try:
        tasks = local.tasks("valid_seen")[:4]
        envs = [pool.make(t) for t in tasks]
        here = [local.make(t) for t in tasks]
        assert reset_all(envs) == [e.reset() for e in here]
        plans = [local.expert(t) for t in tasks]
        for k in range(max(len(p) for p in plans)):
            live = [i for i, p in enumerate(plans) if k < len(p)]
            assert step_all([envs[i] for i in live], [plans[i][k] for i in live]) == [
                here[i].step(plans[i][k]) for i in live
            ]
        assert all(e.last.won for e in envs)
        for e in [*envs, *here]:
            e.close()
    finally:
        pool.close()
