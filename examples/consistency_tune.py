"""Consistency fine-tune: teach a warm start that a skills block not about its task changes
nothing it does.

    python3 examples/consistency_tune.py RUN_DIR --out OUT [--steps 120] [--demos 2] [--pairs 6]
        [--lr 2e-4] [--weight 1.0] [--from-task 3000] [--tasks 1000] [--reading] [--seed 0]

Each AdamW step adds two terms. The cross-entropy of `--demos` of the warm start's own
demonstrations (its config's mix, rebuilt: the expert's steps and the skill reading and writing
demonstrations), so that it keeps reading the procedures of its own tasks. And `--weight` times
the consistency of `--pairs` expert steps of train tasks the warm start never saw
(`--tasks` of them from `--from-task` on): at each token of the expert's answer, the policy's
whole next-token distribution with a block of procedures of other task types (written by the rule
inducer from the warm start's own demonstrated tasks) is pulled toward the same distribution with
no block, held fixed: KL(p(. | no block) || p(. | foreign block)), summed over the answer's
tokens and averaged over the pairs. The expert's action is only
the path the distributions are read along; the target is the policy's own answer without a
block, so the term can be taken on states whose expert action the policy cannot know.

With `--reading`, each drawn step is also shown with a block holding its own task's procedure
(the rule inducer's for its type and the appliance its expert uses, written from the same
demonstrated tasks) and trained by the cross-entropy of the expert's action: on the same states,
the block that is about the task is to be followed and the one that is not to be left alone.

OUT is a run directory (the warm start's config, a start.json naming the new weights,
consistency.jsonl with the loss terms, consistency.json with the settings and the mean KL of 48
held-out pairs before and after) that `skills vet --model`, `examples/heater_odds.py` and
`skillvet eval` take.
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from skillvet.envs import make_source
from skillvet.machine import machine_info
from skillvet.rundir import write_start
from skillvet.runs import load_run_policy
from skillvet.sft import (
    Demo,
    answer_cross_entropy,
    expert_attempts,
    expert_demos,
    lr_at,
    treated_at,
    warm_start_demos,
)
from skillvet.skills.induce import rule_skill

parser = argparse.ArgumentParser()
parser.add_argument("run")
parser.add_argument("--out", required=True)
parser.add_argument("--steps", type=int, default=120)
parser.add_argument("--demos", type=int, default=2)
parser.add_argument("--pairs", type=int, default=6)
parser.add_argument("--lr", type=float, default=2e-4)
parser.add_argument("--weight", type=float, default=1.0)
parser.add_argument("--from-task", type=int, default=3000)
parser.add_argument("--tasks", type=int, default=1000)
parser.add_argument("--reading", action="store_true")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

if min(args.steps, args.demos, args.pairs) < 1:
    raise SystemExit("--steps, --demos and --pairs must each be at least 1")
started = time.time()
cfg, policy = load_run_policy(args.run)
source = make_source(cfg.env)
train = source.tasks(cfg.env.train_split)
if len(train) < args.from_task + args.tasks + 48:
    raise SystemExit(
        f"the {cfg.env.train_split} split has {len(train)} tasks; --from-task {args.from_task} "
        f"and --tasks {args.tasks} need {args.from_task + args.tasks + 48}"
    )
if args.from_task < cfg.sft.tasks + cfg.sft.val_tasks + cfg.sft.val_play:
    raise SystemExit(f"--from-task {args.from_task} reaches into the warm start's own tasks")
history = cfg.sampling.history_length
warm = warm_start_demos(cfg, source, train)

# Every procedure the rule inducer writes from the demonstrated tasks, one per type and place.
groups: dict[tuple[str, str], list] = {}
demonstrated = train[: cfg.sft.tasks]
for task, attempt in zip(demonstrated, expert_attempts(source, demonstrated)):
    groups.setdefault((task.task_type, treated_at(attempt.actions)), []).append(attempt)
by_key: dict[tuple[str, str], str] = {}
procedures: dict[str, list[str]] = {}
for (task_type, place), group in sorted(groups.items()):
    chosen = [a for a in group if a.won][: cfg.skills.cluster_size] or group[:1]
    by_key[task_type, place] = rule_skill(chosen, task_type).text()
    procedures.setdefault(task_type, []).append(by_key[task_type, place])
rng = np.random.default_rng([args.seed, 31])


def foreign(task, goal: str) -> list[str]:
    """One or two procedures, each of a task type other than `task`'s."""
    others = [t for t in procedures if t != task.task_type]
    if not others:
        raise SystemExit("the demonstrated tasks have one type: no procedure of another")
    count = min(len(others), int(rng.integers(1, 3)))
    kinds = rng.choice(len(others), size=count, replace=False)
    return [procedures[others[k]][int(rng.integers(len(procedures[others[k]])))] for k in kinds]


