"""The learner against vLLM on a warm start's own rollouts: 8 eval heat tasks x 2 in the
stove-only world, sampled by vLLM (LoRA merged, the CPU default), then the learner's log-probs
of the first 120 steps' sampled tokens (bf16 autocast) against vLLM's.

    .venv-vllm/bin/python logprob_gap.py runs/smol-s0
"""

import argparse
import sys
import time

import numpy as np
import torch

from skillvet.cliargs import env_config
from skillvet.envs import make_source
from skillvet.policy.vllm import VllmSampler
from skillvet.rollout import rollout
from skillvet.runs import load_model

WORLD = ["household.heat_appliances=[microwave,stoveburner]", "household.working_heater=stoveburner"]

if __name__ == "__main__":
    cfg, policy, _ = load_model(sys.argv[1])
    options = argparse.Namespace(env="household", data=None, max_steps=None, set=WORLD)
    source = make_source(env_config(options, cfg.env))
    heat = [t for t in source.tasks(cfg.env.eval_split) if t.task_type == "pick_heat_then_place"]
    sampler = VllmSampler(policy, cfg.sampling.vllm)
    t0 = time.time()
    episodes = rollout(
        sampler, source, heat[:8], 2, max_new_tokens=cfg.sampling.max_action_tokens,
        temperature=1.0, generator=torch.Generator().manual_seed(0), skills_section=True,
    )
    print(f"rollout {time.time() - t0:.0f} s, success {np.mean([e.won for e in episodes]):.3f}")
    steps = [s for e in episodes for s in e.steps][:120]
    gaps = []
    for start in range(0, len(steps), 16):
        chunk = steps[start : start + 16]
        with torch.no_grad():
            logp, _, _ = policy.token_logprobs(
                [s.prompt_ids for s in chunk], [s.response_ids for s in chunk]
            )
        for i, s in enumerate(chunk):
            learner = logp[i, logp.shape[1] - len(s.response_ids) :].float().numpy()
            gaps.append(np.abs(learner - np.asarray(s.logprobs)).mean())
    print(f"steps {len(steps)}: |learner - vLLM| per token {np.mean(gaps):.4f} on average, "
          f"{np.max(gaps):.4f} at most (a step's mean)")
