"""The training loop: warm start, then RL iterations of rollout -> advantages -> update.

    run = start_run(cfg)          # or resume_run(run_dir)
    train(run)

Each iteration reads top to bottom: sample B tasks from the train split (seeded by run seed and
iteration), play each N times in one batched rollout, compute advantages (GiGPO, GRPO or RLOO),
take the PPO-clip + KL update, append one line to metrics.jsonl, save the resumable state.
With `skills.enabled` (SAPO, `skillvet.skills.sapo`) the tasks come in clusters of K of one
type, the N rollouts are a base half and a skill-augmented half around one induced candidate
per cluster, and every `skills.promote_every` iterations the candidates are promoted or
discarded, the bank pruned, and the generator loss joins the update.

Choices:
- Everything random in an iteration is seeded from (run.seed, iteration): task sampling,
  the sampler's generator and the learner's shuffling. A resumed run therefore replays an
  iteration exactly as it would have run, and keeps no RNG state in its checkpoints.
- The metrics line of an iteration is written before its checkpoint. On resume, lines of
  iterations after the last checkpoint are dropped and those iterations run again, so the
  finished metrics.jsonl holds every iteration exactly once, whatever moment the run was
  killed at. With `train.checkpoint_every: 1` (default) only the iteration in progress is redone.
- Checkpoints are written to a new folder, then `checkpoints/latest.json` is replaced
  atomically to point at it: a kill during a save leaves the previous checkpoint in use.
- The learning rate warms up linearly over `train.warmup_iterations`, then stays constant.
- The skill bank (`skills.sqlite`) is rolled back to the checkpoint on resume: what later
  iterations wrote is removed, so a resumed SAPO run replays them against the same bank.
"""

from __future__ import annotations

import time

import numpy as np

from skillvet import fsdp
from skillvet.config import Config
from skillvet.distributed import Dist
from skillvet.evaluate import episode_seeds, evaluate, format_summary, summarize
from skillvet.jsonl import append_jsonl, read_jsonl
from skillvet.learner import compute_advantages, update, zero_signal_share
from skillvet.loggers import Loggers
from skillvet.rollout import rollout
from skillvet.runs import (
    Run,
    no_signal_warning,
    resume_run,
    save_checkpoint,
    start_run,
    write_summary,
)
from skillvet.sampling import clustered_tasks, uniform_tasks

__all__ = [
    "Run",
    "eval_seed",
    "main_train",
    "no_signal_warning",
    "resume_run",
    "start_run",
    "train",
    "train_iteration",
]


def _seed(cfg: Config, iteration: int, stream: int) -> int:
    """A seed per (run seed, iteration, purpose), independent across purposes."""
    return int(np.random.SeedSequence([cfg.run.seed, iteration, stream]).generate_state(1)[0])


# --------------------------------------------------------------------------------------------
# Evaluation inside a run
# --------------------------------------------------------------------------------------------


def eval_seed(cfg: Config) -> int:
    """The sampling seed of every eval of a run: the same draws before and after RL, so the two
    differ by the policy only (and `skillvet eval RUN_DIR` repeats the run's own eval)."""
    return _seed(cfg, 0, 3)


def run_eval(run: Run, iteration: int, stage: str) -> dict:
    """Evaluate on the eval split (each rank its share of the tasks, with the seeds they have in
    the one-process eval); the main process records, prints and returns it ({} elsewhere)."""
    cfg, dist = run.cfg, run.dist
    tasks = run.source.tasks(cfg.env.eval_split)[: cfg.eval.tasks]
    mine = dist.share(len(tasks))
    seeds = episode_seeds(eval_seed(cfg), len(tasks))
    t0 = time.time()
    with run.bar(total=len(mine), desc=f"eval {stage}", leave=False) as bar:
        _, episodes = evaluate(
            run.sampler,
            run.source,
            tasks[mine.start : mine.stop],
            max_new_tokens=cfg.sampling.max_action_tokens,
            temperature=cfg.eval.temperature,
            history_length=cfg.sampling.history_length,
            seeds=seeds[mine.start : mine.stop],
            on_episodes=bar.update,
            skills=run.vetting.skills_fn(run.policy, bank=run.vetting.promoted())
            if run.vetting is not None
            else None,
            skills_section=cfg.skills.enabled,
            admissible_only=cfg.sampling.admissible_only,
        )
    parts = dist.gather_to_main(episodes)
    if parts is None:  # not the main rank: it records nothing
        return {}
    summary = summarize([e for part in parts for e in part])
    record = {
        "iteration": iteration,
        "stage": stage,
        "seconds": round(time.time() - t0, 2),
        **summary,
    }
    append_jsonl(run.path("eval.jsonl"), record)
    if run.loggers is not None:
        run.loggers.log("eval", record, iteration)
    run.say(
        f"eval {stage} (iteration {iteration}) on {cfg.env.eval_split}: success "
        f"{format_summary(summary)}"
    )
    return record


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


