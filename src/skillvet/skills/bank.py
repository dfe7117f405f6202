"""The skill bank: one SQLite file in the run directory.

Tables:
- `skills`: every skill ever written (candidates included): title, when to apply, procedure,
  task types, embedding, writer (teacher / policy / rule / import), status (candidate, promoted,
  discarded, pruned), the iteration it was written in, its source trajectories, its utility U
  with the confidence interval, and for policy-written skills the induction prompt and skill
  token ids the generator loss trains on.
- `measurements`: every utility measurement (iteration, task, base rewards, augmented rewards, u).
- `events`: candidate, promoted, discarded, pruned, imported, each with its reason and figures.
- `retrievals`: which skill was shown for which task in which iteration (a skill's uses).
- `goals`: the task type and goal of every task an iteration played (pruning's recent tasks).

Consistency: every change is one transaction (a candidate with its measurements and event; a
whole promotion round), in WAL mode with full sync, so a SIGKILL at any moment leaves either
the state before the change or after it. A skill's status is always its last status event.
On resume, `rollback_after(k)` removes what iterations after checkpoint k wrote and restores
each status from the events that remain, so the bank matches the checkpoint it resumes from.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from skillvet.skills.text import Skill
from skillvet.types import Decision

STATUSES = ("candidate", "promoted", "discarded", "pruned")
_STATUS_OF_EVENT = {
    "candidate": "candidate",
    "promoted": "promoted",
    "discarded": "discarded",
    "pruned": "pruned",
    "imported": "promoted",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS skills (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    when_text TEXT NOT NULL,
    procedure TEXT NOT NULL,
    task_types TEXT NOT NULL,
    embedding BLOB NOT NULL,
    writer TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('candidate', 'promoted', 'discarded', 'pruned')),
    iteration INTEGER NOT NULL,
    sources TEXT NOT NULL,
    induction TEXT,
    utility REAL,
    utility_lo REAL,
    utility_hi REAL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY,
    skill_id INTEGER NOT NULL REFERENCES skills(id),
    iteration INTEGER NOT NULL,
    task TEXT NOT NULL,
    base TEXT NOT NULL,
    augmented TEXT NOT NULL,
    u REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    skill_id INTEGER NOT NULL REFERENCES skills(id),
    iteration INTEGER NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    figures TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS retrievals (
    iteration INTEGER NOT NULL,
    skill_id INTEGER NOT NULL REFERENCES skills(id),
    task TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS goals (
    iteration INTEGER NOT NULL,
    task_type TEXT NOT NULL,
    goal TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS measurements_skill ON measurements(skill_id);
CREATE INDEX IF NOT EXISTS events_skill ON events(skill_id);
CREATE INDEX IF NOT EXISTS retrievals_skill ON retrievals(skill_id);
"""
_INSERT_MEASUREMENT = (
    "INSERT INTO measurements (skill_id, iteration, task, base, augmented, u)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
# every column of a skill, and its uses: how often it was retrieved
_SELECT_SKILLS = (
    "SELECT s.*, (SELECT COUNT(*) FROM retrievals r WHERE r.skill_id = s.id) AS uses FROM skills s"
)


@dataclass
class StoredSkill:
    id: int
    skill: Skill
    task_types: list[str]
    embedding: np.ndarray
    writer: str
    status: str
    iteration: int
    sources: list[str]
    utility: float | None
    utility_lo: float | None
    utility_hi: float | None
    induction: dict | None = None
    uses: int = 0


@dataclass
class Measurement:
    task: str
    base: list[float]
    augmented: list[float]
    u: float


def paired_measurements(
    task_ids: Sequence[str], base_KP: Sequence[list[float]], aug_KP: Sequence[list[float]]
) -> list[Measurement]:
    """One Measurement per task of matched halves (`skillvet.skills.gate.matched_rewards`), u the
    mean augmented reward minus the mean base reward."""
    return [
        Measurement(t, b, a, float(np.mean(a) - np.mean(b)))
        for t, b, a in zip(task_ids, base_KP, aug_KP)
    ]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class NotABank(ValueError):
    """The file is not a skill bank (empty, another database, or missing tables)."""


class Bank:
    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        """Open (a writer: create) the bank at `path`. A reader (`read_only`) changes nothing,
        the schema included, and refuses a file that is not a whole skill bank."""
        self.path = Path(path)
        if read_only:
            self.db = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None
            )
            found = {
                r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            missing = sorted({"skills", "measurements", "events", "retrievals"} - found)
            if missing:
                self.db.close()
                raise NotABank(
                    f"{self.path} is not a skill bank: it has no table {', '.join(missing)}"
                )
            return
        self.db = sqlite3.connect(self.path, isolation_level=None)  # explicit transactions
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def _transaction(self):
        return _Transaction(self.db)

    # ---------------------------------------------------------------- writing

    def add_candidate(
        self,
        skill: Skill,
        *,
        task_types: Sequence[str],
        embedding: np.ndarray,
        writer: str,
        iteration: int,
        sources: Sequence[str],
        measurements: Sequence[Measurement],
        utility: float,
        utility_lo: float,
        utility_hi: float,
        induction: dict | None = None,
        reason: str = "",
    ) -> int:
        """Store a measured candidate (status candidate) with its measurements and event."""
        with self._transaction():
            cur = self.db.execute(
                "INSERT INTO skills (title, when_text, procedure, task_types, embedding, writer,"
                " status, iteration, sources, induction, utility, utility_lo, utility_hi, created)"
                " VALUES (?, ?, ?, ?, ?, ?, 'candidate', ?, ?, ?, ?, ?, ?, ?)",
                (
                    skill.title,
                    skill.when,
                    skill.procedure,
                    json.dumps(list(task_types)),
                    np.asarray(embedding, dtype=np.float32).tobytes(),
                    writer,
                    iteration,
                    json.dumps(list(sources)),
                    json.dumps(induction) if induction else None,
                    utility,
                    utility_lo,
                    utility_hi,
                    _now(),
                ),
            )
            sid = int(cur.lastrowid)
            for m in measurements:
                self.db.execute(
                    _INSERT_MEASUREMENT,
                    (sid, iteration, m.task, json.dumps(m.base), json.dumps(m.augmented), m.u),
                )
            self._event(
                sid,
                iteration,
                "candidate",
                reason or f"written by {writer}",
                {"U": utility, "lo": utility_lo, "hi": utility_hi},
            )
        return sid

    def add_measurements(
        self, skill_id: int, iteration: int, measurements: Sequence[Measurement]
    ) -> None:
        """More utility measurements of a stored skill (re-vetting on fresh tasks)."""
        with self._transaction():
            self.db.executemany(
                _INSERT_MEASUREMENT,
                [
                    (skill_id, iteration, m.task, json.dumps(m.base), json.dumps(m.augmented), m.u)
                    for m in measurements
                ],
            )

    def import_skill(
        self, skill: Skill, *, task_types: Sequence[str], embedding: np.ndarray, source: str
    ) -> int:
        """A skill taken into the bank as it is (status promoted, writer import)."""
        with self._transaction():
            cur = self.db.execute(
                "INSERT INTO skills (title, when_text, procedure, task_types, embedding, writer,"
                " status, iteration, sources, created)"
                " VALUES (?, ?, ?, ?, ?, 'import', 'promoted', 0, ?, ?)",
                (
                    skill.title,
                    skill.when,
                    skill.procedure,
                    json.dumps(list(task_types)),
                    np.asarray(embedding, dtype=np.float32).tobytes(),
                    json.dumps([source]),
                    _now(),
                ),
            )
            sid = int(cur.lastrowid)
            self._event(sid, 0, "imported", f"imported from {source}", {})
        return sid

    def apply(self, iteration: int, decisions: Iterable[Decision]) -> None:
        """All status changes of one round, in one transaction."""
        with self._transaction():
            for d in decisions:
                if d.kind not in _STATUS_OF_EVENT:
                    raise ValueError(f"unknown event kind {d.kind!r}")
                self.db.execute(
                    "UPDATE skills SET status = ? WHERE id = ?",
                    (_STATUS_OF_EVENT[d.kind], d.skill_id),
                )
                self._event(d.skill_id, iteration, d.kind, d.reason, d.figures)

    def log_retrievals(self, iteration: int, pairs: Iterable[tuple[int, str]]) -> None:
        with self._transaction():
            self.db.executemany(
                "INSERT INTO retrievals (iteration, skill_id, task) VALUES (?, ?, ?)",
                [(iteration, sid, task) for sid, task in pairs],
            )

    def log_goals(self, iteration: int, goals: Iterable[tuple[str, str]]) -> None:
        """The (task type, goal) of the tasks an iteration played: pruning scores skills on them."""
        with self._transaction():
            self.db.executemany(
                "INSERT INTO goals (iteration, task_type, goal) VALUES (?, ?, ?)",
                [(iteration, t, g) for t, g in goals],
            )

    def recent_goals(self, after: int) -> list[tuple[str, str]]:
        """The distinct (task type, goal) of the tasks played in iterations after `after`."""
        has_goals = self._query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'goals'"
        )
        if not has_goals:
            return []  # a bank written before goals were kept, opened read-only
        rows = self._query(
            "SELECT DISTINCT task_type, goal FROM goals WHERE iteration > ?"
            " ORDER BY task_type, goal",
            (after,),
        )
        return [(r["task_type"], r["goal"]) for r in rows]

    def _event(self, sid: int, iteration: int, kind: str, reason: str, figures: dict) -> None:
        self.db.execute(
            "INSERT INTO events (skill_id, iteration, kind, reason, figures, at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (sid, iteration, kind, reason, json.dumps(figures), _now()),
        )

    def rollback_after(self, iteration: int) -> None:
        """Forget what iterations after `iteration` wrote; restore statuses from the events left."""
        with self._transaction():
            self.db.execute("DELETE FROM retrievals WHERE iteration > ?", (iteration,))
            self.db.execute("DELETE FROM goals WHERE iteration > ?", (iteration,))
            self.db.execute("DELETE FROM measurements WHERE iteration > ?", (iteration,))
            self.db.execute("DELETE FROM events WHERE iteration > ?", (iteration,))
            self.db.execute("DELETE FROM skills WHERE iteration > ?", (iteration,))
            for sid, kind in self.db.execute(
                "SELECT e.skill_id, e.kind FROM events e"
                " WHERE e.id = (SELECT MAX(id) FROM events WHERE skill_id = e.skill_id)"
            ).fetchall():
                self.db.execute(
                    "UPDATE skills SET status = ? WHERE id = ?", (_STATUS_OF_EVENT[kind], sid)
                )

    # ---------------------------------------------------------------- reading

    def skills(self, status: str | None = None) -> list[StoredSkill]:
        query = _SELECT_SKILLS
        args: tuple = ()
        if status is not None:
            if status not in STATUSES:
                raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
            query += " WHERE s.status = ?"
            args = (status,)
        return [self._row(r) for r in self._query(query + " ORDER BY s.id", args)]

    def get(self, skill_id: int) -> StoredSkill:
        rows = self._query(
            _SELECT_SKILLS + " WHERE s.id = ?",
            (skill_id,),
        )
        if not rows:
            raise KeyError(f"no skill {skill_id} in {self.path}")
        return self._row(rows[0])

    def measurements(self, skill_id: int) -> list[dict]:
        return [
            {
                "iteration": r["iteration"],
                "task": r["task"],
                "base": json.loads(r["base"]),
                "augmented": json.loads(r["augmented"]),
                "u": r["u"],
            }
            for r in self._query(
                "SELECT * FROM measurements WHERE skill_id = ? ORDER BY id", (skill_id,)
            )
        ]

    def events(self, skill_id: int | None = None) -> list[dict]:
        where, args = ("WHERE skill_id = ?", (skill_id,)) if skill_id is not None else ("", ())
        return [
            {
                "skill_id": r["skill_id"],
                "iteration": r["iteration"],
                "kind": r["kind"],
                "reason": r["reason"],
                "figures": json.loads(r["figures"]),
                "at": r["at"],
            }
            for r in self._query(f"SELECT * FROM events {where} ORDER BY id", args)
        ]

    def counts(self) -> dict[str, int]:
        found = dict(
            self.db.execute("SELECT status, COUNT(*) FROM skills GROUP BY status").fetchall()
        )
        return {s: int(found.get(s, 0)) for s in STATUSES}

    def _query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        cur = self.db.cursor()
        cur.row_factory = sqlite3.Row
        return cur.execute(sql, args).fetchall()

    @staticmethod
    def _row(r: sqlite3.Row) -> StoredSkill:
        return StoredSkill(
            id=r["id"],
            skill=Skill(r["title"], r["when_text"], r["procedure"]),
            task_types=json.loads(r["task_types"]),
            embedding=np.frombuffer(r["embedding"], dtype=np.float32).copy(),
            writer=r["writer"],
            status=r["status"],
            iteration=r["iteration"],
            sources=json.loads(r["sources"]),
            utility=r["utility"],
            utility_lo=r["utility_lo"],
            utility_hi=r["utility_hi"],
            induction=json.loads(r["induction"]) if r["induction"] else None,
            uses=r["uses"],
        )


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, value, tb) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
