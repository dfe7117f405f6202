"""The agent's prompt for one step, and the action read back from its answer (pure functions).

Each step is one training sample: the prompt is rebuilt from the task, the last H steps (the
observation each was taken in, and its action), the current observation, the admissible actions
when the environment lists them, and a block of skills. The task is stated again just before the
instruction: a small model then finds what it is asked to do (heat, not cool) next to where it
answers, instead of some 200 tokens back. The answer must hold the action inside
`<action>...</action>`, optionally after `<think>...</think>`; the text inside the *last* action
tag is the action.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_ACTION = re.compile(r"<action>(.*?)</action>", re.S | re.I)
_OPEN_ACTION = re.compile(r"<action>((?:(?!<action>).)*)$", re.S | re.I)

INSTRUCTION = (
    "Think about the situation step by step inside <think> </think> tags, then give exactly one "
    "action inside <action> </action> tags."
)


NO_SKILLS = "- (none)"


@dataclass(frozen=True)
class Turn:
    """One past step as the prompt shows it: what the agent saw, and what it did then (as the
    GiGPO reference pairs them). The observation an action led to is the next step's, so the
    last step's result is the current observation, shown once."""

    observation: str
    action: str


def answer_text(action: str, think: str | None = None) -> str:
    """The answer that takes `action`, as the expert's demonstrations write it (after
    `<think>think</think>` where `think` is given)."""
    thought = f"<think>{think}</think>" if think is not None else ""
    return f"{thought}<action>{action}</action>"


def skill_named(title: str | None) -> str:
    """The thought that names the skill of the block that applies to the task, or none
    (`sft.name_skill`): "Skill: Heat then place", "Skill: none"."""
    return f"Skill: {title if title is not None else 'none'}"


def parse_action(answer: str, stopped_at_close: bool = False) -> str | None:
    """The text inside the last `<action>...</action>` of `answer`, stripped; None if there is none.

    With `stopped_at_close`, generation was stopped on the string `</action>` and the closing tag
    itself is not in `answer`: a final, unclosed `<action>` counts.
    """
    found = _ACTION.findall(answer)
    if stopped_at_close:
        tail = _OPEN_ACTION.search(answer)
        if tail is not None:
            found.append(tail.group(1))
    if not found:
        return None
    action = " ".join(found[-1].split())
    return action or None


def build_prompt(
    task: str,
    observation: str,
    history: Sequence[Turn],
    admissible: Sequence[str] | None,
    skills: Sequence[str] = (),
    history_length: int = 2,
    step: int | None = None,
    skills_section: bool = False,
) -> str:
    """The user message for one step, in the wording of ALFWorld agents.

    `history` holds every earlier step of the episode; the last `history_length` are shown.
    `step` counts the steps already taken (defaults to len(history)).
    With `skills_section`, the skills section is there even when it holds no skill (its header
    and "- (none)"), so that prompts with and without skills differ only in the skills listed.
    """
    taken = len(history) if step is None else step
    parts = [f"You are an agent in a text world. Your task is to: {task.strip()}"]
    if skills or skills_section:
        listed = "\n".join(f"- {s}" for s in skills) if skills else NO_SKILLS
        parts.append(f"Skills that may help (use them when they apply):\n{listed}")
    recent = list(history)[-history_length:] if history_length > 0 else []
    if recent:
        first = taken - len(recent) + 1
        lines = [
            f"[step {first + i}] observation: {turn.observation}\naction: {turn.action}"
            for i, turn in enumerate(recent)
        ]
        parts.append(
            f"You have taken {taken} step(s). The last {len(recent)}:\n" + "\n".join(lines)
        )
    parts.append(f"Current observation (step {taken + 1}):\n{observation.strip()}")
    if admissible:
        parts.append("Admissible actions: " + ", ".join(f"'{a}'" for a in admissible))
    parts.append(f"Your task is to: {task.strip()}")
    parts.append(INSTRUCTION)
    return "\n\n".join(parts)
