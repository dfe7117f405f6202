"""On a run's own train heat tasks, with the task's block as demonstrated and with the block's
heater swapped (microwave <-> stoveburner in the block only): p(the heater the block names)."""
import re, sys, torch
from skillvet.runs import load_model
from skillvet.envs import make_source
from skillvet.sft import skill_demos
cfg, policy, _ = load_model(sys.argv[1])
source = make_source(cfg.env)
tasks = [t for t in source.tasks("train") if t.task_type == "pick_heat_then_place"][:60]
places = ("microwave", "stoveburner")
answers = [policy.encode_answer(f"<action>go to {p} 1</action>") for p in places]
def swap(prompt):
    head, rest = prompt.split("Skills that may help", 1)
    block, tail = rest.split("\n\n", 1)
    block = block.replace("microwave", "@").replace("stoveburner", "microwave").replace("@", "stoveburner")
    return head + "Skills that may help" + block + "\n\n" + tail
same, swapped = [], []
for d in skill_demos(source, tasks, 1.0, 0, 4, cfg.sampling.history_length, seed=0, other_skills=0):
    shown = re.findall(r"action: (.*)", d.prompt)
    m = re.fullmatch(r"<action>go to (microwave|stoveburner) 1</action>", d.answer)
    if shown and shown[-1].startswith("take ") and m:
        named = places.index(m.group(1))
        for prompt, out, k in ((d.prompt, same, named), (swap(d.prompt), swapped, 1 - named)):
            with torch.no_grad():
                logp, _, mask = policy.token_logprobs([policy.encode_prompt(prompt)] * 2, answers)
            out.append((logp * mask).sum(dim=1).exp().tolist()[k])
print(f"p(the heater the block names): as demonstrated {sum(same)/len(same):.2f}, swapped {sum(swapped)/len(swapped):.2f} ({len(same)} decisions)")
