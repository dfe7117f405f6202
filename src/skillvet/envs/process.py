"""Environments in worker processes: isolation, a bounded pool, and replacement after a crash.

`ProcessSource(factory, workers=k)` wraps any task source. Each of its k workers is a process
that builds its own source with `factory()` (so a JVM or game engine lives there, and is reused
from task to task) and plays one environment at a time. When a worker dies (a killed JVM, a
segfault), the episode it was playing ends with `StepResult.error` set, and the worker is
replaced by a fresh process before its next task: the batch goes on.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from skillvet.envs.protocol import EnvCrashed, TaskSource
from skillvet.types import StepResult, Task

_CTX = mp.get_context("spawn")  # no inherited threads or CUDA state in workers


def _serve(conn: Connection, factory: Callable[[], TaskSource]) -> None:
    """Worker main loop: build the source, then answer (command, argument) requests."""
    source = factory()
    env = None
    while True:
        try:
            command, arg = conn.recv()
        except EOFError:  # the parent went away
            return
        try:
            if command == "make":
                if env is not None:
                    env.close()
                env = source.make(arg)
                reply: Any = None
            elif command == "reset":
                reply = env.reset()
            elif command == "step":
                reply = env.step(arg)
            elif command == "close":
                if env is not None:
                    env.close()
                env = None
                reply = None
            elif command == "stop":
                conn.send(("ok", None))
                return
            else:
                raise ValueError(f"unknown worker command {command!r}")
            conn.send(("ok", reply))
        except EnvCrashed as err:  # the engine behind the environment died: so does this worker
            conn.send(("crashed", str(err)))
            return
        except Exception:  # sent back to the parent and raised there with this traceback
            conn.send(("error", traceback.format_exc()))


class Worker:
    """One worker process and the pipe to it."""

    def __init__(self, factory: Callable[[], TaskSource], timeout: float) -> None:
        self.timeout = timeout
        self.conn, child = _CTX.Pipe()
        self.process = _CTX.Process(target=_serve, args=(child, factory), daemon=True)
        self.process.start()
        child.close()

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.is_alive()

    def call(self, command: str, arg: Any = None) -> Any:
        try:
            self.conn.send((command, arg))
            if not self.conn.poll(self.timeout):
                self.kill()
                raise EnvCrashed(
                    f"environment worker gave no answer to {command!r} in {self.timeout:.0f} s"
                )
            status, payload = self.conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError, OSError) as err:
            self.process.join(timeout=1)
            raise EnvCrashed(
                f"environment process died (exit code {self.process.exitcode})"
            ) from err
        if status == "crashed":
            self.process.join(timeout=5)
            raise EnvCrashed(payload)
        if status == "error":
            raise RuntimeError(f"environment raised in its worker:\n{payload}")
        return payload

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()

    def stop(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(EnvCrashed):
                self.call("stop")
        self.kill()


class ProcessEnv:
    """An environment played in a worker; a worker crash ends the episode with `error` set."""

    def __init__(self, pool: ProcessSource, worker: Worker, task: Task) -> None:
        self.pool, self.worker, self.task = pool, worker, task
        self.last: StepResult | None = None
        self.crashed = False

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

    def _call(self, command: str, arg: Any = None) -> StepResult:
        if self.crashed:
            raise RuntimeError("this environment's process died; make a new environment")
        try:
            self.last = self.worker.call(command, arg)
        except EnvCrashed as err:
            return self._crash_result(err)
        return self.last

    def reset(self) -> StepResult:
        return self._call("reset")

    def step(self, action: str) -> StepResult:
        return self._call("step", action)

    def close(self) -> None:
        self.pool.release(self.worker, broken=self.crashed)


class ProcessSource:
    """A task source whose environments run in a bounded pool of worker processes."""

    def __init__(
        self, factory: Callable[[], TaskSource], workers: int = 1, timeout: float = 120.0
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.factory, self.size, self.timeout = factory, workers, timeout
        self.local = factory()  # lists tasks and plans experts here; engines start lazily
        self.name = self.local.name
        self.idle: list[Worker] = []
        self.busy: set[Worker] = set()
        self.replaced = 0
        """How many dead workers have been replaced so far."""

    def splits(self) -> dict[str, int]:
        return self.local.splits()

    def tasks(self, split: str) -> list[Task]:
        return self.local.tasks(split)

    def expert(self, task: Task) -> list[str]:
        return self.local.expert(task)

    def _acquire(self) -> Worker:
        while self.idle:
            worker = self.idle.pop()
            if worker.alive():
                return worker
            worker.kill()
            self.replaced += 1
        if len(self.busy) >= self.size:
            raise RuntimeError(
                f"all {self.size} environment workers are in use; close an environment first"
            )
        return Worker(self.factory, self.timeout)

    def make(self, task: Task) -> ProcessEnv:
        worker = self._acquire()
        self.busy.add(worker)
        try:
            worker.call("make", task)
        except EnvCrashed:
            self.busy.discard(worker)
            worker.kill()
            self.replaced += 1
            worker = Worker(self.factory, self.timeout)  # one fresh try
            self.busy.add(worker)
            worker.call("make", task)
        return ProcessEnv(self, worker, task)

    def release(self, worker: Worker, broken: bool) -> None:
        self.busy.discard(worker)
        if not broken:
            try:
                worker.call("close")
                self.idle.append(worker)
                return
            except EnvCrashed:
                pass
        worker.kill()
        self.replaced += 1

    def close(self) -> None:
        for worker in [*self.idle, *self.busy]:
            worker.stop()
        self.idle.clear()
        self.busy.clear()