def train_iteration(run: Run, iteration: int) -> dict | None:
    """One RL iteration (1-based): rollout, advantages, update. Returns its metrics line: the
    main process writes and returns it (the episodes and rows gathered to it), the other ranks
    return None."""
    cfg, dist = run.cfg, run.dist
    rng = np.random.default_rng(_seed(cfg, iteration, 0))
    pool = run.source.tasks(cfg.env.train_split)
    vetting = run.vetting
    t0 = time.time()
    skill_stats: dict = {}
    if vetting is None:
        k = cfg.train.task_clusters
        tasks = (
            clustered_tasks(pool, cfg.train.tasks_per_iteration, k, rng)
            if k
            else uniform_tasks(pool, cfg.train.tasks_per_iteration, rng)
        )
        n = cfg.train.group_size
        mine = dist.share(len(tasks))  # whole groups: GiGPO's groups stay on one rank
        seeds = episode_seeds(_seed(cfg, iteration, 1), len(tasks) * n)
        episodes = rollout(
            run.sampler,
            run.source,
            tasks[mine.start : mine.stop],
            n,
            max_new_tokens=cfg.sampling.max_action_tokens,
            temperature=cfg.sampling.temperature,
            history_length=cfg.sampling.history_length,
            sampling_seeds=seeds[mine.start * n : mine.stop * n],
            first_group=mine.start,
            admissible_only=cfg.sampling.admissible_only,
        )
    else:  # SAPO: base half, induce, augmented half, utility
        tasks = vetting.sample_tasks(pool, rng)
        episodes, skill_stats = vetting.play(
            run.policy, run.source, tasks, iteration, _seed(cfg, iteration, 1), dist
        )
    t_rollout = time.time() - t0

    rows = compute_advantages(episodes, cfg.algo)  # both halves pooled: one group of N per task
    generator_rows = None
    if vetting is not None and iteration % cfg.skills.promote_every == 0:
        generator_rows, promoted = vetting.promote(  # re-vetting plays on the rollout engine
            run.policy, iteration, run.source, pool, _seed(cfg, iteration, 4), dist
        )
        skill_stats.update(promoted)
    run.sampler.release()  # the rollouts are over: the device is the learner's
    warm = cfg.train.warmup_iterations
    lr = cfg.train.lr * (min(1.0, iteration / warm) if warm else 1.0)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    t1 = time.time()
    with fsdp.sharded(run.policy):  # FSDP: sharded for the update, whole again for rollouts
        learned = update(
            run.policy,
            run.optimizer,
            rows,
            cfg.train,
            cfg.algo,
            cfg.sampling.temperature,
            np.random.default_rng(_seed(cfg, iteration, 2)),
            generator_rows=generator_rows,
            exact_sampler=run.sampler.exact,
            dist=dist,
        )
    run.sampler.load_weights(run.policy)  # the next rollout samples from the updated weights
    t_learn = time.time() - t1

    parts = dist.gather_to_main(
        (episodes, rows.step_group_sizes, rows.advantages, rows.groups, t_rollout)
    )
    if parts is None:  # not the main rank: it writes nothing
        return None
    episodes = [e for part in parts for e in part[0]]
    sizes, advantages, groups = (np.concatenate([part[i] for part in parts]) for i in (1, 2, 3))
    t_rollout = max(part[4] for part in parts)
    summary = summarize(episodes)
    generated = sum(len(s.response_ids) for e in episodes for s in e.steps)
    record = {
        "iteration": iteration,
        "train_success": summary["success_rate"],
        "reward": float(np.mean([e.reward for e in episodes])) if episodes else 0.0,
        "episode_length": summary["mean_steps"],
        "invalid_rate": summary["invalid_rate"],
        "env_errors": summary["errors"],
        "success_by_type": {t: v["success_rate"] for t, v in summary["by_type"].items()},
        "samples": len(sizes),
        "step_group_size_mean": float(sizes.mean()) if len(sizes) else 0.0,
        "step_group_singleton_share": float((sizes == 1).mean()) if len(sizes) else 0.0,
        "step_group_size_hist": np.bincount(np.minimum(sizes, 16), minlength=17)[1:].tolist()
        if len(sizes)
        else [],
        "advantage_abs_mean": float(np.abs(advantages).mean()) if len(sizes) else 0.0,
        "zero_signal_share": zero_signal_share(advantages, groups),
        "loss": learned["loss"],
        "pg_loss": learned["pg"],
        "kl": learned["kl"],
        "entropy": learned["entropy"],
        "clip_fraction": learned["clip_fraction"],
        "grad_norm": learned["grad_norm"],
        "mismatch_abs": learned["mismatch_abs"],
        "mismatch_kl": learned["mismatch_kl"],
        "lr": lr,
        "rollout_tokens": generated,
        "rollout_tokens_per_s": generated / max(t_rollout, 1e-9),
        "learner_tokens_per_s": learned["tokens"] / max(t_learn, 1e-9),
        "learner_rows_skipped": learned["rows_skipped"],
        "time_rollout_s": round(t_rollout, 3),
        "time_learner_s": round(t_learn, 3),
        **({"gen_loss": learned["gen_loss"], **skill_stats} if vetting is not None else {}),
    }
    append_jsonl(run.path("metrics.jsonl"), record)
    if run.loggers is not None:
        run.loggers.log("train", record, iteration)
    sample = [e for e in episodes if e.index == 0][: cfg.train.trajectories_per_iteration]
    for e in sample:
        episode = e.as_dict(decode=run.policy.tokenizer.decode)
        append_jsonl(run.path("trajectories.jsonl"), {"iteration": iteration, **episode})
    return record


