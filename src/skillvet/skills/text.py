"""A skill as text: its three parts, how it is parsed from a writer's answer, and how it is
made safe to put in a prompt (pure functions).

A skill is short: a title, when to apply it, and a procedure. Writers (the rule inducer, an API
teacher, the policy) answer in three lines:

    Title: Heat then place
    When: the task is to put a hot X in Y
    Procedure: find X and take it; go to microwave; heat X with microwave; go to Y; move X to Y

Skill text reaches prompts that go through a chat template, so `sanitize` removes anything that
could act as a chat marker or special token there (`<|im_start|>`, `</s>`, `[INST]`, our own
`<action>` tags, and any special token of the tokenizer in use) and bounds its length.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_MARKERS = re.compile(
    r"<\|[^|<>]{0,64}\|>"  # <|im_start|>, <|endoftext|>, <|eot_id|> ...
    r"|</?s>|<unk>|<pad>|<bos>|<eos>"
    r"|\[/?INST\]|<</?SYS>>"
    r"|</?(?:action|think|skill|system|user|assistant)\s*>"
    r"|<start_of_turn>|<end_of_turn>",
    re.I,
)
_FIELD = re.compile(r"^\s*(title|when|procedure)\s*:\s*(.*)$", re.I)


@dataclass(frozen=True)
class Skill:
    title: str
    when: str
    procedure: str

    def text(self) -> str:
        """The one-line form shown in prompts and embedded for retrieval."""
        return f"{self.title}. When: {self.when}. Procedure: {self.procedure}"

    def lines(self) -> str:
        """The three-line form writers answer in."""
        return f"Title: {self.title}\nWhen: {self.when}\nProcedure: {self.procedure}"


def sanitize(text: str, special_tokens: Iterable[str] = (), max_chars: int | None = None) -> str:
    """`text` without chat markers, special tokens or control characters, on one line, cut to
    `max_chars` (at a word boundary, with "...")."""
    out = text
    for _ in range(3):  # removing one marker can join the halves of another
        before = out
        out = _MARKERS.sub(" ", out)
        for token in sorted(set(special_tokens), key=len, reverse=True):
            if token:
                out = out.replace(token, " ")
        if out == before:
            break
    out = "".join(" " if unicodedata.category(c)[0] == "C" else c for c in out)
    out = " ".join(out.split())
    if max_chars is not None and len(out) > max_chars:
        cut = (
            out[: max_chars - 3].rsplit(" ", 1)[0]
            if " " in out[: max_chars - 3]
            else out[: max_chars - 3]
        )
        out = cut.rstrip(" .;,") + "..."
    return out


def parse_skill(answer: str) -> Skill | None:
    """The skill in a writer's answer (`Title:`, `When:`, `Procedure:` lines, in any order); None
    when a part is missing or empty."""
    found: dict[str, list[str]] = {}
    current = None
    for line in answer.splitlines():
        m = _FIELD.match(line)
        if m:
            current = m.group(1).lower()
            found[current] = [m.group(2)]
        elif current is not None and line.strip():
            found[current].append(line.strip())
    parts = {k: sanitize(" ".join(v)) for k, v in found.items()}
    if not all(parts.get(k) for k in ("title", "when", "procedure")):
        return None
    return Skill(parts["title"], parts["when"], parts["procedure"])


def fit_skill(skill: Skill, max_chars: int, special_tokens: Iterable[str] = ()) -> Skill:
    """`skill` sanitized, with its one-line form cut to `max_chars`: the procedure gives way
    first, then the condition, then the title (each keeps at least a few words)."""
    specials = list(special_tokens)
    title, when, procedure = (
        sanitize(p, specials, max_chars) for p in (skill.title, skill.when, skill.procedure)
    )
    fixed = len(Skill(title, when, "").text())
    if fixed + min(len(procedure), 20) > max_chars:  # a title and condition that leave no room
        title = sanitize(title, max_chars=max(10, max_chars // 5))
        when = sanitize(when, max_chars=max(10, max_chars // 4))
        fixed = len(Skill(title, when, "").text())
    room = max(8, max_chars - fixed)
    return Skill(title, when, sanitize(procedure, max_chars=room))


def skills_block(
    texts: Sequence[str],
    max_skill_chars: int,
    max_block_chars: int,
    special_tokens: Iterable[str] = (),
) -> list[str]:
    """The skill texts a prompt shows: each sanitized and cut to `max_skill_chars`, and no more of
    them than fit in `max_block_chars` together (in the given order, best first)."""
    shown: list[str] = []
    used = 0
    specials = list(special_tokens)
    for text in texts:
        clean = sanitize(text, specials, max_skill_chars)
        if not clean:
            continue
        if used + len(clean) + 3 > max_block_chars:
            break
        shown.append(clean)
        used += len(clean) + 3
    return shown


def augmented_blocks(
    candidate: str,
    base_texts: Sequence[str],
    max_skill_chars: int,
    max_block_chars: int,
    special_tokens: Iterable[str] = (),
) -> tuple[list[str], list[str]]:
    """The base and skill-augmented blocks of a matched pair: the augmented block is exactly the
    base block with the candidate put first. The base block is built within what the block
    budget leaves beside a candidate of the largest size, so adding it never pushes out a
    retrieved skill (which would measure a swap, not an addition)."""
    reserve = max_skill_chars + 3
    if max_block_chars < reserve:
        raise ValueError(
            f"max_block_chars {max_block_chars} leaves no room for a candidate of "
            f"{max_skill_chars} characters"
        )
    base = skills_block(base_texts, max_skill_chars, max_block_chars - reserve, special_tokens)
    added = skills_block([candidate], max_skill_chars, reserve, special_tokens)
    return base, [*added, *base]


PLACEBO_TEXT = "This line is only a placeholder the size of a skill and gives no advice at all."


def placebo_skill(like: Skill) -> Skill:
    """A skill that says nothing, whose one-line form is as long as `like`'s: shown in place of
    a skill, it measures what a block of that size does by being there."""
    title, when = "Placeholder", "any task"
    room = max(1, len(like.text()) - len(Skill(title, when, "").text()))
    body = " ".join([PLACEBO_TEXT] * (room // len(PLACEBO_TEXT) + 1))[:room].rstrip()
    return Skill(title, when, body + "." * (room - len(body)))
