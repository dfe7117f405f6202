"""The policy's probability of its expert's heater at the step after taking the object, on the
first 60 heat tasks of a run's own train split, with the task's skills block and without one.

    python3 train_odds.py RUN_DIR
"""

import re, sys, torch
from skillvet.runs import load_model
from skillvet.envs import make_source
from skillvet.sft import skill_demos, expert_demos
cfg, policy, _ = load_model(sys.argv[1])
source = make_source(cfg.env)
tasks = [t for t in source.tasks("train") if t.task_type == "pick_heat_then_place"][:60]
places = ("microwave 1", "stoveburner 1")
answers = [policy.encode_answer(f"<action>go to {p}</action>") for p in places]
def odds(demos):
    out = []
    for d in demos:
        shown = re.findall(r"action: (.*)", d.prompt)
        m = re.fullmatch(r"<action>go to (microwave|stoveburner) 1</action>", d.answer)
        if shown and shown[-1].startswith("take ") and m:
            with torch.no_grad():
                logp, _, mask = policy.token_logprobs([policy.encode_prompt(d.prompt)] * 2, answers)
            p = (logp * mask).sum(dim=1).exp().tolist()
            out.append(p[0] if m.group(1) == "microwave" else p[1])
    return out
blk = odds(skill_demos(source, tasks, 1.0, 0, 4, cfg.sampling.history_length, seed=0, other_skills=0))
plain = odds(expert_demos(source, tasks, cfg.sampling.history_length))
print(f"train heat tasks (first 60, the warm start saw some): p(expert's heater) with its block {sum(blk)/len(blk):.2f} over {len(blk)}, without a block {sum(plain)/len(plain):.2f} over {len(plain)}")
