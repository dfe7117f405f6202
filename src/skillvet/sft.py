"""Supervised warm start: the environment's expert plays train tasks, and the policy learns to
answer each step's prompt with `<action>EXPERT ACTION</action>` (cross-entropy on the answer
tokens only, end-of-turn included). For SAPO, `skill_demos` adds prompts with skills blocks
(to read skills) and induction prompts answered with a skill (to write them).

The prompts are built exactly as in rollouts (`skillvet.prompts.build_prompt`), so the model
learns the format it will be asked in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from skillvet.config import Config, SftConfig
from skillvet.configerror import ConfigError
from skillvet.envs import make_source
from skillvet.envs.check import play_expert
from skillvet.envs.protocol import TaskSource
from skillvet.policy.hf import Policy
from skillvet.prompts import Turn, answer_text, build_prompt, skill_named
from skillvet.skills.induce import (
    Attempt,
    induction_prompt,
    rule_skill,
)
from skillvet.skills.text import Skill
from skillvet.skills.wording import reword
from skillvet.types import StepResult, Task
from skillvet.validation import Keeper, Validation, action_kind, validate


@dataclass(frozen=True)
class Demo:
    prompt: str
    answer: str
    task_type: str


def expert_demos(
    source: TaskSource,
    tasks: Sequence[Task],
    history_length: int = 2,
    skills: Callable[[Task, str], Sequence[str]] | None = None,
    recovery: float = 0.0,
    seed: int = 0,
    max_steps: int | None = None,
    on_task: Callable[[int], None] | None = None,
    think: Callable[[Task, Sequence[str]], str | None] | None = None,
) -> list[Demo]:
    """One demonstration per expert step of each task (the expert's episode replayed);
    `on_task(1)` after each task (a progress bar).

    `skills(task, goal)` gives the skills block shown in that task's prompts (none if omitted);
    `think(task, block)`, the thought its answers write before the action (none if omitted).
    With `recovery` > 0, that share of the expert's steps (after the first) is demonstrated a
    second time right after an injected invalid action: the previous action repeated where it is
    no longer admissible (walking again to the place one stands at, taking an object already
    taken). The environment answers "Nothing happens." and its state stays, so the expert's next
    action is still right, and the model learns to go on from its own most common mistake, a
    state the expert alone never shows. Steps where the repeat would be admissible, and
    environments that list no admissible actions, get no injection; with `max_steps` (the
    episode's step limit) neither do steps where it would leave too few steps for the rest of
    the expert's plan.
    """
    rng = np.random.default_rng([seed, 8])
    demos: list[Demo] = []
    for task in tasks:
        plan = source.expert(task)

        def repeat(
            k: int, result: StepResult, taken: list[str], plan: list[str] = plan
        ) -> str | None:
            previous = taken[-1] if taken else None
            room = max_steps is None or len(taken) + 1 + len(plan) - k <= max_steps
            if (
                recovery > 0
                and previous is not None
                and result.admissible
                and room
                and previous not in result.admissible
                and rng.random() < recovery
            ):
                return previous
            return None

        episode = play_expert(source, task, plan, detour=repeat)
        shown = tuple(skills(task, episode.first.task)) if skills is not None else ()
        thought = think(task, shown) if think is not None else None
        history: list[Turn] = []
        for i, played in enumerate(episode.steps):
            demos.append(
                _demo(task, played.before, history, played.due, shown, history_length, thought)
            )
            after = episode.steps[i + 1].before if i + 1 < len(episode.steps) else episode.last
            if played.detour and after.action_valid:
                raise RuntimeError(
                    f"{source.name}: {played.action!r} was not listed as admissible yet changed "
                    "the state"
                )
            history.append(Turn(played.before.observation, played.action))
        if on_task is not None:
            on_task(1)
    return demos


def _demo(
    task: Task,
    result: StepResult,
    history: Sequence[Turn],
    action: str,
    shown: Sequence[str],
    history_length: int,
    thought: str | None = None,
) -> Demo:
    """The demonstration of `action` at the step `result` shows, after `history`."""
    prompt = build_prompt(
        result.task,
        result.observation,
        history,
        result.admissible,
        skills=shown,
        history_length=history_length,
    )
    return Demo(prompt, answer_text(action, thought), task.task_type)


def check_task_types(cfg: SftConfig, known: Sequence[str], split: str) -> None:
    """Raise if `sft.types` names a type that `split` does not have (a misspelt type would
    otherwise be left out without a word)."""
    unknown = sorted(set(cfg.types) - set(known))
    if unknown:
        raise ValueError(
            f"sft.types: {unknown} are not task types of the {split} split; it has "
            f"{sorted(set(known))}"
        )


def expert_attempts(source: TaskSource, tasks: Sequence[Task]) -> list[Attempt]:
    """Each task's expert episode as the skill inducers see a trajectory."""
    out = []
    for task in tasks:
        episode = play_expert(source, task)
        actions = tuple(p.action for p in episode.steps)
        out.append(
            Attempt(task.id, episode.first.task, actions, (True,) * len(actions), episode.last.won)
        )
    return out


def skill_demos(
    source: TaskSource,
    tasks: Sequence[Task],
    share: float,
    writing: int,
    cluster_size: int,
    history_length: int,
    seed: int,
    other_skills: int = 2,
    unlike: TaskSource | None = None,
    foreign: float = 0.0,
    name_skill: bool = False,
    reworded: float = 0.0,
) -> list[Demo]:
    """Demonstrations that teach reading and writing skills.

    Reading: a `share` of `tasks` is replayed with a skills block holding the rule inducer's
    procedure for the task (induced from the expert episodes of `cluster_size` other tasks of
    its type that treat their object at the same appliance: where the world lets only one heater
    work, the procedure names the one the expert uses) among up to `other_skills` procedures of
    other types, in random order. Writing: `writing` induction prompts, each holding
    `cluster_size` expert episodes of one type, answered with the rule inducer's skill in the
    three-line form. With `unlike`, only the shown tasks whose expert acts otherwise there are
    replayed (the same draw of tasks in each world). A `foreign` share of the shown tasks get a
    block of other types' procedures only, and the expert's actions as always. With
    `name_skill`, each answer of a shown task first names the skill that applies in a thought
    (`skill_named`): the task's own procedure's title, or none in a foreign block. A `reworded`
    share of the procedures shown (the task's own and the others alike) is said in a wording
    drawn at random (`skillvet.skills.wording.reword`), so that no wording tells which applies.
    """
    rng = np.random.default_rng([seed, 5])
    by_type: dict[str, list[Attempt]] = {}
    by_key: dict[tuple[str, str], list[Attempt]] = {}
    key_of: dict[Task, tuple[str, str]] = {}
    for task, attempt in zip(tasks, expert_attempts(source, tasks)):
        by_type.setdefault(task.task_type, []).append(attempt)
        key_of[task] = (task.task_type, treated_at(attempt.actions))
        by_key.setdefault(key_of[task], []).append(attempt)
    induced = {
        key: rule_skill([a for a in group if a.won][:cluster_size] or group[:1], key[0])
        for key, group in by_key.items()
    }
    types = sorted(by_type)
    commonest = {
        t: max((k for k in by_key if k[0] == t), key=lambda k: len(by_key[k])) for t in types
    }
    shows_own: dict[Task, bool] = {}

    def said(skill: Skill) -> str:
        return (reword(skill, rng) if reworded > 0 and rng.random() < reworded else skill).text()

    def block_of(task: Task, goal: str) -> list[str]:
        """The task's own procedure and 0 to `other_skills` of other types (each its commonest),
        shuffled; for a `foreign` share, 1 to `other_skills` of other types alone."""
        others = [t for t in types if t != task.task_type]
        order = rng.permutation(others) if others else []
        others_only = foreign > 0 and bool(others) and rng.random() < foreign
        fewest = 1 if others_only else 0
        count = int(rng.integers(fewest, max(other_skills, fewest) + 1)) if others else 0
        own = [] if others_only else [said(induced[key_of[task]])]
        block = [*own, *(said(induced[commonest[t]]) for t in order[:count])]
        shows_own[task] = not others_only
        return [block[i] for i in rng.permutation(len(block))]

    shown = [t for t in tasks if rng.random() < share]
    if unlike is not None:
        shown = [t for t in shown if source.expert(t) != unlike.expert(t)]

    def named(task: Task, block: Sequence[str]) -> str:
        return skill_named(induced[key_of[task]].title if shows_own[task] else None)

    think = named if name_skill else None
    demos = expert_demos(source, shown, history_length, skills=block_of, think=think)
    for _ in range(writing):
        t = types[int(rng.integers(len(types)))]
        group = by_type[t]
        chosen = [
            group[int(i)]
            for i in rng.choice(len(group), size=min(cluster_size, len(group)), replace=False)
        ]
        demos.append(Demo(induction_prompt(chosen), rule_skill(chosen, t).lines(), t))
    return demos


def treated_at(actions: Sequence[str]) -> str:
    """The receptacle type of the first heat, cool or clean action ("heat mug 1 with microwave
    1" -> "microwave"), "" where there is none."""
    for action in actions:
        verb, _, rest = action.partition(" ")
        if verb in ("heat", "cool", "clean") and " with " in rest:
            return rest.split(" with ", 1)[1].rsplit(" ", 1)[0]
    return ""


def lr_at(step: int, total: int, peak: float) -> float:
    """Linear warm-up over the first 5% of steps, then cosine decay to 10% of the peak."""
    warm = max(1, round(0.05 * total))
    if step < warm:
        return peak * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class SftResult:
    losses: list[float]
    """The training loss of every step."""
    validations: list[Validation]
    """Every validation, in order (empty without held-out steps)."""
    chosen: Validation | None
    """The validation whose weights the policy holds at the end (None without held-out steps)."""


def answer_cross_entropy(
    policy: Policy, prompts: Sequence[Sequence[int]], answers: Sequence[Sequence[int]]
) -> torch.Tensor:
    """The mean cross-entropy of the answers' tokens after their prompts (teacher-forced), with
    gradients."""
    logp_all, tokens, mask = policy.answer_distributions(prompts, answers)
    logp = logp_all.gather(-1, tokens[..., None]).squeeze(-1)
    return -(logp * mask).sum() / mask.sum()


def supervised(
    policy: Policy,
    demos: Sequence[Demo],
    cfg: SftConfig,
    seed: int,
    on_step: Callable[[int, float], None] | None = None,
    val: Sequence[Demo] = (),
    on_validation: Callable[[Validation], None] | None = None,
    play: Callable[[Policy], tuple[int, int]] | None = None,
) -> SftResult:
    """`cfg.steps` AdamW steps on random batches of demos (learning rate by `lr_at`); the loss
    is the cross-entropy of the answer tokens.

    With held-out demonstrations `val`, the policy is validated every `cfg.val_every` steps and
    after the last; from step `cfg.val_play_from` on, a validation also calls `play(policy)`
    (the held-out tasks played closed-loop: successes, episodes), if given. With
    `cfg.select == "best"` the policy ends with the weights of the best validation
    (`skillvet.validation.rank`: most successes played, then highest action accuracy, then
    lowest loss), otherwise with the last step's.
    """
    if not demos:
        raise ValueError("no demonstrations: the expert produced no steps for these tasks")
    prompts = [policy.encode_prompt(d.prompt) for d in demos]
    answers = [policy.encode_answer(d.answer) for d in demos]
    val_prompts = [policy.encode_prompt(d.prompt) for d in val]
    val_answers = [policy.encode_answer(d.answer) for d in val]
    val_kinds = [action_kind(d.answer) for d in val]
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=0.0)
    policy.model.train()
    losses: list[float] = []
    keeper = Keeper(policy, cfg.select, cfg.steps)
    for step in range(cfg.steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg.steps, cfg.lr)
        idx = rng.choice(len(demos), size=min(cfg.batch_size, len(demos)), replace=False)
        loss = answer_cross_entropy(policy, [prompts[i] for i in idx], [answers[i] for i in idx])
        if not torch.isfinite(loss):
            raise FloatingPointError(f"SFT loss became {float(loss)} at step {step}; lower sft.lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step, losses[-1])
        done = step + 1
        if val_prompts and (done % cfg.val_every == 0 or done == cfg.steps):
            measured = validate(policy, val_prompts, val_answers, done, kinds=val_kinds)
            if play is not None and done >= cfg.val_play_from:
                measured = replace(measured, played=_played(policy, play))
            keeper.add(measured)
            if on_validation is not None:
                on_validation(keeper.validations[-1])
    chosen = keeper.finish()
    policy.model.eval()
    return SftResult(losses, keeper.validations, chosen)


def _played(policy: Policy, play: Callable[[Policy], tuple[int, int]]) -> tuple[int, int]:
    """`play(policy)` in eval mode, the training mode restored after."""
    was_training = policy.model.training
    policy.model.eval()
    try:
        return play(policy)
    finally:
        policy.model.train(was_training)


def heater_world(cfg: Config, heater: str) -> TaskSource:
    """The run's household world with only `heater` working (`sft.skill_worlds`)."""
    household = replace(cfg.env.household, working_heater=heater)
    return make_source(replace(cfg.env, household=household))


@dataclass(frozen=True)
class WarmStartDemos:
    demos: list[Demo]
    """What the warm start trains on."""
    val: list[Demo]
    """Held-out expert steps it is validated on."""
    tasks: int
    """Train tasks the demonstrations come from."""
    play: list[Task] = field(default_factory=list)
    """Held-out tasks played closed-loop at validations (`sft.val_play`)."""


def warm_start_tasks(
    cfg: Config, train_tasks: Sequence[Task]
) -> tuple[list[Task], list[Task], list[Task]]:
    """The warm start's train tasks: (demonstrated, held out as expert steps, held out to play):
    the first `sft.tasks` of `sft.types` (all types if none), the next `sft.val_tasks`, and the
    next `sft.val_play` (the same stretch; none if the SFT ends before `sft.val_play_from`).
    Raises if the split is too short for them or `sft.types` names a type it lacks."""
    sft = cfg.sft
    check_task_types(sft, [t.task_type for t in train_tasks], cfg.env.train_split)
    pool = [t for t in train_tasks if not sft.types or t.task_type in set(sft.types)]
    wanted = sft.val_play if sft.steps >= sft.val_play_from else 0
    tasks, played = pool[: sft.tasks], pool[sft.tasks : sft.tasks + wanted]
    if len(played) < wanted:
        raise ConfigError(
            f"sft.val_play: {wanted} held-out tasks asked, but the {cfg.env.train_split} "
            f"split has {len(played)} after the {len(tasks)} demonstrated ones (lower "
            "sft.val_play or sft.tasks)"
        )
    return tasks, pool[sft.tasks : sft.tasks + sft.val_tasks], played


def warm_start_demos(
    cfg: Config,
    source: TaskSource,
    train_tasks: Sequence[Task],
    on_task: Callable[[int], None] | None = None,
) -> WarmStartDemos:
    """Every demonstration of a run's warm start, as `cfg.sft` asks: the expert's steps on the
    first `sft.tasks` train tasks (of `sft.types`, if given) with their recovery steps, the skill
    reading and writing demonstrations (in each of `sft.skill_worlds`, if given), the next
    `sft.val_tasks` tasks' steps held out, and the next `sft.val_play` tasks (from the same
    held-out stretch) to be played at validations."""
    sft = cfg.sft
    tasks, held_out, played = warm_start_tasks(cfg, train_tasks)
    history = cfg.sampling.history_length
    demos = expert_demos(
        source,
        tasks,
        history,
        recovery=sft.recovery,
        seed=cfg.run.seed,
        max_steps=cfg.env.max_steps,
        on_task=on_task,
    )
    shows_skills = sft.skills_share > 0 or sft.writing_demos > 0
    worlds = ([heater_world(cfg, h) for h in sft.skill_worlds] or [source]) if shows_skills else []
    for k, world in enumerate(worlds):
        demos += skill_demos(
            world,
            tasks,
            sft.skills_share,
            sft.writing_demos // len(worlds) + (k < sft.writing_demos % len(worlds)),
            cfg.skills.cluster_size,
            history,
            cfg.run.seed,
            other_skills=sft.other_skills,
            unlike=worlds[0] if k else None,
            foreign=sft.foreign_share,
            name_skill=sft.name_skill,
            reworded=sft.reworded,
        )
    val = expert_demos(source, held_out, history, on_task=on_task)
    return WarmStartDemos(demos, val, len(tasks), played)
