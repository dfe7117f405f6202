"""Environments in worker processes: isolation, parallel steps, replacement after a crash.

`ProcessSource(factory, workers=k)` wraps any task source. Each of its k workers is a process
that builds its own source with `factory()` (so a JVM or game engine lives there, and is reused
from task to task) and hosts any number of environments at once: the pool's size is the
number of processes stepping side by side, not a limit on environments. A source that plays one
environment at a time (it sets `busy` while it does, as ScienceWorld's single JVM) gets a second
instance in that worker for a second environment, reused afterwards.

`step_all(envs, actions)` (and `reset_all`) sends every request first and gathers the answers
after, so each worker plays its share of a batch while the others play theirs. New environments
go to the worker hosting the fewest.

When a worker dies (a killed JVM, a segfault) or stops answering, every episode it hosted ends
with `StepResult.error` set, and the worker is replaced by a fresh process before its next
environment: the batch goes on.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing as mp
import os
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from skillvet.envs.protocol import Env, EnvCrashed, TaskSource
from skillvet.types import StepResult, Task

_CTX = mp.get_context("spawn")  # no inherited threads or CUDA state in workers


def cores() -> int:
    """CPU cores this process may run on: the default number of workers."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class _Host:
    """A worker's environments by id, and the source instances that make them."""

    def __init__(self, factory: Callable[[], TaskSource]) -> None:
        self.factory = factory
        self.sources = [factory()]
        self.envs: dict[int, Env] = {}

    def make(self, env_id: int, task: Task) -> None:
        source = next((s for s in self.sources if not getattr(s, "busy", False)), None)
        if source is None:
            source = self.factory()
            self.sources.append(source)
        self.envs[env_id] = source.make(task)

    def close(self, env_id: int) -> None:
        env = self.envs.pop(env_id, None)
        if env is not None:
            env.close()

    def answer(self, command: str, arg: Any) -> Any:
        if command == "make":
            return self.make(*arg)
        if command == "reset":
            return self.envs[arg].reset()
        if command == "step":
            return self.envs[arg[0]].step(arg[1])
        if command == "close":
            return self.close(arg)
        raise ValueError(f"unknown worker command {command!r}")


def _serve(conn: Connection, factory: Callable[[], TaskSource]) -> None:
    """Worker main loop: build the source, then answer (command, argument) requests in order."""
    host = _Host(factory)
    while True:
        try:
            command, arg = conn.recv()
        except EOFError:  # the parent went away
            return
        if command == "stop":
            conn.send(("ok", None))
            return
        status, payload = answer(host, command, arg)
        conn.send((status, payload))
        if status == "crashed":  # the engine behind the environment died: so does this worker
            return


def answer(host: _Host, command: str, arg: Any) -> tuple[str, Any]:
    """(status, payload) of one request: ("ok", result), ("crashed", why) when the engine
    behind the environment died, ("error", traceback) when the environment raised."""
    try:
        return "ok", host.answer(command, arg)
    except EnvCrashed as err:
        return "crashed", str(err)
    except Exception:  # sent back to the caller and raised there with this traceback
        return "error", traceback.format_exc()


class Worker:
    """One worker process and the pipe to it. Requests may be sent ahead of their answers
    (`send`, then `receive`); the worker answers them in order."""

    def __init__(self, factory: Callable[[], TaskSource], timeout: float) -> None:
        self.timeout = timeout
        self.conn, child = _CTX.Pipe()
        self.process = _CTX.Process(target=_serve, args=(child, factory), daemon=True)
        self.process.start()
        child.close()
        self.hosted = 0
        """Environments open in this worker."""
        self.dead: str | None = None
        """Why this worker is gone, once it is."""

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def alive(self) -> bool:
        return self.dead is None and self.process.is_alive()

    def send(self, command: str, arg: Any = None) -> None:
        if self.dead is not None:
            raise EnvCrashed(self.dead)
        try:
            self.conn.send((command, arg))
        except (BrokenPipeError, ConnectionResetError, OSError) as err:
            self._died(f"environment process died (exit code {self.process.exitcode})", err)

    def receive(self) -> Any:
        if self.dead is not None:
            raise EnvCrashed(self.dead)
        try:
            if not self.conn.poll(self.timeout):
                self.kill()
                self._died(f"environment worker gave no answer in {self.timeout:.0f} s")
            status, payload = self.conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError, OSError) as err:
            self.process.join(timeout=1)
            self._died(f"environment process died (exit code {self.process.exitcode})", err)
        if status == "crashed":
            self.process.join(timeout=5)
            self._died(payload)
        if status == "error":
            raise RuntimeError(f"environment raised in its worker:\n{payload}")
        return payload

    def call(self, command: str, arg: Any = None) -> Any:
        self.send(command, arg)
        return self.receive()

    def _died(self, why: str, cause: BaseException | None = None) -> None:
        self.dead = why
        raise EnvCrashed(why) from cause

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()

    def stop(self) -> None:
        if self.alive():
            with contextlib.suppress(EnvCrashed):
                self.call("stop")
        self.kill()


