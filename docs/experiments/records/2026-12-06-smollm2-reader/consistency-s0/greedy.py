import sys, re, argparse, torch
from skillvet.runs import load_run_policy
from skillvet.cli import env_config
from skillvet.envs import make_source
from skillvet.sft import expert_demos
from skillvet.skills.text import parse_skill, skills_block
from pathlib import Path
run = sys.argv[1]
cfg, policy = load_run_policy(run)
source = make_source(env_config(argparse.Namespace(env="household", set=['household.heat_appliances=[microwave,stoveburner]','household.working_heater=stoveburner'], max_steps=None)))
tasks = [t for t in source.tasks("eval") if t.task_type == "pick_heat_then_place"][:12]
specials = list(policy.tokenizer.all_special_tokens)
block = skills_block([parse_skill(Path("stove.txt").read_text()).text()], cfg.skills.max_skill_chars, cfg.skills.max_block_chars, specials)
for b in ([], block):
  outs=[]
  for demo in expert_demos(source, tasks, cfg.sampling.history_length, skills=lambda t,g: b):
    shown = re.findall(r"action: (.*)", demo.prompt)
    if shown and shown[-1].startswith("take ") and re.fullmatch(r"<action>go to (microwave|stoveburner) 1</action>", demo.answer):
        (a,) = policy.generate([policy.encode_prompt(demo.prompt)], 32, temperature=0.0)
        outs.append(a.text)
  print(run, "block" if b else "none", outs)
