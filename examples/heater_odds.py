"""Where a policy means to heat, with each skill in its prompt: the odds at the deciding step.

    python3 examples/heater_odds.py MODEL_DIR [SKILL.txt ...] [--tasks 40] [--set KEY=VALUE ...]

Replays the expert episode of each of the first heat tasks of the household eval split up to
the step right after it takes the object, where the expert next goes to its heater, and prints
the policy's mean probability of each "go to" an appliance there (and how often each is the
most likely), once with no skills block and once with each skill alone. `--set` takes
household settings, as `skills vet --set` does (household.heat_appliances=[microwave]).
Unlike a rollout, this asks about one decision on the expert's own path, so what it shows
is what the block does to that decision alone. A policy that thinks before it acts (a warm start
with `sft.name_skill`) first writes its thought greedily; the odds are then the action's given
that thought, and the thoughts written are counted.
"""

import argparse
import re
from collections import Counter
from pathlib import Path

import torch

from skillvet.cli import env_config
from skillvet.envs import make_source
from skillvet.runs import load_model
from skillvet.sft import expert_demos
from skillvet.skills.text import parse_skill, skills_block

PLACES = ("microwave 1", "stoveburner 1", "fridge 1", "sinkbasin 1")

parser = argparse.ArgumentParser()
parser.add_argument("model")
parser.add_argument("skills", nargs="*")
parser.add_argument("--tasks", type=int, default=40)
parser.add_argument("--set", action="append", default=[])
args = parser.parse_args()

cfg, policy, _ = load_model(args.model)
source = make_source(env_config(argparse.Namespace(env="household", set=args.set, max_steps=None)))
tasks = [t for t in source.tasks("eval") if t.task_type == "pick_heat_then_place"][: args.tasks]
specials = list(policy.tokenizer.all_special_tokens)


def thought_of(prompt: list[int]) -> str:
    """The `<think>...</think>` the policy writes first, greedily ("" if it acts at once)."""
    (answer,) = policy.generate([prompt], cfg.sampling.max_action_tokens, temperature=0.0)
    found = re.match(r"\s*<think>.*?</think>", answer.text, re.S)
    return found.group(0) if found else ""


def within(ids: list[int], thought: str) -> int:
    """How many leading tokens of `ids` lie wholly inside `thought` (a token may straddle its
    end: "</think><action>" is tokenized "</", "think", "><", "action", ">")."""
    k = 0
    while k < len(ids) and len(policy.tokenizer.decode(ids[: k + 1])) <= len(thought):
        k += 1
    return k


def place_odds(prompt: list[int], thought: str) -> list[float]:
    """p(go to each place | prompt, thought): each answer scored from its first token that is
    not wholly inside the thought."""
    answers = [policy.encode_answer(f"{thought}<action>go to {p}</action>") for p in PLACES]
    with torch.no_grad():
        logp, _, mask = policy.token_logprobs([prompt] * len(PLACES), answers)
    odds = []
    for i, ids in enumerate(answers):
        rest = len(ids) - within(ids, thought)  # answers are right-aligned
        odds.append(float((logp[i, -rest:] * mask[i, -rest:]).sum().exp()))
    return odds

for path in ["(no skill)", *args.skills]:
    block = (
        []
        if path == "(no skill)"
        else skills_block(
            [parse_skill(Path(path).read_text()).text()],
            cfg.skills.max_skill_chars,
            cfg.skills.max_block_chars,
            specials,
        )
    )
    odds, thoughts = [], Counter()
    for demo in expert_demos(
        source, tasks, cfg.sampling.history_length, skills=lambda t, g, block=block: block
    ):
        shown = re.findall(r"action: (.*)", demo.prompt)
        if (
            shown
            and shown[-1].startswith("take ")
            and re.fullmatch(r"<action>go to (microwave|stoveburner) 1</action>", demo.answer)
        ):
            prompt = policy.encode_prompt(demo.prompt)
            thought = thought_of(prompt)
            thoughts[thought or "(none)"] += 1
            odds.append(place_odds(prompt, thought))
    mean = [sum(o[i] for o in odds) / max(1, len(odds)) for i in range(len(PLACES))]
    top = [
        sum(max(range(len(PLACES)), key=o.__getitem__) == i for o in odds)
        for i in range(len(PLACES))
    ]
    print(
        f"{Path(path).name}: {len(odds)} decisions · mean p "
        + ", ".join(f"{p.split()[0]} {m:.2f}" for p, m in zip(PLACES, mean))
        + " · most likely "
        + ", ".join(f"{p.split()[0]} {c}" for p, c in zip(PLACES, top))
        + " · thoughts "
        + ", ".join(f"{t!r} {n}" for t, n in thoughts.most_common())
    )
