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


def test_a_worker_hosts_many_environments_and_a_batch_steps_on_all_workers_at_once():
    from skillvet.envs.process import reset_all, step_all

    local = make_household()
    pool = ProcessSource(make_household, workers=2)
    try:
        tasks = [t for t in pool.tasks("eval")[:16] for _ in range(4)]  # 64 environments
        envs = [pool.make(t) for t in tasks]
        assert len(pool.workers) == 2 and sorted(w.hosted for w in pool.workers) == [32, 32]
        here = [local.make(t) for t in tasks]
        assert reset_all(envs) == [e.reset() for e in here]
        plans = [local.expert(t) for t in tasks]
        for k in range(max(len(p) for p in plans)):
            live = [i for i, p in enumerate(plans) if k < len(p)]
            got = step_all([envs[i] for i in live], [plans[i][k] for i in live])
            assert got == [here[i].step(plans[i][k]) for i in live]
        assert all(e.last.won for e in envs)
        for e in envs:
            e.close()
        assert sum(w.hosted for w in pool.workers) == 0 and pool.replaced == 0
    finally:
        pool.close()


def test_a_worker_killed_mid_batch_ends_only_its_episodes_and_is_replaced():
    from skillvet.envs.process import step_all

    pool = ProcessSource(make_household, workers=2)
    try:
        tasks = pool.tasks("eval")[:8]
        envs = [pool.make(t) for t in tasks]
        for e in envs:
            e.reset()
        doomed = envs[0].worker
        os.kill(doomed.pid, signal.SIGKILL)
        time.sleep(0.2)
        results = step_all(envs, ["look"] * len(envs))
        hit = [e.worker is doomed for e in envs]
        assert sum(hit) == 4
        for r, h in zip(results, hit):
            assert (r.error is not None and r.done and not r.won) if h else r.error is None
        for e in envs:
            e.close()
        assert pool.replaced == 1 and doomed not in pool.workers
        fresh = pool.make(tasks[0])
        assert fresh.worker.pid != doomed.pid and fresh.reset().error is None
        fresh.close()
    finally:
        pool.close()
