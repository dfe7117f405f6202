"""Environment workers as Ray actors (`env.backend: ray`, extra `ray`): the process pool's
workers, placed by Ray on any node of a cluster.

    source = ProcessSource(factory, workers=8, spawn=RayWorker)   # what make_source builds

A `RayWorker` is a drop-in for `skillvet.envs.process.Worker`: an actor hosts any number of
environments (`_Host`, the same as a worker process), requests are sent ahead of their answers
(`send` submits an actor call, `receive` waits for the oldest), and the crash contract is the
pool's: an actor that dies or stops answering ends every episode it hosted with `error` set, and
the pool replaces it before its next environment.

Ray connects to the cluster at `env.ray_address`, else `RAY_ADDRESS`, else starts a local one on
this machine (a laptop needs no cluster). The factory is sent to each actor, which builds its
own source there (the game engine lives on that node).
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable
from typing import Any

from skillvet.envs.process import _Host, answer
from skillvet.envs.protocol import EnvCrashed, TaskSource


def connect(address: str | None = None) -> None:
    """Join the Ray cluster at `address` (or RAY_ADDRESS), or start a local one, once."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private local cluster
        ray.init(include_dashboard=False, log_to_driver=False)


class _Actor:
    """The actor's side: a host of environments answering requests one by one, in order."""

    def __init__(self, factory: Callable[[], TaskSource]) -> None:
        self.host = _Host(factory)

    def answer(self, command: str, arg: Any) -> tuple[str, Any]:
        return answer(self.host, command, arg)

    def pid(self) -> int:
        return os.getpid()


class RayWorker:
    """One Ray actor hosting environments, with the interface of a worker process."""

    def __init__(self, factory: Callable[[], TaskSource], timeout: float) -> None:
        import ray

        connect()
        self.timeout = timeout
        self.actor = ray.remote(num_cpus=1, max_restarts=0)(_Actor).remote(factory)
        # the actor's start (a process, its imports, the source it builds) is not a request:
        # it gets its own, longer limit
        self._pid = ray.get(self.actor.pid.remote(), timeout=max(600.0, timeout))
        self.pending: collections.deque = collections.deque()
        self.hosted = 0
        """Environments open in this actor."""
        self.dead: str | None = None
        """Why this actor is gone, once it is."""

    @property
    def pid(self) -> int | None:
        return self._pid

    def alive(self) -> bool:
        return self.dead is None

    def send(self, command: str, arg: Any = None) -> None:
        if self.dead is not None:
            raise EnvCrashed(self.dead)
        self.pending.append(self.actor.answer.remote(command, arg))

    def receive(self) -> Any:
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        if self.dead is not None:
            raise EnvCrashed(self.dead)
        try:
            status, payload = ray.get(self.pending.popleft(), timeout=self.timeout)
        except GetTimeoutError as err:
            self.kill()
            self._died(f"environment actor gave no answer in {self.timeout:.0f} s", err)
        except RayActorError as err:
            self._died(f"environment actor died: {type(err).__name__}", err)
        if status == "crashed":
            self.kill()
            self._died(payload)
        if status == "error":
            raise RuntimeError(f"environment raised in its actor:\n{payload}")
        return payload

    def call(self, command: str, arg: Any = None) -> Any:
        self.send(command, arg)
        return self.receive()

    def _died(self, why: str, cause: BaseException | None = None) -> None:
        self.dead = why
        self.pending.clear()
        raise EnvCrashed(why) from cause

    def kill(self) -> None:
        import ray

        ray.kill(self.actor, no_restart=True)

    def stop(self) -> None:
        self.kill()
