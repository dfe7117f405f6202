"""Environments in worker processes: same results, and a killed worker is replaced."""

import functools
import os
import signal
import time

from skillvet.envs.household import HouseholdSource
from skillvet.envs.process import ProcessSource


def make_household():
    return HouseholdSource(max_steps=30)


def test_worker_env_matches_in_process_env():
    local = make_household()
    pool = ProcessSource(functools.partial(HouseholdSource, max_steps=30), workers=1)
    try:
        task = local.tasks("eval")[2]
        plan = local.expert(task)
        remote = pool.make(task)
        here = local.make(task)
        assert remote.reset() == here.reset()
        for action in [*plan[:2], "garbage", *plan[2:]]:
            assert remote.step(action) == here.step(action)
        assert remote.last.won
        remote.close()
    finally:
        pool.close()


def test_killed_worker_ends_the_episode_and_is_replaced():
    pool = ProcessSource(make_household, workers=2)
    try:
        tasks = pool.tasks("eval")[:2]
        doomed, healthy = pool.make(tasks[0]), pool.make(tasks[1])
        doomed.reset()
        healthy.reset()
        os.kill(doomed.worker.pid, signal.SIGKILL)
        time.sleep(0.2)
        result = doomed.step("look")
        assert result.done and result.error is not None and "died" in result.error
        assert not result.won

        # the other episode in the batch goes on and wins
        for action in pool.expert(tasks[1]):
            last = healthy.step(action)
        assert last.won

        old_pid = doomed.worker.pid
        doomed.close()
        healthy.close()
        assert pool.replaced == 1

        # the next task gets a fresh worker and plays normally
        again = pool.make(tasks[0])
        assert again.worker.pid != old_pid
        again.reset()
        for action in pool.expert(tasks[0]):
            last = again.step(action)
        assert last.won
        again.close()
    finally:
        pool.close()
