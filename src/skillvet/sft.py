"""Supervised warm start: the environment's expert plays train tasks, and the policy learns to
answer each step's prompt with `<action>EXPERT ACTION</action>` (cross-entropy on the answer
tokens only, end-of-turn included). For SAPO, `skill_demos` adds prompts with skills blocks
(to read skills) and induction prompts answered with a skill (to write them). A decoy
demonstration (a block that holds no skill for its task) keeps the same step's prompt without the
block, so that `sft.decoy_consistency` can ask for the same answer distribution with and without it.

The prompts are built exactly as in rollouts (`skillvet.prompts.build_prompt`), so the model
learns the format it will be asked in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from skillvet.config import SftConfig
from skillvet.envs.protocol import TaskSource
from skillvet.losses import kl_full, token_mean
from skillvet.policy.hf import Policy
from skillvet.prompts import Turn, build_prompt
from skillvet.skills.induce import (
    Attempt,
    goal_slots,
    induction_prompt,
    places_walked,
    procedure,
    rule_skill,
)
from skillvet.skills.text import Skill
from skillvet.types import StepResult, Task


@dataclass(frozen=True)
class Demo:
    prompt: str
    answer: str
    task_type: str
    plain_prompt: str = ""
    """For a decoy demonstration: the same step's prompt without the skills block (else empty)."""


def answer_text(action: str) -> str:
    return f"<action>{action}</action>"


