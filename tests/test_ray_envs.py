"""Environment workers as Ray actors (`env.backend: ray`) in local mode: the process pool's
contract (many environments per actor, batches stepped side by side, a killed actor's episodes
marked and the actor replaced), and the same games as the process pool."""

from __future__ import annotations

import functools
import hashlib
import re
import time

import pytest

ray = pytest.importorskip("ray")
torch = pytest.importorskip("torch")

from skillvet.envs.household import HouseholdSource  # noqa: E402
from skillvet.envs.process import ProcessSource, reset_all, step_all  # noqa: E402
from skillvet.envs.ray_workers import RayWorker, connect  # noqa: E402
from skillvet.policy.hf import Generation  # noqa: E402
from skillvet.rollout import rollout  # noqa: E402

make_household = functools.partial(HouseholdSource, max_steps=30)


@pytest.fixture(scope="module", autouse=True)
def local_cluster():
    connect()  # a local cluster on this machine
    yield
    ray.shutdown()


class AdmissibleSampler:
    """Answers every prompt with an admissible action picked by a hash of the prompt (the same
    prompt, the same action); `on_call(k)` runs before the k-th batch (a test's fault)."""

    device = torch.device("cpu")
    exact = True

    def __init__(self, on_call=None) -> None:
        self.texts: list[str] = []
        self.calls = 0
        self.on_call = on_call

    def encode_prompt(self, text: str) -> list[int]:
        self.texts.append(text)
        return [len(self.texts) - 1]

    def generate(self, prompts, max_new_tokens, temperature=1.0, generator=None, **_):
        self.calls += 1
        if self.on_call is not None:
            self.on_call(self.calls)
        out = []
        for ids in prompts:
            text = self.texts[ids[0]]
            actions = re.findall(r"'([^']+)'", text.split("Admissible actions:")[1])
            h = int(hashlib.sha256(text.encode()).hexdigest(), 16)
            action = actions[h % len(actions)]
            out.append(Generation([1, 2], [-0.1, -0.1], f"<action>{action}</action>", "stop"))
        return out


def test_actors_host_many_environments_and_play_as_this_process_does():
    local = make_household()
    pool = ProcessSource(make_household, workers=2, spawn=RayWorker)
    try:
        tasks = [t for t in pool.tasks("eval")[:16] for _ in range(4)]  # 64 environments
        envs = [pool.make(t) for t in tasks]
        assert len(pool.workers) == 2 and sorted(w.hosted for w in pool.workers) == [32, 32]
        assert len({w.pid for w in pool.workers}) == 2
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


def test_a_rollout_of_64_environments_on_2_actors_equals_the_in_process_one():
    pool = ProcessSource(make_household, workers=2, spawn=RayWorker)
    try:
        tasks = pool.tasks("train")[:8]
        kw = dict(max_new_tokens=8, temperature=1.0)
        far = rollout(AdmissibleSampler(), pool, tasks, 8, **kw)
        near = rollout(AdmissibleSampler(), make_household(), tasks, 8, **kw)
        assert len(far) == 64 and all(e.error is None for e in far)
        assert [[s.observation for s in e.steps] for e in far] == [
            [s.observation for s in e.steps] for e in near
        ]
        assert [e.won for e in far] == [e.won for e in near]
    finally:
        pool.close()


def wait_until_dead(actor, limit: float = 60.0) -> None:
    """`ray.kill` returns before the actor is gone, and a call sent meanwhile may still be
    answered: wait until calls fail, so that the kill lands between two steps."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            ray.get(actor.pid.remote(), timeout=limit)
        except ray.exceptions.RayActorError:
            return
        time.sleep(0.05)
    raise AssertionError(f"the killed actor still answers after {limit} s")


def test_an_actor_killed_mid_rollout_ends_its_episodes_and_is_replaced():
    pool = ProcessSource(make_household, workers=2, spawn=RayWorker)
    killed = []

    def kill_one(call: int) -> None:
        if call == 3:
            killed.append(pool.workers[0])
            ray.kill(pool.workers[0].actor, no_restart=True)
            wait_until_dead(pool.workers[0].actor)

    try:
        tasks = pool.tasks("train")[:4]
        episodes = rollout(
            AdmissibleSampler(kill_one), pool, tasks, 4, max_new_tokens=8, temperature=1.0
        )
        marked = [e for e in episodes if e.error is not None]
        assert killed and 0 < len(marked) <= 8  # the dead actor hosted half of the 16
        assert all(len(e.steps) == 3 and not e.won for e in marked)
        assert all(e.error is None for e in episodes if e not in marked)
        # the next rollout gets a fresh actor in the dead one's place and plays whole episodes
        again = rollout(AdmissibleSampler(), pool, tasks, 4, max_new_tokens=8, temperature=1.0)
        assert all(e.error is None for e in again)
        assert pool.replaced == 1 and killed[0] not in pool.workers and len(pool.workers) == 2
    finally:
        pool.close()


def test_alfworld_eval_on_ray_gives_the_process_pools_successes(shared):
    from skillvet.config import EnvConfig
    from skillvet.envs import make_source
    from skillvet.evaluate import evaluate

    pytest.importorskip("alfworld")
    data = str(shared / "alfworld")
    results = {}
    for backend in ("process", "ray"):
        source = make_source(EnvConfig(name="alfworld", data=data, workers=2, backend=backend))
        try:
            tasks = source.tasks("valid_seen")[:20]
            summary, episodes = evaluate(
                AdmissibleSampler(), source, tasks, max_new_tokens=8, temperature=0.0, seed=0
            )
            results[backend] = (summary["successes"], [e.won for e in episodes])
            results[backend + "-obs"] = [[s.observation for s in e.steps] for e in episodes]
        finally:
            source.close()
    assert results["ray"] == results["process"]
    assert results["ray-obs"] == results["process-obs"]