class ProcessEnv:
    """An environment played in a worker; a worker crash ends the episode with `error` set."""

    def __init__(self, pool: ProcessSource, worker: Worker, env_id: int, task: Task) -> None:
        self.pool, self.worker, self.id, self.task = pool, worker, env_id, task
        self.last: StepResult | None = None
        self.crashed = False
        self.closed = False

    def _crash_result(self, err: EnvCrashed) -> StepResult:
        self.crashed = True
        last = self.last
        return StepResult(
            observation="",
            reward=0.0,
            done=True,
            task=last.task if last else "",
            task_type=last.task_type if last else self.task.task_type,
            anchor=("crashed", self.task.id),
            admissible=None,
            won=False,
            action_valid=False,
            error=str(err),
        )

    def send(self, command: str, arg: Any = None) -> None:
        """The first half of a request (`receive` is the second); a crash shows in `receive`."""
        if self.crashed:
            raise RuntimeError("this environment's process died; make a new environment")
        with contextlib.suppress(EnvCrashed):
            self.worker.send(command, arg)

    def receive(self) -> StepResult:
        try:
            self.last = self.worker.receive()
        except EnvCrashed as err:
            return self._crash_result(err)
        return self.last

    def reset(self) -> StepResult:
        self.send("reset", self.id)
        return self.receive()

    def step(self, action: str) -> StepResult:
        self.send("step", (self.id, action))
        return self.receive()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.pool.release(self)


class ProcessSource:
    """A task source whose environments run in a pool of worker processes (`spawn`: how a
    worker is started; `Worker`, a local process, or `skillvet.envs.ray_workers.RayWorker`, a
    Ray actor on any node of a cluster)."""

    def __init__(
        self,
        factory: Callable[[], TaskSource],
        workers: int = 1,
        timeout: float = 120.0,
        spawn: Callable[[Callable[[], TaskSource], float], Any] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.factory, self.size, self.timeout = factory, workers, timeout
        self.spawn = spawn or Worker
        self.local = factory()  # lists tasks and plans experts here; engines start lazily
        self.name = self.local.name
        self.workers: list[Worker] = []
        self.replaced = 0
        """How many dead workers have been replaced so far."""
        self._ids = itertools.count()

    def splits(self) -> dict[str, int]:
        return self.local.splits()

    def tasks(self, split: str) -> list[Task]:
        return self.local.tasks(split)

    def expert(self, task: Task) -> list[str]:
        return self.local.expert(task)

    def _drop(self, worker: Worker) -> None:
        """A dead worker leaves the pool; a fresh one takes its place at the next `make`."""
        if worker in self.workers:
            self.workers.remove(worker)
            worker.kill()
            self.replaced += 1

    def _worker(self) -> Worker:
        """The live worker hosting the fewest environments (a new one while the pool is short)."""
        for worker in [w for w in self.workers if not w.alive()]:
            self._drop(worker)
        if len(self.workers) < self.size:
            self.workers.append(self.spawn(self.factory, self.timeout))
            return self.workers[-1]
        return min(self.workers, key=lambda w: w.hosted)

    def make(self, task: Task) -> ProcessEnv:
        worker = self._worker()
        env_id = next(self._ids)
        try:
            worker.call("make", (env_id, task))
        except EnvCrashed:  # one fresh try, on a new worker in its place
            worker = self._worker()
            worker.call("make", (env_id, task))
        worker.hosted += 1
        return ProcessEnv(self, worker, env_id, task)

    def release(self, env: ProcessEnv) -> None:
        env.worker.hosted -= 1
        if env.worker.alive():
            with contextlib.suppress(EnvCrashed):
                env.worker.call("close", env.id)
        if not env.worker.alive():
            self._drop(env.worker)

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers.clear()


def reset_all(envs: Sequence[Env]) -> list[StepResult]:
    """`env.reset()` for each, environments in worker processes all at once."""
    return _all(envs, "reset", [None] * len(envs))


def step_all(envs: Sequence[Env], actions: Sequence[str]) -> list[StepResult]:
    """`env.step(action)` for each pair, environments in worker processes all at once: every
    request is sent before any answer is read."""
    return _all(envs, "step", actions)


def _all(envs: Sequence[Env], command: str, args: Sequence[Any]) -> list[StepResult]:
    remote = [isinstance(env, ProcessEnv) for env in envs]
    for env, arg, far in zip(envs, args, remote):
        if far:
            env.send(command, env.id if command == "reset" else (env.id, arg))
    return [
        env.receive() if far else (env.reset() if command == "reset" else env.step(arg))
        for env, arg, far in zip(envs, args, remote)
    ]
