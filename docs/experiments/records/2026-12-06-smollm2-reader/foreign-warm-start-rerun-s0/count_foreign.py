from skillvet.config import load_config
from skillvet.envs import make_source
from skillvet.sft import warm_start_demos
sets=["env.household.working_heater=drawn","model.name=smollm2-135m-instruct","sft.batch_size=8","sft.steps=150","sft.val_every=50","sft.val_tasks=10","sft.foreign_share=0.33"]
cfg=load_config("recipes/household-heater-sapo.yaml",sets)
src=make_source(cfg.env)
d=warm_start_demos(cfg,src,src.tasks(cfg.env.train_split)).demos
K="Skills that may help"
shown=[x for x in d if K in x.prompt]
heat=[x for x in shown if x.task_type=="pick_heat_then_place"]
def blk(x): return x.prompt.split(K)[1].split("\n\n")[0]
fc=[x for x in heat if "Clean then place" in blk(x) and "Heat then place" not in blk(x)]
dec=[x for x in fc if x.answer.startswith("<action>go to microwave") or x.answer.startswith("<action>go to stoveburner")]
print(len(d), len(shown), len(heat), "heat steps with the clean procedure alone:", len(fc), "at the heater walk:", len(dec))
print("SFT sees", 150*8, "of", len(d))
