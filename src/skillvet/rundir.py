"""A run directory's own files, apart from the training loop: where the run started from, its
checkpoints, and the lock a writing process holds.

- `start.json` names the model RL started from by paths relative to the run directory where
  they lie inside it (`model-sft`), so a run can be moved, copied or opened from anywhere, and a
  copy reads its own weights, not the original's. Paths outside it (a cached base model, a hub
  id) stay as they are.
- Checkpoints: `checkpoints/iter-NNNNNN/` holds the trainable weights and the optimizer state,
  written by `torch.distributed.checkpoint` (`skillvet.runs.save_checkpoint`: one process or
  many, each writing its shard); `checkpoints/latest.json` points at the newest and is replaced
  atomically, so a kill during a save leaves the previous checkpoint in use. A missing or
  damaged checkpoint is a `DamagedRun` that says which file, never a raw traceback.
- One writer at a time: a process that trains a run holds an exclusive lock on `run.lock` for
  its life; a second one is refused with `RunInUse` (readers, such as `eval`, take no lock).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch


class DamagedRun(RuntimeError):
    """A file of a run directory is missing or does not parse; the message names it."""


class RunInUse(RuntimeError):
    """Another process is writing this run directory."""


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def write_start(run_dir: Path, base: str, adapter: str | None) -> None:
    """Record the model RL starts from (a folder or hub id, and any LoRA adapter folder)."""

    def stored(p: str | None) -> str | None:
        if p is None or not Path(p).exists() or not _inside(Path(p), run_dir):
            return p
        return Path(os.path.relpath(Path(p).resolve(), run_dir.resolve())).as_posix()

    (run_dir / "start.json").write_text(
        json.dumps({"base": stored(base), "adapter": stored(adapter)}) + "\n"
    )


def read_start(run_dir: Path) -> tuple[str, str | None]:
    """(base, adapter) of a run's start, resolved against the run directory."""
    try:
        start = json.loads((run_dir / "start.json").read_text())
        base, adapter = start["base"], start.get("adapter")
    except FileNotFoundError as err:
        raise DamagedRun(f"{run_dir} is not a run directory: it has no start.json") from err
    except (ValueError, KeyError, TypeError) as err:
        raise DamagedRun(f"{run_dir / 'start.json'} is damaged: {err}") from err

    def resolved(p: str | None) -> str | None:
        if p is None or Path(p).is_absolute():
            return p
        if (run_dir / p).exists():
            return str(run_dir / p)
        # written before paths were relative: runs/<this run>/model-sft, from where it started
        old = Path(p)
        if old.parent.name == run_dir.name and (run_dir / old.name).exists():
            return str(run_dir / old.name)
        return p  # a model outside the run (a cached folder, a hub id)

    return resolved(base), resolved(adapter)  # type: ignore[return-value]


def lock(run_dir: Path):
    """Hold the run's writer lock; returns the open lock file (the lock lasts while it is open)."""
    import fcntl

    handle = (run_dir / "run.lock").open("a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as err:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunInUse(
            f"{run_dir} is being written by {holder}; wait for it to end (or stop it) first"
        ) from err
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()}\n")
    handle.flush()
    return handle


def latest_checkpoint(run_dir: Path) -> tuple[int, Path] | None:
    """(iteration, folder) of the checkpoint `checkpoints/latest.json` points at, if any."""
    pointer = run_dir / "checkpoints" / "latest.json"
    if not pointer.is_file():
        return None
    try:
        latest = json.loads(pointer.read_text())
        iteration, folder = int(latest["iteration"]), run_dir / "checkpoints" / latest["folder"]
    except (ValueError, KeyError, TypeError) as err:
        raise DamagedRun(
            f"{pointer} is damaged ({err}); point it at a folder of checkpoints/ to resume"
        ) from err
    if not folder.is_dir():
        raise DamagedRun(f"{pointer} points at {folder.name}, which is missing")
    return iteration, folder


def load_checkpoint_file(folder: Path, name: str) -> dict:
    """One file of a checkpoint written by torch.save (trainable.pt, optimizer.pt: checkpoints
    from before `torch.distributed.checkpoint`), or a DamagedRun naming it."""
    path = folder / name
    if not path.is_file():
        raise DamagedRun(f"checkpoint file {path} is missing")
    try:
        return torch.load(path, map_location="cpu")
    except Exception as err:  # torch raises many kinds on a truncated or foreign file
        raise DamagedRun(f"checkpoint file {path} is damaged: {type(err).__name__}: {err}") from err


def checkpoint_folder(run_dir: Path, iteration: int) -> Path:
    return run_dir / "checkpoints" / f"iter-{iteration:06d}"


def point_latest(run_dir: Path, iteration: int, keep_every: int) -> None:
    """Point latest.json at checkpoint `iteration` (written), drop the previous unless kept."""
    root = run_dir / "checkpoints"
    folder = checkpoint_folder(run_dir, iteration).name
    pointer = root / "latest.json"
    try:
        previous = json.loads(pointer.read_text())["folder"] if pointer.is_file() else None
    except (ValueError, KeyError, TypeError):
        previous = None
    tmp = root / "latest.json.tmp"
    tmp.write_text(json.dumps({"iteration": iteration, "folder": folder}) + "\n")
    tmp.replace(pointer)
    if previous and previous != folder:
        prev_iter = int(previous.split("-")[1])
        if not (keep_every and prev_iter % keep_every == 0):
            shutil.rmtree(root / previous, ignore_errors=True)
