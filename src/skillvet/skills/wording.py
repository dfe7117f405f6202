"""A skill said in other words (functions of a skill and a random generator, no state).

Every skill a warm start shows comes from one writer, the rule inducer, in one wording: a
handful of distinct strings per world. A policy can then learn to follow or ignore a block by
recognising the string rather than by matching its "When" against the task, and a procedure in
words it never saw (a teacher's, its own, a user's) is read by no rule it learnt. `reword`
rewrites a skill with the same meaning in wordings drawn at random: the title's frame, the
"When" line's frame, each step's verb phrase, and how the steps are joined. The environment's
own names (objects, receptacles, X and Y) are kept, so a reworded procedure still names what to
act on.
"""

from __future__ import annotations

import re

import numpy as np

from skillvet.skills.induce import WHEN_PREFIX
from skillvet.skills.text import Skill

_TITLES = ("{t}", "How to {low}", "{t} (routine)", "Routine: {low}", "{t}, step by step")
_WHENS = (
    "the task is to {p}",
    "you are asked to {p}",
    "the goal says: {p}",
    "for a task like '{p}'",
    "whenever the task reads '{p}'",
)
_STEPS: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = tuple(
    (re.compile(pattern), forms)
    for pattern, forms in (
        (r"find (\S+)$", ("find {0}", "search for {0}", "locate {0}", "track down {0}")),
        (r"take (\S+)$", ("take {0}", "grab {0}", "get {0}", "collect {0}")),
        (r"go to (.+)$", ("go to {0}", "walk to {0}", "head to {0}", "visit {0}")),
        (
            r"heat (\S+) with (.+)$",
            ("heat {0} with {1}", "heat {0} using {1}", "use {1} to heat {0}", "heat {0} in {1}"),
        ),
        (
            r"cool (\S+) with (.+)$",
            ("cool {0} with {1}", "cool {0} using {1}", "use {1} to cool {0}", "chill {0} in {1}"),
        ),
        (
            r"clean (\S+) with (.+)$",
            ("clean {0} with {1}", "wash {0} in {1}", "rinse {0} at {1}", "use {1} to clean {0}"),
        ),
        (
            r"move (\S+) to (.+)$",
            ("move {0} to {1}", "put {0} in {1}", "place {0} in {1}", "drop {0} at {1}"),
        ),
        (r"use (.+)$", ("use {0}", "switch on {0}", "turn on {0}")),
        (r"open (.+)$", ("open {0}", "pull open {0}")),
    )
)
_JOINS = ("; ", ", then ", " -> ", "numbered")


def reword_step(step: str, rng: np.random.Generator) -> str:
    """One procedure step in a verb phrase drawn at random; a step of no known form as it is."""
    for pattern, forms in _STEPS:
        m = pattern.match(step.strip())
        if m:
            return forms[int(rng.integers(len(forms)))].format(*m.groups())
    return step.strip()


def reword(skill: Skill, rng: np.random.Generator) -> Skill:
    """`skill` with the same title, condition and steps in a wording drawn at random (each
    part's own form among the choices): the title's and the "When" line's frames, each step's
    verb phrase and the joins between steps."""
    title = _TITLES[int(rng.integers(len(_TITLES)))].format(
        t=skill.title, low=skill.title[:1].lower() + skill.title[1:]
    )
    when = skill.when
    if when.startswith(WHEN_PREFIX):
        pattern = when.removeprefix(WHEN_PREFIX)
        when = _WHENS[int(rng.integers(len(_WHENS)))].format(p=pattern)
    steps = [reword_step(s, rng) for s in skill.procedure.split(";") if s.strip()]
    join = _JOINS[int(rng.integers(len(_JOINS)))]
    if join == "numbered":
        procedure = " ".join(f"{i}) {s}" for i, s in enumerate(steps, 1))
    else:
        procedure = join.join(steps)
    return Skill(title, when, procedure)