def train(run: Run) -> dict:
    """Run the remaining iterations; evaluate before, every `eval_every`, and after. The run's
    writer lock is let go when this returns or raises."""
    try:
        return _train(run)
    finally:
        if run.held is not None:
            run.held.close()
            run.held = None


def _train(run: Run) -> dict:
    cfg, dist = run.cfg, run.dist
    run.loggers = Loggers(cfg, run.dir) if dist.main else None
    evals = dist.broadcast(read_jsonl(run.path("eval.jsonl")) if dist.main else None)
    if cfg.eval.before and not any(r["stage"] == "before" for r in evals):
        run_eval(run, 0, "before")
    with run.bar(
        total=cfg.train.iterations, initial=run.start_iteration, desc=f"{cfg.algo.estimator}"
    ) as bar:
        for iteration in range(run.start_iteration + 1, cfg.train.iterations + 1):
            record = train_iteration(run, iteration)
            if iteration % cfg.train.checkpoint_every == 0 or iteration == cfg.train.iterations:
                save_checkpoint(run, iteration)
            bar.update(1)
            if record is not None:  # the main rank's
                bar.set_postfix(
                    success=f"{record['train_success']:.2f}",
                    zero_signal=f"{record['zero_signal_share']:.2f}",
                    kl=f"{record['kl']:.3f}",
                )
                if run.quiet:
                    run.say(iteration_line(record, cfg.train.iterations, run))
            if (
                cfg.train.eval_every
                and iteration % cfg.train.eval_every == 0
                and iteration < cfg.train.iterations
            ):
                run_eval(run, iteration, "during")
    evals = dist.broadcast(read_jsonl(run.path("eval.jsonl")) if dist.main else None)
    after = next((r for r in evals if r["stage"] == "after"), None)
    if after is None:
        state = fsdp.full_state(run.policy) if fsdp.is_sharded(run.policy) else None
        if dist.main:
            run.policy.save(run.path("model"), state)
        after = run_eval(run, cfg.train.iterations, "after")
    before = next((r for r in evals if r["stage"] == "before"), None)
    return write_summary(run, before, after) if dist.main else {}


def iteration_line(record: dict, iterations: int, run: Run) -> str:
    """The one line `--quiet` prints per iteration."""
    line = (
        f"iter {record['iteration']}/{iterations} success {record['train_success']:.3f} "
        f"reward {record['reward']:.2f} len {record['episode_length']:.1f} "
        f"invalid {record['invalid_rate']:.3f} zero-signal {record['zero_signal_share']:.2f} "
        + (  # without a KL term: the share of rows the learner skipped (no gradient)
            f"kl {record['kl']:.4f} "
            if run.cfg.algo.kl_coef > 0
            else f"skipped {record['learner_rows_skipped']:.2f} "
        )
        + f"rollout {record['time_rollout_s']:.1f}s learner {record['time_learner_s']:.1f}s"
    )
    if run.vetting is not None:
        line += (
            f" | skills U {record['skills_U']} base {record['skills_base_success']:.2f}"
            f" aug {record['skills_augmented_success']:.2f} bank "
            f"{run.vetting.bank.counts()['promoted']}"
        )
    return line


def main_train(cfg: Config | None, resume: str | None, quiet: bool) -> dict:
    """`skillvet train`: one process, or every rank of `torchrun ... -m skillvet train`."""
    dist = Dist.from_env()
    try:
        if resume:  # every rank together (loading a checkpoint is collective)
            run = resume_run(resume, quiet, dist)
            if dist.main:
                print(f"resuming {run.dir} after iteration {run.start_iteration}", flush=True)
        else:  # the main rank makes the run; then the others open it
            run = start_run(cfg, quiet, dist=dist) if dist.main else None  # type: ignore[arg-type]
            path = dist.broadcast(str(run.dir) if run is not None else None)
            if run is not None and cfg.train.fsdp and dist.world > 1:  # type: ignore[union-attr]
                run.held.close()  # the main rank too opens it again, to shard it
                run = None
            if run is None:
                run = resume_run(path, quiet, dist)
        if run.start_iteration == 0 and not fsdp.is_sharded(run.policy):  # rank 0's LoRA init
            dist.broadcast_params(p for p in run.policy.parameters() if p.requires_grad)
        result = train(run)
    except BaseException:
        dist.close(wait=False)  # the launcher stops the other ranks
        raise
    dist.close()
    return result
