"""JSON-lines records of a run directory: appended durably, read tolerantly, cut back on resume."""

from __future__ import annotations

import json
import os
from pathlib import Path


def append_jsonl(path: Path, record: dict) -> None:
    """Append one record and fsync it: a line written is a line kept."""
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: Path) -> list[dict]:
    """Every complete record; a last line cut by a kill mid-write is skipped."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


class DamagedRecord(ValueError):
    """A line of a run's records other than a torn last one does not parse."""


def read_jsonl_strict(path: Path) -> list[dict]:
    """Every record; only the last line may be torn (a kill mid-write), and is then dropped.
    Any other line that does not parse raises `DamagedRecord` naming the file and line."""
    if not path.is_file():
        return []
    raw = path.read_bytes()
    lines = raw.decode(errors="replace").splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if number == len(lines) and not raw.endswith(b"\n"):
                break  # torn by a kill while it was written
            raise DamagedRecord(f"{path}, line {number}: not a JSON record ({err.msg}); "
                                "repair or remove that line to resume") from err
        if not isinstance(record, dict):
            raise DamagedRecord(f"{path}, line {number}: not a JSON object")
        records.append(record)
    return records


def keep_through(path: Path, iteration: int) -> None:
    """Keep the records whose iteration is <= `iteration` (the file is rewritten atomically).
    A damaged line other than a torn last one raises `DamagedRecord`: nothing is dropped unsaid."""
    if not path.is_file():
        return
    kept = [r for r in read_jsonl_strict(path) if r.get("iteration", 0) <= iteration]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
    tmp.replace(path)
