r"""Where a policy heats, with each skill in its prompt: a look inside `skillvet skills vet`.

    python3 examples/heat_choices.py MODEL_DIR SKILL.txt [SKILL.txt ...] [--tasks 30] \
        [--set KEY=VALUE ...]

Plays the first heat tasks of the household eval split greedily, once with no skills block and
once with each skill alone, and prints per skill: tasks won, and how many episodes first treated
the object at each appliance ("-": never treated it); `--show N` prints the first N episodes
too. `--set` takes household settings, as `skills vet --set` does
(household.heat_appliances=[microwave,stoveburner]).
"""

import argparse
import re
from collections import Counter
from pathlib import Path

from skillvet.cli import env_config
from skillvet.envs import make_source
from skillvet.rollout import rollout
from skillvet.runs import load_model
from skillvet.skills.text import parse_skill, skills_block

parser = argparse.ArgumentParser()
parser.add_argument("model")
parser.add_argument("skills", nargs="+")
parser.add_argument("--tasks", type=int, default=30)
parser.add_argument("--max-steps", type=int, default=None, help="episode step limit")
parser.add_argument("--set", action="append", default=[])
parser.add_argument(
    "--show", type=int, default=0, help="also print the goal and actions of the first N episodes"
)
args = parser.parse_args()

cfg, policy, _ = load_model(args.model)
source = make_source(
    env_config(argparse.Namespace(env="household", set=args.set, max_steps=args.max_steps))
)
tasks = [t for t in source.tasks("eval") if t.task_type == "pick_heat_then_place"][: args.tasks]
specials = list(policy.tokenizer.all_special_tokens)
for path in ["(no skill)", *args.skills]:
    block = (
        ""
        if path == "(no skill)"
        else skills_block(
            [parse_skill(Path(path).read_text()).text()],
            cfg.skills.max_skill_chars,
            cfg.skills.max_block_chars,
            specials,
        )
    )
    episodes = rollout(
        policy,
        source,
        tasks,
        1,
        skills=lambda t, g, block=block: block,
        max_new_tokens=cfg.sampling.max_action_tokens,
        temperature=0.0,
        history_length=cfg.sampling.history_length,
    )
    first_treated = Counter()
    for episode in episodes:
        treated = [
            re.sub(r" \d+$", "", s.action.split(" with ")[1])
            for s in episode.steps
            if re.match(r"(heat|cool|clean) \S+ \d+ with ", s.action or "")
        ]
        first_treated[treated[0] if treated else "-"] += 1
    for episode in sorted(episodes, key=lambda e: e.group)[: args.show]:
        actions = "; ".join(s.action or "(no action)" for s in episode.steps)
        print(f"  {'won' if episode.won else 'lost'} | {episode.goal} | {actions}")
    print(
        f"{Path(path).name}: won {sum(e.won for e in episodes)}/{len(episodes)} · "
        f"treated first at {dict(first_treated.most_common())}"
    )