def expert_demos(
    source: TaskSource,
    tasks: Sequence[Task],
    history_length: int = 2,
    skills: Callable[[Task, str], Sequence[str]] | None = None,
    keep_plain: bool = False,
    recovery: float = 0.0,
    seed: int = 0,
    max_steps: int | None = None,
) -> list[Demo]:
    """One demonstration per expert step of each task (the expert's episode replayed).

    `skills(task, goal)` gives the skills block shown in that task's prompts (none if omitted);
    with `keep_plain`, each demonstration also keeps its prompt without the block.
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
        env = source.make(task)
        result = env.reset()
        shown = tuple(skills(task, result.task)) if skills is not None else ()
        history: list[Turn] = []

        plan = source.expert(task)
        for k, action in enumerate(plan):
            demos.append(_demo(task, result, history, action, shown, history_length, keep_plain))
            previous = history[-1].action if history else None
            room = max_steps is None or len(history) + 1 + len(plan) - k <= max_steps
            if (recovery > 0 and previous is not None and result.admissible and room
                    and previous not in result.admissible and rng.random() < recovery):
                result = env.step(previous)
                history.append(Turn(previous, result.observation))
                if result.action_valid:
                    raise RuntimeError(f"{source.name}: {previous!r} was not listed as admissible yet changed the state")
                if result.done:
                    break
                demos.append(_demo(task, result, history, action, shown, history_length, keep_plain))
            result = env.step(action)
            history.append(Turn(action, result.observation))
            if result.done:
                break
        env.close()
    return demos


def _demo(task: Task, result: StepResult, history: Sequence[Turn], action: str, shown: Sequence[str],
          history_length: int, keep_plain: bool) -> Demo:
    """The demonstration of `action` at the step `result` shows, after `history`."""
    prompt = build_prompt(result.task, result.observation, history, result.admissible, skills=shown,
                          history_length=history_length)
    plain = (build_prompt(result.task, result.observation, history, result.admissible, history_length=history_length)
             if keep_plain else "")
    return Demo(prompt, answer_text(action), task.task_type, plain)


def check_task_types(cfg: SftConfig, known: Sequence[str], split: str) -> None:
    """Raise if `sft.types`, `sft.skill_types`, `sft.other_types` or `sft.decoy_types` names a type that `split`
    does not have (a misspelt type would otherwise be left out without a word)."""
    for key in ("types", "skill_types", "other_types", "decoy_types"):
        unknown = sorted(set(getattr(cfg, key)) - set(known))
        if unknown:
            raise ValueError(f"sft.{key}: {unknown} are not task types of the {split} split; it has {sorted(set(known))}")


def plain_and_decoy_tasks(tasks: Sequence[Task], cfg: SftConfig, seed: int) -> tuple[list[Task], list[Task]]:
    """The demonstration tasks replayed without a skills block (every task outside
    `cfg.skill_types`, and a `cfg.skill_types_plain` share of those inside), and the
    `cfg.decoy_share` of them also replayed with a decoy block (other types' procedures only)."""
    plain_rng = np.random.default_rng([seed, 6])
    plain = [t for t in tasks if t.task_type not in cfg.skill_types or plain_rng.random() < cfg.skill_types_plain]
    decoy_rng = np.random.default_rng([seed, 7])
    decoys = [t for t in plain if decoy_rng.random() < cfg.decoy_share]
    return plain, decoys


def expert_attempts(source: TaskSource, tasks: Sequence[Task]) -> list[Attempt]:
    """Each task's expert episode as the skill inducers see a trajectory."""
    out = []
    for task in tasks:
        env = source.make(task)
        first = env.reset()
        actions, won = [], False
        for action in source.expert(task):
            result = env.step(action)
            actions.append(action)
            won = result.won
            if result.done:
                break
        env.close()
        out.append(Attempt(task.id, first.task, tuple(actions), (True,) * len(actions), won))
    return out


# Everyday chores that no environment task asks for, each a title and steps naming two places
# ({0}, {1}). They name no task type's verb (heat, cool, clean, examine) and, so that the example
# skill `irrelevant.txt` stays unseen, nothing about water, plants, filling or pouring.
CHORES = (
    ("Feed the cat", "find the cat food; take it; go to {0}; open the tin; go to {1}; put the food in the bowl"),
    ("Fold the laundry", "find the laundry basket; take it; go to {0}; fold the shirts; go to {1}; stack them"),
    ("Sweep the floor", "find the broom; take it; go to {0}; sweep under it; go to {1}; empty the dustpan"),
    ("Charge the phone", "find the charger; take it; go to {0}; plug it in; go to {1}; leave the phone there"),
    ("Dust the shelves", "find a duster; take it; go to {0}; dust it; go to {1}; shake out the duster"),
    ("Make the bed", "find the sheets; take them; go to {0}; spread the sheets; go to {1}; tuck in the corners"),
    ("Take out the trash", "find the trash bag; take it; go to {0}; tie the bag; go to {1}; drop it by the door"),
    ("Walk the dog", "find the leash; take it; go to {0}; call the dog; go to {1}; clip on the leash"),
    ("Light a candle", "find the matches; take them; go to {0}; strike a match; go to {1}; light the wick"),
    ("Wind the clock", "find the key; take it; go to {0}; turn the key; go to {1}; set the hands"),
    ("Polish the shoes", "find the polish; take it; go to {0}; brush the shoes; go to {1}; buff them"),
    ("Pack a bag", "find the suitcase; take it; go to {0}; fold the clothes; go to {1}; zip it shut"),
)


def chore_skills(places: Sequence[str], count: int) -> list[str]:
    """`count` skills (one-line form) for chores of `CHORES`, each naming two of `places` drawn at
    random: a decoy that names real places yet applies to no task."""
    if len(places) < 2:
        raise ValueError(f"chore skills need at least two places, got {list(places)}")
    rng = np.random.default_rng([0, 11])  # fixed: the same pool on every run
    out = []
    for i in range(count):
        title, steps = CHORES[i % len(CHORES)]
        first, second = rng.choice(len(places), size=2, replace=False)
        out.append(_chore_skill(title.lower(), steps.format(places[first], places[second])))
    return out


def _chore_skill(chore: str, steps: str) -> str:
    """The one-line skill for `chore` ("feed the cat"), titled with it and applying only to it."""
    return Skill(chore[0].upper() + chore[1:], f"the task is to {chore}", steps).text()


# Parts of chores that `mixed_chore_skills` draws one by one, so that chore blocks seldom repeat a
# wording: a policy that learns to pass over them learns to pass over any block whose "When" is
# no task of the room, not over a dozen memorized texts. Like CHORES they name no task type's
# verb, and nothing of the example skills `irrelevant*.txt` (water, plants, filling, pouring,
# letters, envelopes, addresses, mailboxes, doors, desks, dropping, writing, cakes, baking).
CHORE_TASKS = (
    "feed the cat", "fold the laundry", "sweep the floor", "charge the phone", "dust the shelves",
    "make the bed", "take out the trash", "walk the dog", "wind the clock", "polish the shoes",
    "pack a bag", "iron a shirt", "mend a sock", "tune the radio", "oil the hinge", "feed the bird",
    "brush the dog", "knit a scarf", "hang the coats", "tidy the toys", "air the room",
    "set the alarm", "change the bulb", "fix the chair", "pump up the tyres", "pay the bills",
    "call the plumber", "test the smoke alarm", "stack the logs", "shine the silver",
    "wrap a gift", "feed the fish", "clear the gutter", "shovel the snow", "rake the leaves",
    "patch the tent", "lock the shed", "paint the fence", "hem the curtains", "tune the piano",
)
CHORE_TOOLS = (
    "the cat food", "the laundry basket", "the broom", "the charger", "a duster", "the sheets",
    "the trash bag", "the leash", "the key", "the shoe polish", "the suitcase", "the iron",
    "a needle", "the oil can", "the birdseed", "a comb", "the yarn", "the hangers", "the toy box",
    "a new bulb", "the screwdriver", "the pump", "the wallet", "the phone book", "the ladder",
    "the log basket", "a rag", "the ribbon", "the fish flakes", "the shovel", "the rake",
    "the glue", "the paint tin", "the tape measure", "the torch", "the scissors",
)
CHORE_MIDDLES = (
    "open the tin", "fold the shirts", "sweep under it", "plug it in", "dust it",
    "spread the sheets", "tie the bag", "call the dog", "turn the key", "brush the shoes",
    "fold the clothes", "press the collar", "thread the needle", "oil it", "comb the fur",
    "cast on", "hang them up", "sort the toys", "open a window", "twist it in",
    "tighten the screws", "pump the tyres", "count the coins", "dial the number",
    "climb the ladder", "stack them", "rub the forks", "cut the ribbon", "sprinkle the flakes",
    "dig a path", "gather the leaves", "glue the seam", "stir the paint", "measure the gap",
    "switch on the torch", "trim the edges",
)
CHORE_ENDS = (
    "put the food in the dish", "stack them", "empty the dustpan", "leave the phone there",
    "shake out the duster", "tuck in the corners", "leave it by the gate", "clip on the leash",
    "set the hands", "buff them", "zip it shut", "hang it up", "tie a knot", "wipe off the oil",
    "shut the cage", "sweep up the hair", "cast off", "close the wardrobe", "put the lid on",
    "shut the window", "switch it on", "wipe the seat", "file the receipts", "hang up",
    "press the test button", "cover them", "rub them dry", "tie a bow", "close the tank",
    "lean it on the wall", "bag the leaves", "let it set", "rinse the brush", "fold it away",
)
# Places a skill written for another room or house names, beside the walked ones: furniture the
# kitchen lacks (no desk: the letter skill's place stays unseen) and places outside the room.
CHORE_FURNITURE = (
    "bed", "dresser", "sofa", "armchair", "safe", "shelf", "sidetable", "toilet", "bathtubbasin",
    "coffeetable", "diningtable", "ottoman", "tvstand", "wardrobe",
)
CHORE_PLACES = (
    "the garden", "the hallway", "the garage", "the porch", "the attic", "the cellar", "the landing",
    "the yard", "the shed", "the study", "the nursery", "the laundry room",
)


def mixed_chore_skills(places: Sequence[str], count: int, furniture: bool = False) -> list[str]:
    """`count` distinct skills (one-line form) for chores composed of parts drawn one by one: a
    task of `CHORE_TASKS`, a tool, a middle and an end step, and two places, the first one of
    `places` (walked by the experts), or with `furniture` also of `CHORE_FURNITURE`, the second
    any of these or of `CHORE_PLACES`; one in three has no second walk."""
    if len(places) < 2:
        raise ValueError(f"chore skills need at least two places, got {list(places)}")
    rng = np.random.default_rng([0, 12])  # fixed: the same pool on every run
    furnished = list(places) + ([p for p in CHORE_FURNITURE if p not in places] if furniture else [])
    anywhere = furnished + list(CHORE_PLACES)
    out: dict[str, None] = {}  # distinct, in drawing order
    while len(out) < count:  # tens of millions of compositions: repeats are rare
        title = str(rng.choice(CHORE_TASKS))
        tool, middle, end = (str(rng.choice(parts)) for parts in (CHORE_TOOLS, CHORE_MIDDLES, CHORE_ENDS))
        first = str(rng.choice(furnished))
        second = str(rng.choice([p for p in anywhere if p != first]))
        steps = [f"find {tool}", "take it", f"go to {first}", middle]
        steps += [end] if rng.random() < 1 / 3 else [f"go to {second}", end]
        out[_chore_skill(title, "; ".join(steps))] = None
    return list(out)


def decoy_pool(
    source: TaskSource,
    tasks: Sequence[Task],
    per_type: int,
    cluster_size: int,
    named: bool = False,
    chores: int = 0,
    mixed: bool = False,
    furniture: bool = False,
) -> dict[str, list[str]]:
    """Up to `per_type` procedures of each type of `tasks`, each induced by the rule inducer from
    a different cluster of `cluster_size` won expert episodes of that type (the first tasks of
    each type), so that decoy blocks vary in wording as the skills of a bank do. With `named`,
    each also comes a second time with X and Y written out as the object and target of its
    cluster's first episode ("find mug; take mug; ..."), as a skill written for one task names them.
    With `chores` > 0, that many skills for everyday chores (`chore_skills`, naming places the
    experts walk to) make one more kind, "chore", that no task has; with `mixed`, chores composed
    of parts (`mixed_chore_skills`, walking first to other rooms' furniture too with `furniture`)
    instead of the twelve of `CHORES`."""
    by_type: dict[str, list[Task]] = {}
    for task in tasks:
        by_type.setdefault(task.task_type, []).append(task)
    pool = {}
    walked: list[Attempt] = []
    for task_type, group in sorted(by_type.items()):
        attempts = expert_attempts(source, group[: per_type * cluster_size])
        walked += attempts
        won = [a for a in attempts if a.won]
        clusters = [won[i : i + cluster_size] for i in range(0, len(won), cluster_size)]
        texts = [rule_skill(c, task_type).text() for c in clusters]
        if named:
            texts += [name_slots(text, *goal_slots(c[0].goal)) for text, c in zip(texts, clusters)]
        pool[task_type] = sorted(set(texts))
    if chores:
        places = places_walked(walked)
        pool["chore"] = mixed_chore_skills(places, chores, furniture) if mixed else chore_skills(places, chores)
    return pool


def name_slots(text: str, x: str | None, y: str | None) -> str:
    """`text` with the placeholders X and Y replaced by the names `x` and `y` (where given)."""
    for slot, name in (("X", x), ("Y", y)):
        if name:
            text = re.sub(rf"\b{slot}\b", name, text)
    return text


def skill_demos(
    source: TaskSource,
    tasks: Sequence[Task],
    share: float,
    writing: int,
    cluster_size: int,
    history_length: int,
    seed: int,
    skill_types: Sequence[str] = (),
    decoys: Sequence[Task] = (),
    own_procedure: bool = False,
    other_skills: int = 2,
    other_types: Sequence[str] = (),
    decoy_procedures: Mapping[str, Sequence[str]] | None = None,
) -> list[Demo]:
    """Demonstrations that teach reading and writing skills.

    Reading: a `share` of `tasks`, and every task of `skill_types`, is replayed with a skills
    block holding the rule inducer's procedure for the task's type (induced from the expert
    episodes of `cluster_size` other tasks of that type) among up to `other_skills` procedures
    of other types, in random order. With `own_procedure`, the task's procedure is instead
    induced from the expert episodes of its type whose steps other than walking (in general
    form) its own episode also takes: where a type can be done more than one way, the block
    then shows the way the expert goes, and nothing else in the prompt says which. Each task of
    `decoys` is replayed with a block of one or two procedures of other types only: the expert
    acts as it would without a block, so a block that holds no skill for the task teaches the
    model nothing to do. `other_types`, when given, limits the types whose procedures are shown
    for tasks of another type (beside their own, or as decoys): a type left out has its
    procedure shown only where the expert follows it. `decoy_procedures` (type -> procedures,
    see `decoy_pool`), when given, is what decoy blocks draw from instead: one or two types other
    than the task's, a procedure of each.
    Writing: `writing` induction prompts, each holding `cluster_size` expert episodes of one
    type, answered with the rule inducer's skill in the three-line form.
    """
    rng = np.random.default_rng([seed, 5])
    attempts = expert_attempts(source, tasks)
    by_type: dict[str, list[Attempt]] = {}
    for task, attempt in zip(tasks, attempts):
        by_type.setdefault(task.task_type, []).append(attempt)
    type_procedure = {
        t: rule_skill([a for a in group if a.won][:cluster_size] or group[:1], t).text() for t, group in by_type.items()
    }
    types = sorted(type_procedure)
    steps = {  # what each expert episode does, walking aside (own_procedure only)
        a.task_id: {s for s in procedure(a.actions, *goal_slots(a.goal)) if not s.startswith("go to")}
        for a in (attempts if own_procedure else ())
    }

    def procedure_of(task: Task) -> str:
        if not own_procedure:
            return type_procedure[task.task_type]
        fitting = [
            a for a in by_type[task.task_type] if a.won and a.task_id != task.id and steps[a.task_id] <= steps[task.id]
        ]
        return rule_skill(fitting[:cluster_size], task.task_type).text() if fitting else type_procedure[task.task_type]

    shown_tasks = [t for t in tasks if rng.random() < share or t.task_type in skill_types]

    showable = [t for t in types if not other_types or t in other_types]  # on other types' tasks

    def other_procedures(task: Task, at_least: int, at_most: int) -> list[str]:
        """`at_least` to `at_most` procedures of types other than the task's, in random order."""
        others = [t for t in showable if t != task.task_type]
        return [type_procedure[t] for t in rng.permutation(others)[: int(rng.integers(at_least, at_most + 1))]] if others else []

    def skills_of(task: Task, goal: str) -> list[str]:
        block = [procedure_of(task), *other_procedures(task, 0, other_skills)]
        return [block[i] for i in rng.permutation(len(block))]

    def decoys_of(task: Task, goal: str) -> list[str]:
        if decoy_procedures is None:
            return other_procedures(task, 1, 2)
        others = [t for t in sorted(decoy_procedures) if t != task.task_type and decoy_procedures[t]]
        chosen = rng.permutation(others)[: int(rng.integers(1, 3))] if others else []
        return [decoy_procedures[t][int(rng.integers(len(decoy_procedures[t])))] for t in chosen]

    demos = expert_demos(source, shown_tasks, history_length, skills=skills_of)
    demos += expert_demos(source, decoys, history_length, skills=decoys_of, keep_plain=True)
    for _ in range(writing):
        t = types[int(rng.integers(len(types)))]
        group = by_type[t]
        chosen = [group[int(i)] for i in rng.choice(len(group), size=min(cluster_size, len(group)), replace=False)]
        demos.append(Demo(induction_prompt(chosen), rule_skill(chosen, t).lines(), t))
    return demos


def lr_at(step: int, total: int, peak: float) -> float:
    """Linear warm-up over the first 5% of steps, then cosine decay to 10% of the peak."""
    warm = max(1, round(0.05 * total))
    if step < warm:
        return peak * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass(frozen=True)
class Validation:
    """The warm start measured on held-out expert steps, teacher-forced."""

    step: int
    """SFT steps taken when measured."""
    loss: float
    """Cross-entropy per answer token."""
    accuracy: float
    """Share of held-out steps whose whole answer (every token, end of turn included) is the
    model's most likely continuation: the expert's action would come out of greedy decoding."""


@dataclass
class SftResult:
    losses: list[float]
    """The training loss of every step."""
    validations: list[Validation]
    """Every validation, in order (empty without held-out steps)."""
    chosen: Validation | None
    """The validation whose weights the policy holds at the end (None without held-out steps)."""


@torch.no_grad()
def validate(policy: Policy, prompts: Sequence[list[int]], answers: Sequence[list[int]], step: int,
             batch_size: int = 64) -> Validation:
    """Teacher-forced loss and action accuracy of `policy` on encoded demonstrations."""
    was_training = policy.model.training
    policy.model.eval()
    loss_sum, tokens, exact = 0.0, 0.0, 0
    for start in range(0, len(prompts), batch_size):
        logp_all, target, mask = policy.answer_distributions(
            prompts[start : start + batch_size], answers[start : start + batch_size]
        )
        logp = logp_all.gather(-1, target[..., None]).squeeze(-1)
        loss_sum += float(-(logp * mask).sum())
        tokens += float(mask.sum())
        hit = (logp_all.argmax(-1) == target) | (mask == 0)
        exact += int(hit.all(-1).sum())
    policy.model.train(was_training)
    return Validation(step, loss_sum / max(tokens, 1.0), exact / max(len(prompts), 1))


def _better(a: Validation, b: Validation | None) -> bool:
    return b is None or (a.accuracy, -a.loss) > (b.accuracy, -b.loss)


def supervised(
    policy: Policy,
    demos: Sequence[Demo],
    cfg: SftConfig,
    seed: int,
    on_step: Callable[[int, float], None] | None = None,
    val: Sequence[Demo] = (),
    on_validation: Callable[[Validation], None] | None = None,
) -> SftResult:
    """`cfg.steps` AdamW steps on random batches of demos (learning rate by `lr_at`).

    The loss is the cross-entropy of the answer tokens. With `cfg.decoy_consistency` > 0, each
    decoy demonstration of a batch also adds that weight times KL(answer distribution without the
    block || with it), over the whole vocabulary at each answer token, the side without the block
    held fixed: a block that holds no skill for the task should leave every probability as it was,
    not only the expert's action most likely.

    With held-out demonstrations `val`, the policy is validated every `cfg.val_every` steps and
    after the last; with `cfg.select == "best"` it ends with the weights of the best validation
    (highest action accuracy, then lowest loss), otherwise with the last step's.
    """
    if not demos:
        raise ValueError("no demonstrations: the expert produced no steps for these tasks")
    prompts = [policy.encode_prompt(d.prompt) for d in demos]
    answers = [policy.encode_answer(d.answer) for d in demos]
    val_prompts = [policy.encode_prompt(d.prompt) for d in val]
    val_answers = [policy.encode_answer(d.answer) for d in val]
    plain = (
        {i: policy.encode_prompt(d.plain_prompt) for i, d in enumerate(demos) if d.plain_prompt}
        if cfg.decoy_consistency > 0
        else {}
    )
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=0.0)
    policy.model.train()
    losses: list[float] = []
    validations: list[Validation] = []
    best: Validation | None = None
    best_state: dict[str, torch.Tensor] | None = None
    for step in range(cfg.steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg.steps, cfg.lr)
        idx = rng.choice(len(demos), size=min(cfg.batch_size, len(demos)), replace=False)
        logp_all, tokens, mask = policy.answer_distributions([prompts[i] for i in idx], [answers[i] for i in idx])
        logp = logp_all.gather(-1, tokens[..., None]).squeeze(-1)
        loss = -(logp * mask).sum() / mask.sum()
        rows = [r for r, i in enumerate(idx) if i in plain]
        if rows:
            with torch.no_grad():
                without, _, kl_mask = policy.answer_distributions([plain[idx[r]] for r in rows], [answers[idx[r]] for r in rows])
            with_block = logp_all[rows, -without.shape[1] :]  # answers are right-aligned in both
            loss = loss + cfg.decoy_consistency * token_mean(kl_full(without, with_block), kl_mask)
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
            measured = validate(policy, val_prompts, val_answers, done)
            validations.append(measured)
            if on_validation is not None:
                on_validation(measured)
            if _better(measured, best):
                best = measured
                if cfg.select == "best" and done < cfg.steps:
                    best_state = policy.trainable_state()
    chosen = validations[-1] if validations else None
    if cfg.select == "best" and best is not None and best.step != cfg.steps and best_state is not None:
        policy.load_trainable_state(best_state)
        chosen = best
    policy.model.eval()
    return SftResult(losses, validations, chosen)
