"""Where a skills block moves a policy: the expert's action at every step, with and without it.

    python3 examples/block_cost.py MODEL_DIR SKILL.txt [...] [--type pick_heat_then_place]
        [--tasks 60] [--set KEY=VALUE ...]

Replays the expert episode of each of the first tasks of one type of the household eval split
and, at every step, scores the expert's next action under the prompt without a skills block and
under the same prompt with each skill alone (and with the neutral placebo of the first skill's
length that `skills vet --placebo` uses). It prints, per kind of action (the expert's verb; a
"go to" a heater apart from any other walk), the mean probability of the expert's action
without the block, with it, and the mean log-ratio. A block that is not about the task and
changes nothing leaves every row where it was; a row that moves is the step where such a block
costs. `--set` takes household settings, as `skills vet --set` does.
"""

import argparse
import math
from collections import defaultdict
from pathlib import Path

import torch

from skillvet.cli import env_config
from skillvet.envs import make_source
from skillvet.runs import load_model
from skillvet.sft import expert_demos
from skillvet.skills.text import parse_skill, placebo_skill, skills_block

HEATERS = ("microwave", "stoveburner")

parser = argparse.ArgumentParser()
parser.add_argument("model")
parser.add_argument("skills", nargs="+")
parser.add_argument("--type", default="pick_heat_then_place")
parser.add_argument("--tasks", type=int, default=60)
parser.add_argument("--set", action="append", default=[])
args = parser.parse_args()

cfg, policy, _ = load_model(args.model)
source = make_source(env_config(argparse.Namespace(env="household", set=args.set, max_steps=None)))
tasks = [t for t in source.tasks("eval") if t.task_type == args.type][: args.tasks]
specials = list(policy.tokenizer.all_special_tokens)
skills = {Path(p).name: parse_skill(Path(p).read_text()) for p in args.skills}
skills["placebo"] = placebo_skill(next(iter(skills.values())))


def kind(answer: str) -> str:
    """The expert action's verb; a walk to a heater named by the heater."""
    words = answer.removeprefix("<action>").removesuffix("</action>").split()
    if words[:2] == ["go", "to"]:
        return "go to " + (words[2] if words[2] in HEATERS else "elsewhere")
    return words[0]


def expert_logps(block: list[str]) -> tuple[list[str], list[float]]:
    """The kind and log-probability of the expert's action at each step of every task."""
    kinds, logps = [], []
    for demo in expert_demos(
        source, tasks, cfg.sampling.history_length, skills=lambda t, g, block=block: block
    ):
        prompt = policy.encode_prompt(demo.prompt)
        with torch.no_grad():
            logp, _, mask = policy.token_logprobs([prompt], [policy.encode_answer(demo.answer)])
        kinds.append(kind(demo.answer))
        logps.append(float((logp * mask).sum()))
    return kinds, logps


kinds, bare = expert_logps([])
count: dict[str, int] = defaultdict(int)
for k in kinds:
    count[k] += 1
order = sorted(count, key=lambda k: -count[k])
print(f"{len(tasks)} {args.type} tasks, {len(kinds)} expert steps; p(expert action), mean")
print(f"{'step kind':<22} {'n':>4} {'no block':>9}  " + "  ".join(f"{n:>28}" for n in skills))
with_block = {}
for name, skill in skills.items():
    block = skills_block(
        [skill.text()], cfg.skills.max_skill_chars, cfg.skills.max_block_chars, specials
    )
    with_block[name] = expert_logps(block)[1]
for k in [*order, "all"]:
    rows = [i for i, x in enumerate(kinds) if k in ("all", x)]
    p0 = sum(math.exp(bare[i]) for i in rows) / len(rows)
    cells = []
    for name in skills:
        lp = with_block[name]
        p1 = sum(math.exp(lp[i]) for i in rows) / len(rows)
        ratio = sum(lp[i] - bare[i] for i in rows) / len(rows)
        cells.append(f"{p1:>6.3f} (log-ratio {ratio:+.3f})")
    print(f"{k:<22} {len(rows):>4} {p0:>9.3f}  " + "  ".join(f"{c:>28}" for c in cells))
