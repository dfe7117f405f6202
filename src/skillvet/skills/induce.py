"""Writing a candidate skill from the base trajectories of K related tasks.

- `induction_prompt`: Task 1..K with their goals, actions and outcomes, asking for one skill in
  the three-line form (`skillvet.skills.text`). The policy and API teachers answer it.
- `rule_skill`: the offline teacher. From the successes, a procedure: the winning action
  sequences with the goal's object and target replaced by X and Y, numbers dropped, the search
  for an object folded into "find X", and the most frequent of those sequences kept. With no
  success, a lesson from the failures: invalid actions, an object never taken, or one taken and
  never placed.
- `reduced_prompt`: the task alone (no trajectories), the input of the likelihood score.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from skillvet.skills.text import Skill

WRITE_INSTRUCTION = (
    "Write one short skill that would help an agent do tasks like these. Answer in exactly three "
    "lines:\nTitle: <a few words>\nWhen: <which tasks it applies to>\nProcedure: <the steps, "
    "separated by ;>"
)
MAX_SHOWN_ACTIONS = 12

_STOP = {
    "a",
    "an",
    "the",
    "some",
    "put",
    "in",
    "on",
    "with",
    "and",
    "them",
    "it",
    "find",
    "two",
    "clean",
    "hot",
    "cool",
    "cold",
    "examine",
    "look",
    "at",
    "under",
    "to",
    "of",
    "then",
    "heat",
    "place",
    "your",
    "task",
    "is",
    "by",
    "using",
    "into",
    "onto",
    "from",
    "up",
}
_TITLES = {
    "pick_and_place": "Pick and place",
    "look_at_obj_in_light": "Examine under a lamp",
    "pick_clean_then_place": "Clean then place",
    "pick_heat_then_place": "Heat then place",
    "pick_cool_then_place": "Cool then place",
    "pick_two_obj_and_place": "Place two objects",
}


@dataclass(frozen=True)
class Attempt:
    """One base trajectory as the inducers see it."""

    task_id: str
    goal: str
    actions: tuple[str, ...]
    """Parsed actions, "(no action)" where the answer held none."""
    valid: tuple[bool, ...]
    won: bool


def induction_prompt(attempts: Sequence[Attempt]) -> str:
    """Task 1..K: each goal, its first actions and its outcome, then the writing instruction."""
    parts = []
    for i, a in enumerate(attempts, start=1):
        shown = list(a.actions[:MAX_SHOWN_ACTIONS])
        more = f" ... ({len(a.actions) - len(shown)} more)" if len(a.actions) > len(shown) else ""
        outcome = "success" if a.won else "failure"
        parts.append(
            f"Task {i}: {a.goal.strip()}\nActions: {'; '.join(shown) or '(none)'}{more}\nOutcome: "
            f"{outcome}"
        )
    return "\n\n".join(parts) + "\n\n" + WRITE_INSTRUCTION


def reduced_prompt(goal: str) -> str:
    """The task only: the input from which the likelihood score of a skill is computed."""
    return f"Task: {goal.strip()}\n\n{WRITE_INSTRUCTION}"


def goal_slots(goal: str) -> tuple[str | None, str | None]:
    """(X, Y): the goal's object and its target (receptacle or lamp), by word order."""
    words = [w for w in re.findall(r"[a-z]+", goal.lower()) if w not in _STOP]
    return (words[0] if words else None, words[1] if len(words) > 1 else None)


def _abstract(action: str, x: str | None, y: str | None) -> str:
    out = action.lower()
    if x:
        out = re.sub(rf"\b{re.escape(x)}( \d+)?\b", "X", out)
    if y:
        out = re.sub(rf"\b{re.escape(y)}( \d+)?\b", "Y", out)
    out = re.sub(r"\b([a-z]+) \d+\b", r"\1", out)
    out = re.sub(r"\bmove X to\b", "move X to", out)
    return out


def places_walked(attempts: Sequence[Attempt]) -> list[str]:
    """The places walked to in `attempts`, in general form ("go to cabinet 2": cabinet)."""
    walks = (_abstract(a, None, None) for at in attempts for a in at.actions)
    return sorted({w[len("go to ") :] for w in walks if w.startswith("go to ")})


def procedure(actions: Sequence[str], x: str | None, y: str | None) -> tuple[str, ...]:
    """A winning action sequence in general form: X and Y for the goal's object and target,
    the walk to where an object was found folded into "find X" (or "find Y")."""
    steps = [_abstract(a, x, y) for a in actions]
    out: list[str] = []
    for i, step in enumerate(steps):
        nxt = steps[i + 1] if i + 1 < len(steps) else ""
        if step.startswith(("go to", "open")) and re.match(r"take X from", nxt):
            step = "find X"
        elif step.startswith("go to") and nxt.startswith("use Y"):
            step = "find Y"
        elif step.startswith(
            ("open", "close", "look", "inventory", "examine")
        ) and not step.endswith("Y"):
            continue
        if step.startswith("take X from"):
            step = "take X"
        if out and out[-1] == step:
            continue
        out.append(step)
    return tuple(out)


WHEN_PREFIX = "the task is to "
"""How the rule inducer's "When" line opens; the goal's pattern follows."""


def _when(goal: str, x: str | None, y: str | None) -> str:
    pattern = goal.strip().rstrip(".").lower()
    if x:
        pattern = re.sub(rf"\b{re.escape(x)}\b", "X", pattern)
    if y:
        pattern = re.sub(rf"\b{re.escape(y)}\b", "Y", pattern)
    return WHEN_PREFIX + pattern


def rule_skill(attempts: Sequence[Attempt], task_type: str) -> Skill:
    """The offline teacher's skill for a cluster: a procedure from its successes, else a lesson."""
    if not attempts:
        raise ValueError("the rule inducer needs at least one trajectory")
    title = _TITLES.get(task_type, task_type.replace("_", " ").capitalize())
    x0, y0 = goal_slots(attempts[0].goal)
    when = _when(attempts[0].goal, x0, y0)
    wins = [a for a in attempts if a.won]
    if wins:
        sequences = Counter(
            procedure([act for act, ok in zip(a.actions, a.valid) if ok], *goal_slots(a.goal))
            for a in wins
        )
        best = max(sequences.items(), key=lambda kv: (kv[1], -len(kv[0])))[0]
        return Skill(title, when, "; ".join(best))
    return Skill(f"Lesson: {title.lower()}", when, _lesson(attempts))


def _lesson(attempts: Sequence[Attempt]) -> str:
    steps = sum(len(a.actions) for a in attempts)
    invalid = [act for a in attempts for act, ok in zip(a.actions, a.valid) if not ok]
    if steps and len(invalid) / steps > 0.5:
        common = [act for act, _ in Counter(invalid).most_common(2)]
        quoted = " and ".join(f"'{c}'" for c in common)
        return (
            f"most actions were not possible (for example {quoted}); send only an action from the "
            "admissible list, written exactly as listed"
        )
    took = 0
    for a in attempts:
        x, _ = goal_slots(a.goal)
        if x and any(
            ok and act.lower().startswith(f"take {x}") for act, ok in zip(a.actions, a.valid)
        ):
            took += 1
    if took < len(attempts) / 2:
        return (
            "X was not found: go to each receptacle in turn, open it if it is closed, and look "
            "for X before taking it; do not take X from a place you have not seen it in"
        )
    return (
        "after taking X, do what the task asks with X; go to Y and move X to Y before the steps "
        "run out"
    )
