"""Writing a cluster's candidate skill: the policy (co-trained as the writer), an API teacher,
or the rule inducer, which is also the fallback whenever the chosen writer's answer is not a
skill (the fallback and its reason are recorded with the candidate)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from skillvet.config import SkillsConfig
from skillvet.policy.hf import Policy
from skillvet.skills.induce import Attempt, induction_prompt, rule_skill
from skillvet.skills.teacher import HttpTeacher, TeacherError
from skillvet.skills.text import Skill, fit_skill, parse_skill


@dataclass
class Written:
    skill: Skill
    writer: str
    reason: str
    induction: dict | None = None
    """Prompt and skill token ids, for policy-written skills (the generator loss)."""
    fallback: bool = False
    """The chosen writer failed and the rule inducer wrote it."""


def policy_share(sk: SkillsConfig, iterations: int, iteration: int) -> float:
    """Chance that the policy writes a cluster's candidate at `iteration` (writer: schedule)."""
    if sk.writer == "teacher":
        return 0.0
    if sk.writer == "policy":
        return 1.0
    ramp = sk.policy_ramp * max(iterations, 1)
    return min(1.0, (iteration - 1) / ramp) if ramp > 0 else 1.0


def write_candidate(
    policy: Policy,
    attempts: Sequence[Attempt],
    task_type: str,
    by_policy: bool,
    generator: torch.Generator,
    sk: SkillsConfig,
    temperature: float,
    teacher: HttpTeacher | None,
) -> Written:
    """One candidate for a cluster, from its writer, falling back to the rule inducer."""
    rule = rule_skill(attempts, task_type)
    shown: dict[str, Attempt] = {}
    for a in attempts:  # one per task, a success when there is one
        if a.task_id not in shown or (a.won and not shown[a.task_id].won):
            shown[a.task_id] = a
    prompt = induction_prompt(list(shown.values()))
    if by_policy:
        ids = policy.encode_prompt(prompt)
        gen = policy.generate([ids], sk.max_skill_tokens, temperature, generator, stop_text=None)[0]
        skill = parse_skill(gen.text)
        skill = fit_skill(skill, sk.max_skill_chars) if skill is not None else None
        if skill is None:
            return Written(
                rule,
                "rule",
                "the policy's answer held no Title/When/Procedure lines; rule inducer used",
                fallback=True,
            )
        return Written(
            skill,
            "policy",
            "written by the policy",
            {"prompt_ids": ids, "response_ids": gen.ids},
        )
    if teacher is not None:
        try:
            answer = teacher.complete(prompt)
        except TeacherError as err:
            why = f"teacher failed ({err}); rule inducer used"
            return Written(rule, "rule", why, fallback=True)
        skill = parse_skill(answer)
        skill = fit_skill(skill, sk.max_skill_chars) if skill is not None else None
        if skill is None:
            return Written(
                rule,
                "rule",
                "the teacher's answer held no Title/When/Procedure lines; rule inducer used",
                fallback=True,
            )
        return Written(skill, "teacher", f"written by the teacher {sk.teacher_model}")
    return Written(rule, "rule", "written by the rule inducer")
