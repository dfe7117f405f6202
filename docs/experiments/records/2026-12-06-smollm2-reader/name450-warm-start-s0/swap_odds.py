"""The swap test of `2026-12-06-one-working-heater/swap_odds.py` for a policy that thinks before
it acts: on a run's own train heat tasks, with the task's block as demonstrated and with the
block's heater swapped (microwave <-> stoveburner in the block only), the policy first writes its
thought greedily, then p(go to the heater the block names | thought)."""
import re, sys, torch
from collections import Counter
from skillvet.runs import load_model
from skillvet.envs import make_source
from skillvet.sft import skill_demos
cfg, policy, _ = load_model(sys.argv[1])
source = make_source(cfg.env)
tasks = [t for t in source.tasks("train") if t.task_type == "pick_heat_then_place"][:60]
places = ("microwave", "stoveburner")
def swap(prompt):
    head, rest = prompt.split("Skills that may help", 1)
    block, tail = rest.split("\n\n", 1)
    block = block.replace("microwave", "@").replace("stoveburner", "microwave").replace("@", "stoveburner")
    return head + "Skills that may help" + block + "\n\n" + tail
def thought_of(prompt):
    (a,) = policy.generate([prompt], cfg.sampling.max_action_tokens, temperature=0.0)
    m = re.match(r"\s*<think>.*?</think>", a.text, re.S)
    return m.group(0) if m else ""
def within(ids, thought):
    k = 0
    while k < len(ids) and len(policy.tokenizer.decode(ids[: k + 1])) <= len(thought):
        k += 1
    return k
def odds(prompt):
    thought = thought_of(prompt)
    answers = [policy.encode_answer(f"{thought}<action>go to {p} 1</action>") for p in places]
    with torch.no_grad():
        logp, _, mask = policy.token_logprobs([prompt] * 2, answers)
    out = []
    for i, ids in enumerate(answers):
        rest = len(ids) - within(ids, thought)
        out.append(float((logp[i, -rest:] * mask[i, -rest:]).sum().exp()))
    return thought, out
same, swapped, thoughts = [], [], Counter()
for d in skill_demos(source, tasks, 1.0, 0, 4, cfg.sampling.history_length, seed=0, other_skills=0):
    shown = re.findall(r"action: (.*)", d.prompt)
    m = re.fullmatch(r"<action>go to (microwave|stoveburner) 1</action>", d.answer)
    if shown and shown[-1].startswith("take ") and m:
        named = places.index(m.group(1))
        for prompt, out, k in ((d.prompt, same, named), (swap(d.prompt), swapped, 1 - named)):
            thought, p = odds(policy.encode_prompt(prompt))
            thoughts[thought or "(none)"] += 1
            out.append(p[k])
print(f"p(the heater the block names): as demonstrated {sum(same)/len(same):.2f}, swapped {sum(swapped)/len(swapped):.2f} ({len(same)} decisions) · thoughts " + ", ".join(f"{t!r} {n}" for t, n in thoughts.most_common()))
