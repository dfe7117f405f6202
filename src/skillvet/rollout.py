"""Batched multi-turn rollouts: B tasks x N environments, one batched generation per step.

Each step, every environment still running contributes one prompt (task, last H steps, current
observation, admissible actions, skills); the policy answers them all in one batch; the action
inside the last `<action>...</action>` goes to the environment, which matches it to an
admissible action without regard to case and spacing. An answer with no action is sent as the
empty action: the environment calls it invalid and its state does not change. Environments that
finish drop out of the batch.

Every step keeps the prompt ids, the sampled response ids and their sampling log-probs, so the
learner trains on exactly the tokens that were sampled: generated text is never re-tokenized.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from skillvet.envs.process import reset_all, step_all
from skillvet.envs.protocol import TaskSource
from skillvet.policy.hf import Policy
from skillvet.prompts import Turn, answer_text, build_prompt, parse_action
from skillvet.types import Episode, Step, StepResult, Task


@dataclass
class _Running:
    episode: Episode
    env: object
    current: StepResult
    history: list[Turn] = field(default_factory=list)
    row_generator: torch.Generator | None = None


def rollout(
    policy: Policy,
    source: TaskSource,
    tasks: Sequence[Task],
    group_size: int,
    *,
    max_new_tokens: int,
    temperature: float,
    history_length: int = 2,
    generator: torch.Generator | None = None,
    skills: Callable[[Task, str], Sequence[str]] | None = None,
    sampling_seeds: Sequence[int] | None = None,
    index_offset: int = 0,
    skills_section: bool = False,
    first_group: int = 0,
    admissible_only: bool = False,
) -> list[Episode]:
    """Play every task `group_size` times; return the episodes, grouped by task, in order.

    `skills(task, goal)` gives the skill texts to show for a task (none when omitted); it is
    asked once per task.
    `sampling_seeds` (one per episode, in the order returned) gives each episode its own sampling
    generator instead of the shared `generator`: two rollouts given the same seeds sample with
    common random numbers, pair by pair. `index_offset` numbers the rollouts of a group from it.
    `skills_section` shows the prompt's skills section even when a task has no skill (SAPO).
    `first_group` numbers the tasks' groups from it (a rank's share of an iteration's tasks).
    `admissible_only` samples each answer among the admissible actions, where the environment
    lists them (`sampling.admissible_only`).
    """
    if sampling_seeds is not None and len(sampling_seeds) != len(tasks) * group_size:
        raise ValueError(
            f"need {len(tasks) * group_size} sampling seeds, got {len(sampling_seeds)}"
        )
    running: list[_Running] = []
    episodes: list[Episode] = []
    shown_by_group: dict[int, tuple[str, ...]] = {}
    envs = [source.make(task) for task in tasks for _ in range(group_size)]
    firsts = reset_all(envs)  # environments in worker processes reset side by side
    for k, (env, first) in enumerate(zip(envs, firsts)):
        g, n = divmod(k, group_size)
        task = tasks[g]
        if g not in shown_by_group:  # asked once per task
            shown_by_group[g] = tuple(skills(task, first.task)) if skills is not None else ()
        shown = shown_by_group[g]
        episode = Episode(
            task=task, group=first_group + g, index=index_offset + n, goal=first.task, skills=shown
        )
        episodes.append(episode)
        if first.error is not None:
            episode.error = first.error
            env.close()
            continue
        row_gen = None
        if sampling_seeds is not None:
            row_gen = torch.Generator().manual_seed(int(sampling_seeds[g * group_size + n]))
        running.append(_Running(episode, env, first, row_generator=row_gen))
    while running:
        prompts = [
            policy.encode_prompt(
                build_prompt(
                    r.episode.goal,
                    r.current.observation,
                    r.history,
                    r.current.admissible,
                    skills=r.episode.skills,
                    history_length=history_length,
                    skills_section=skills_section,
                )
            )
            for r in running
        ]
        row_generators = [r.row_generator for r in running] if sampling_seeds is not None else None
        held = {}  # asked only when wanted: a sampler without `choices` still plays freely
        if admissible_only:
            held["choices"] = [
                [answer_text(a) for a in r.current.admissible or []] for r in running
            ]
        answers = policy.generate(
            prompts, max_new_tokens, temperature, generator, row_generators=row_generators, **held
        )
        actions = [parse_action(gen.text) for gen in answers]  # the text keeps the closing tag
        results = step_all([r.env for r in running], [a or "" for a in actions])  # side by side
        still: list[_Running] = []
        for r, prompt, gen, action, result in zip(running, prompts, answers, actions, results):
            r.episode.steps.append(
                Step(
                    prompt_ids=prompt,
                    response_ids=gen.ids,
                    logprobs=gen.logprobs,
                    answer=gen.text,
                    action=action,
                    anchor=r.current.anchor,
                    reward=result.reward,
                    valid=result.action_valid and action is not None,
                    observation=result.observation,
                    allowed=gen.allowed,
                )
            )
            r.history.append(
                Turn(r.current.observation, action if action is not None else "(no action)")
            )
            r.current = result
            if result.done or result.error is not None:
                r.episode.won = result.won
                r.episode.error = result.error
                r.env.close()
            else:
                still.append(r)
        running = still
    return episodes
