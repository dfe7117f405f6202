import re, numpy as np
from skillvet.config import load_config
from skillvet.envs import make_source
from skillvet.sft import warm_start_demos, expert_demos
cfg = load_config("runs/smolf450-s0/config.yaml")
source = make_source(cfg.env); train = source.tasks(cfg.env.train_split)
warm = warm_start_demos(cfg, source, train)
plain = expert_demos(source, train[3000:4000], cfg.sampling.history_length)
def decision(d):
    shown = re.findall(r"action: (.*)", d.prompt)
    return bool(shown and shown[-1].startswith("take ") and d.task_type=="pick_heat_then_place" and re.fullmatch(r"<action>go to (microwave|stoveburner) 1</action>", d.answer))
order = np.random.default_rng(0)
w = p = wb = 0
for step in range(120):
    for i in order.choice(len(warm.demos), size=2, replace=False):
        d = warm.demos[int(i)]; w += decision(d); wb += decision(d) and "Skills that may help" in d.prompt
    for i in order.choice(len(plain), 6, replace=False):
        p += decision(plain[int(i)])
print("warm demos heater decisions", w, "with a block", wb, "pairs heater decisions", p)
