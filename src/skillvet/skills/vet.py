"""Stand-alone vetting: the marginal utility of one skill for a model in an environment.

    result = vet(policy, source, tasks, skill, pairs=4)
    result["U"], result["lo"], result["hi"]

Each task is played `pairs` times without the skill (base) and `pairs` times with it
(augmented), pair by pair from the same initial state with the same sampling seed (common
random numbers), exactly as the training loop measures candidates; U is the mean over tasks of
u = mean augmented reward - mean base reward, with a Student t interval over the tasks.
Both halves show the skills section (the augmented block is the base block plus the skill), so
they differ only in the skill's line; `placebo` adds an arm with a neutral line of the same
length, which separates what a block does by being there from what the skill says (beyond the
paper).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from skillvet.config import SamplingConfig, SkillsConfig
from skillvet.envs.protocol import TaskSource
from skillvet.policy.hf import Policy
from skillvet.policy.sampler import Sampler
from skillvet.rollout import rollout
from skillvet.skills.gate import matched_rewards, pair_seeds, utility
from skillvet.skills.text import Skill, augmented_blocks, placebo_skill
from skillvet.types import Episode, Task

_SAMPLING, _SKILLS = SamplingConfig(), SkillsConfig()
"""Where vet's defaults come from: a training run's sampling and skills settings."""


def vet(
    policy: Policy | Sampler,
    source: TaskSource,
    tasks: Sequence[Task],
    skill: Skill,
    *,
    pairs: int = 4,
    base_skills: Sequence[str] = (),
    max_new_tokens: int = _SAMPLING.max_action_tokens,
    temperature: float = _SAMPLING.temperature,
    history_length: int = _SAMPLING.history_length,
    seed: int = 0,
    confidence: float = _SKILLS.confidence,
    max_skill_chars: int = _SKILLS.max_skill_chars,
    max_block_chars: int = _SKILLS.max_block_chars,
    placebo: bool = False,
    admissible_only: bool = _SAMPLING.admissible_only,
    episodes: bool = False,
) -> dict:
    """U of `skill` over `tasks` with matched halves of `pairs` rollouts each, and its interval.

    `policy` plays every arm: the model itself, or a rollout engine holding it (`make_sampler`).

    With `placebo`, a third arm of `pairs` rollouts per task (the same seeds) shows a neutral
    skill of the same length instead (`placebo_skill`): "placebo" is its U against the base
    half (the effect of a block being there), "U_vs_placebo" the skill's against the placebo
    (the effect of what the skill says). `admissible_only`: answers sampled among the
    admissible actions, as the run's `sampling.admissible_only`.

    "arms" holds how each arm played (success, share of invalid actions, steps per episode),
    which tells a skill that changes what the policy does from one that breaks how it answers;
    with `episodes`, "episodes" holds every rollout as a JSON-ready record naming its arm.
    """
    if not tasks:
        raise ValueError("vet needs at least one task")
    specials = list(policy.tokenizer.all_special_tokens)
    base_block, aug_block = augmented_blocks(
        skill.text(), list(base_skills), max_skill_chars, max_block_chars, specials
    )
    seeds = pair_seeds(seed, len(tasks), pairs)
    common = dict(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        history_length=history_length,
        sampling_seeds=seeds if temperature > 0 else None,
        skills_section=True,
        admissible_only=admissible_only,
    )
    base = rollout(policy, source, tasks, pairs, skills=lambda t, g: base_block, **common)
    augmented = rollout(
        policy, source, tasks, pairs, skills=lambda t, g: aug_block, index_offset=pairs, **common
    )
    base_KP, aug_KP, task_ids = matched_rewards(base, augmented, range(len(tasks)), pairs)
    if not base_KP:
        raise RuntimeError("every pair had a crashed environment; nothing was measured")
    measured = utility(base_KP, aug_KP, confidence)
    arms = {"base": base, "augmented": augmented}
    play = {"base": _play(base), "augmented": _play(augmented)}
    result = {
        "skill": skill.text(),
        "base_skills": list(base_block),
        "U": measured.value,
        "lo": measured.lo,
        "hi": measured.hi,
        "confidence": confidence,
        "tasks": len(base_KP),
        "pairs": measured.pairs,
        "base_success": play["base"]["success"],
        "augmented_success": play["augmented"]["success"],
        "base_reward": float(np.mean([r for row in base_KP for r in row])),
        "augmented_reward": float(np.mean([r for row in aug_KP for r in row])),
        "identical_pairs": sum(b == a for b, a in zip(_actions(base), _actions(augmented))),
        "per_task": [{"task": t, "u": u} for t, u in zip(task_ids, measured.per_task)],
        "arms": play,
    }
    if placebo:
        neutral = placebo_skill(skill)
        _, placebo_block = augmented_blocks(
            neutral.text(), list(base_skills), max_skill_chars, max_block_chars, specials
        )
        # numbered as a second augmented half, so its rollouts pair with the base half's by index
        shown = rollout(
            policy,
            source,
            tasks,
            pairs,
            skills=lambda t, g: placebo_block,
            index_offset=pairs,
            **common,
        )
        b_KP, p_KP, _ = matched_rewards(base, shown, range(len(tasks)), pairs)
        p2_KP, a2_KP, _ = matched_rewards(
            [_renumber(e, -pairs) for e in shown], augmented, range(len(tasks)), pairs
        )
        vs_base, vs_placebo = utility(b_KP, p_KP, confidence), utility(p2_KP, a2_KP, confidence)
        arms["placebo"], play["placebo"] = shown, _play(shown)
        result["placebo"] = {
            "skill": neutral.text(),
            "U": vs_base.value,
            "lo": vs_base.lo,
            "hi": vs_base.hi,
            "success": play["placebo"]["success"],
        }
        result["U_vs_placebo"] = {"U": vs_placebo.value, "lo": vs_placebo.lo, "hi": vs_placebo.hi}
    if episodes:
        result["episodes"] = [
            {"arm": arm, **e.as_dict()} for arm, played in arms.items() for e in played
        ]
    return result


def _play(episodes: Sequence[Episode]) -> dict:
    """How an arm played: its success, the share of its actions that were invalid, and its
    steps per episode."""
    steps = [s for e in episodes for s in e.steps]
    return {
        "success": float(np.mean([e.won for e in episodes])),
        "invalid": sum(not s.valid for s in steps) / max(len(steps), 1),
        "steps": len(steps) / len(episodes),
    }


def _renumber(e: Episode, by: int) -> Episode:
    return dataclasses.replace(e, index=e.index + by)


def _actions(episodes) -> list[tuple]:
    return [
        tuple(s.action for s in e.steps) for e in sorted(episodes, key=lambda e: (e.group, e.index))
    ]
