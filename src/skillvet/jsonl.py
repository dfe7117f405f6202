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


def keep_through(path: Path, iteration: int) -> None:
    """Keep the records whose iteration is <= `iteration` (the file is rewritten atomically)."""
    if not path.is_file():
        return
    kept = [r for r in read_jsonl(path) if r.get("iteration", 0) <= iteration]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
    tmp.replace(path)