def own(task, goal: str) -> list[str]:
    """The procedure of `task`'s own type and appliance (none if no demonstrated task had it)."""
    key = (task.task_type, treated_at(source.expert(task)))
    return [by_key[key]] if key in by_key else []


def pairs_of(tasks) -> list[tuple[Demo, Demo]]:
    """(no block, foreign block) demonstrations of every expert step of `tasks`."""
    plain = expert_demos(source, tasks, history)
    blocked = expert_demos(source, tasks, history, skills=foreign)
    assert [d.answer for d in plain] == [d.answer for d in blocked]
    return list(zip(plain, blocked))


unseen = train[args.from_task : args.from_task + args.tasks]
pairs = pairs_of(unseen)
readings = expert_demos(source, unseen, history, skills=own) if args.reading else []
assert not readings or [d.answer for d in readings] == [p.answer for p, _ in pairs]
held_out = pairs_of(train[args.from_task + args.tasks : args.from_task + args.tasks + 48])
held_out = [held_out[int(i)] for i in rng.choice(len(held_out), size=48, replace=False)]


def encoded(demos) -> tuple[list[list[int]], list[list[int]]]:
    return [policy.encode_prompt(d.prompt) for d in demos], [
        policy.encode_answer(d.answer) for d in demos
    ]


def consistency(batch: list[tuple[Demo, Demo]]) -> torch.Tensor:
    """Mean over pairs of KL(p(. | no block) || p(. | foreign block)) summed over the answer's
    tokens, the first held fixed."""
    plain_prompts, answers = encoded([p for p, _ in batch])
    blocked_prompts, _ = encoded([b for _, b in batch])
    with torch.no_grad():
        target, _, mask = policy.answer_distributions(plain_prompts, answers)
    logp, _, _ = policy.answer_distributions(blocked_prompts, answers)
    kl = (target.exp() * (target - logp)).sum(-1)
    return (kl * mask).sum() / len(batch)


def held_out_kl() -> float:
    policy.model.eval()
    with torch.no_grad():
        value = float(np.mean([float(consistency(held_out[i : i + 6])) for i in range(0, 48, 6)]))
    policy.model.train()
    return value


out = Path(args.out)
out.mkdir(parents=True, exist_ok=False)
shutil.copy(Path(args.run) / "config.yaml", out / "config.yaml")
before = held_out_kl()
print(f"{len(warm.demos)} warm-start demonstrations, {len(pairs)} pairs; held-out KL {before:.4g}")
optimizer = torch.optim.AdamW(policy.parameters(), lr=args.lr, weight_decay=0.0)
order = np.random.default_rng(args.seed)
policy.model.train()
for step in range(args.steps):
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step, args.steps, args.lr)
    picked = order.choice(len(warm.demos), size=args.demos, replace=False)
    ce = answer_cross_entropy(policy, *encoded([warm.demos[int(i)] for i in picked]))
    drawn = order.choice(len(pairs), args.pairs, replace=False)
    kl = consistency([pairs[int(i)] for i in drawn])
    loss = ce + args.weight * kl
    read = torch.zeros(())
    if readings:
        read = answer_cross_entropy(policy, *encoded([readings[int(i)] for i in drawn]))
        loss = loss + read
    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss became {float(loss)} at step {step}; lower --lr")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
    optimizer.step()
    ce, kl, read = float(ce.detach()), float(kl.detach()), float(read.detach())
    record = {"step": step, "ce": ce, "kl": kl, "seconds": time.time() - started}
    if readings:
        record["reading_ce"] = read
    with open(out / "consistency.jsonl", "a") as log:
        log.write(json.dumps(record) + "\n")
    if step % 10 == 0 or step == args.steps - 1:
        reading = f", reading cross-entropy {read:.4f}" if readings else ""
        print(f"step {step}: cross-entropy {ce:.4f}, KL {kl:.4g}{reading}", flush=True)
after = held_out_kl()
policy.model.eval()
policy.save(out / "model-sft")
if cfg.model.lora:
    write_start(out, policy.base_name, str(out / "model-sft"))
else:
    write_start(out, str(out / "model-sft"), None)
summary = {
    "from": str(args.run),
    "settings": vars(args),
    "held_out_kl": {"before": before, "after": after},
    "pairs": len(pairs),
    "seconds": round(time.time() - started, 1),
    "machine": machine_info(),
}
(out / "consistency.json").write_text(json.dumps(summary, indent=2) + "\n")
print(f"held-out KL {before:.4g} -> {after:.4g}; {out} written in {summary['seconds']:.0f} s")
