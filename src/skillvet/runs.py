"""Opening runs: a new one (`start_run`: its directory, start model and warm start), a killed
one (`resume_run`), and the one loader of policies that every command shares (`load_model`:
a run directory at its last checkpoint, a model folder, a LoRA adapter folder or a hub id).

The files a run directory holds are `skillvet.rundir`'s; the RL loop is `skillvet.train`'s.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from skillvet import checkpoint, fsdp
from skillvet.config import Config, load_config, save_config
from skillvet.configerror import ConfigError
from skillvet.distributed import ONE, Dist
from skillvet.envs import TaskSource, make_source
from skillvet.evaluate import episode_seeds, evaluate
from skillvet.jsonl import append_jsonl, keep_through, read_jsonl
from skillvet.loggers import Loggers
from skillvet.machine import machine_info
from skillvet.policy.hf import Policy
from skillvet.policy.models import build_tiny, chatml_text, resolve
from skillvet.policy.sampler import Sampler, check_engine, make_sampler
from skillvet.rundir import (
    checkpoint_folder,
    latest_checkpoint,
    lock,
    point_latest,
    read_start,
    write_start,
)
from skillvet.sft import (
    WarmStartDemos,
    expert_demos,
    supervised,
    warm_start_demos,
    warm_start_tasks,
)
from skillvet.skills.sapo import SkillVetting
from skillvet.stats import format_rate, wilson_interval
from skillvet.types import Task
from skillvet.validation import Validation, kinds_line


@dataclass
class Run:
    cfg: Config
    dir: Path
    source: TaskSource
    policy: Policy
    optimizer: torch.optim.Optimizer
    start_iteration: int = 0
    quiet: bool = False
    loggers: Loggers | None = None
    vetting: SkillVetting | None = None
    """SAPO's skill bank and its per-iteration steps (skills.enabled)."""
    sampler: Sampler | None = None
    """The rollout engine (`sampling.engine`) holding `policy`'s weights."""
    held: object = None
    """The run's writer lock (`skillvet.rundir.lock`), held while this object lives."""
    dist: Dist = ONE
    """The processes this run is on (`skillvet.distributed`); the main one writes and prints."""

    def path(self, name: str) -> Path:
        return self.dir / name

    def say(self, text: str) -> None:
        from tqdm import tqdm

        if not self.dist.main:
            return
        if self.quiet:
            print(text, flush=True)
        else:
            tqdm.write(text)

    def bar(self, **kwargs):
        from tqdm import tqdm

        silent = self.quiet or not self.dist.main
        return tqdm(disable=True if silent else None, dynamic_ncols=True, **kwargs)


def optimizer(policy: Policy, cfg: Config) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        policy.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay
    )


def start_run(
    cfg: Config, quiet: bool = False, run_dir: str | Path | None = None, dist: Dist = ONE
) -> Run:
    """A new run directory: resolved config, start model (after the warm start), optimizer.
    On several processes the main one alone calls this (the others then `resume_run` it)."""
    if cfg.model.threads:
        torch.set_num_threads(cfg.model.threads)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(run_dir) if run_dir else Path(cfg.run.out_dir) / f"{cfg.run.name}-{stamp}"
    source = make_source(cfg.env)
    train_tasks = _checked(cfg, source)
    if path.exists() and any(path.iterdir()):
        raise FileExistsError(f"run directory {path} exists and is not empty; use --resume")
    path.mkdir(parents=True, exist_ok=True)
    held = lock(path)
    print(f"run directory: {path}", file=sys.stdout if quiet else sys.stderr, flush=True)
    save_config(cfg, path / "config.yaml")
    (path / "machine.json").write_text(json.dumps(machine_info(), indent=2) + "\n")
    torch.manual_seed(cfg.run.seed)
    demos = None
    if cfg.sft.steps:
        from tqdm import tqdm

        shown = cfg.sft.tasks + cfg.sft.val_tasks
        with tqdm(total=shown, desc="expert demos", disable=True if quiet else None) as bar:
            demos = warm_start_demos(cfg, source, train_tasks, on_task=bar.update)
    if cfg.model.name == "tiny":
        texts_demos = (demos.demos if demos else []) or expert_demos(
            source, train_tasks[: cfg.model.tiny.tokenizer_tasks], cfg.sampling.history_length
        )
        texts = [
            chatml_text(d.prompt, d.answer)
            for d in texts_demos[: 50 * cfg.model.tiny.tokenizer_tasks]
        ]
        base = str(build_tiny(texts, cfg.model.tiny, path / "model-init", cfg.run.seed))
    else:
        base = resolve(cfg.model.name)
    policy = Policy.load(base, cfg.model)
    run = Run(cfg, path, source, policy, optimizer(policy, cfg), quiet=quiet, held=held, dist=dist)
    adapter = None
    if demos is not None:
        base, adapter = _warm_start(run, demos, base)
        # the start of RL is the warm-started model: it is also the KL reference
        run.policy = Policy.load(base, cfg.model, adapter=adapter)
        run.optimizer = optimizer(run.policy, cfg)
    write_start(path, base, adapter)
    run.sampler = make_sampler(run.policy, cfg.sampling)
    if cfg.skills.enabled:
        run.vetting = SkillVetting(cfg, path, dist=dist, player=run.sampler)
    return run


def _checked(cfg: Config, source: TaskSource) -> list[Task]:
    """The train split's tasks, once everything a run needs before its directory is made holds:
    the model name, the rollout engine, the splits, the warm start's tasks; else the error."""
    if cfg.model.name != "tiny":
        resolve(cfg.model.name)  # a wrong model name fails here, before a run directory is made
    check_engine(cfg.sampling)  # so does a rollout engine that is not installed
    splits = {"env.train_split": cfg.env.train_split, "env.eval_split": cfg.env.eval_split}
    for key, split in splits.items():  # and a split the environment does not have
        if split not in source.splits():
            raise ConfigError(
                f"{key}: {source.name} has no split {split!r}; its splits: "
                f"{', '.join(source.splits())}"
            )
    train_tasks = source.tasks(cfg.env.train_split)
    if cfg.sft.steps:
        warm_start_tasks(cfg, train_tasks)  # so does a warm start the split cannot hold
    return train_tasks


def _warm_start(run: Run, demos: WarmStartDemos, base: str) -> tuple[str, str | None]:
    """SFT on `demos` with its records (sft.jsonl, warm_start.json); the (base, adapter) saved."""
    cfg, path, policy = run.cfg, run.dir, run.policy
    run.say(
        f"warm start: {len(demos.demos)} expert steps from {demos.tasks} tasks, {cfg.sft.steps} "
        "SFT steps"
    )
    with run.bar(total=cfg.sft.steps, desc="sft") as bar:

        def on_step(step: int, loss: float) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")
            if step % 25 == 0 or step == cfg.sft.steps - 1:
                append_jsonl(path / "sft.jsonl", {"step": step, "loss": loss})

        def on_validation(v: Validation) -> None:
            append_jsonl(path / "sft.jsonl", _validation_record(v))
            run.say(
                f"sft step {v.step}: validation loss {v.loss:.4f}, action accuracy {v.accuracy:.1%}"
                f" ({kinds_line(v, most=4)}){_played_text(v)}"
            )

        result = supervised(
            policy,
            demos.demos,
            cfg.sft,
            cfg.run.seed,
            on_step=on_step,
            val=demos.val,
            on_validation=on_validation,
            play=_player(cfg, run.source, demos.play) if demos.play else None,
        )
    chosen = result.chosen
    kept = (
        f"; kept the {cfg.sft.select} validation, step {chosen.step}: action accuracy "
        f"{chosen.accuracy:.1%} on {len(demos.val)} held-out expert steps ({kinds_line(chosen)})"
        f"{_played_text(chosen)}"
        if chosen
        else ""
    )
    run.say(f"warm start done: loss {result.losses[0]:.3f} -> {result.losses[-1]:.3f}{kept}")
    if chosen is not None:
        warm_start = {"select": cfg.sft.select, **_validation_record(chosen)}
        warm_start["val_steps"] = len(demos.val)
        (path / "warm_start.json").write_text(json.dumps(warm_start, indent=2) + "\n")
    saved = str(path / "model-sft")
    policy.save(saved)
    return (base, saved) if cfg.model.lora else (saved, None)


def _player(
    cfg: Config, source: TaskSource, tasks: list[Task]
) -> Callable[[Policy], tuple[int, int]]:
    """Plays `tasks` once each as eval does (`eval.temperature`), with the same sampling seeds at
    every call, so that two validations differ by the policy only: (successes, episodes)."""
    seeds = episode_seeds(
        int(np.random.SeedSequence([cfg.run.seed, 7]).generate_state(1)[0]), len(tasks)
    )

    def play(policy: Policy) -> tuple[int, int]:
        summary, _ = evaluate(
            policy,
            source,
            tasks,
            max_new_tokens=cfg.sampling.max_action_tokens,
            temperature=cfg.eval.temperature,
            history_length=cfg.sampling.history_length,
            seeds=seeds,
        )
        return summary["successes"], summary["episodes"]

    return play


def _played_text(v: Validation) -> str:
    """What a validation line adds where `v` was played (else nothing): ", held-out tasks played:
    24.0% [16.7, 33.2] (24/100)"."""
    return "" if v.played is None else f", held-out tasks played: {format_rate(*v.played)}"


def _validation_record(v: Validation) -> dict:
    """A validation as sft.jsonl and warm_start.json hold it."""
    record = {
        "step": v.step,
        "val_loss": v.loss,
        "val_accuracy": v.accuracy,
        "val_by_kind": {kind: {"right": r, "steps": n} for kind, (r, n) in v.by_kind.items()},
    }
    if v.played is not None:
        wins, n = v.played
        record["val_played"] = {
            "successes": wins,
            "episodes": n,
            "ci95": list(wilson_interval(wins, n)),
        }
    return record


def resume_run(run_dir: str | Path, quiet: bool = False, dist: Dist = ONE) -> Run:
    """Reopen a run at its last checkpoint; records of later iterations are dropped.

    On several processes (`dist`) every rank opens it, after the main one has made or resumed
    it: the main one alone takes the lock and trims the records and the bank."""
    path = Path(run_dir)
    if not (path / "config.yaml").is_file() or not (path / "start.json").is_file():
        raise FileNotFoundError(f"{path} is not a run directory (no config.yaml / start.json)")
    held = lock(path) if dist.main else None
    cfg = load_config(path / "config.yaml")
    if cfg.model.threads:
        torch.set_num_threads(cfg.model.threads)
    policy = load_policy_from_start(path, cfg)
    if cfg.train.fsdp and dist.world > 1:
        fsdp.shard(policy)  # before the optimizer, which then holds the shards
    run = Run(
        cfg,
        path,
        make_source(cfg.env),
        policy,
        optimizer(policy, cfg),
        quiet=quiet,
        held=held,
        dist=dist,
    )
    latest = latest_checkpoint(path)
    if latest is not None:
        run.start_iteration, ckpt = latest
        checkpoint.load(ckpt, policy, run.optimizer)
    if fsdp.is_sharded(policy):
        fsdp.whole(policy)  # after the optimizer and the checkpoint took the shards
    if dist.main:
        for name in ("metrics.jsonl", "trajectories.jsonl", "eval.jsonl"):
            keep_through(path / name, run.start_iteration)
    run.sampler = make_sampler(policy, cfg.sampling)  # with the checkpoint's weights
    if cfg.skills.enabled:
        run.vetting = SkillVetting(cfg, path, dist=dist, player=run.sampler)
        if dist.main:
            run.vetting.bank.rollback_after(run.start_iteration)
    return run


def save_checkpoint(run: Run, iteration: int) -> None:
    """Checkpoint `iteration` through DCP (every rank together), then latest.json points at
    it; the previous one is dropped unless `train.keep_every` keeps it."""
    folder = checkpoint_folder(run.dir, iteration)
    if run.dist.main:
        shutil.rmtree(folder, ignore_errors=True)
    run.dist.barrier()
    with fsdp.sharded(run.policy):  # FSDP: each rank writes its shards
        checkpoint.save(folder, run.policy, run.optimizer)
    run.dist.barrier()
    if run.dist.main:
        point_latest(run.dir, iteration, run.cfg.train.keep_every)


def load_policy_from_start(run_dir: Path, cfg: Config) -> Policy:
    """The policy a run started RL from (its base folder and any warm-start adapter)."""
    base, adapter = read_start(run_dir)
    return Policy.load(base, cfg.model, adapter=adapter)


def load_run_policy(run_dir: str | Path) -> tuple[Config, Policy]:
    """A run's config and its policy at the last checkpoint (the start policy if none)."""
    path = Path(run_dir)
    cfg = load_config(path / "config.yaml")
    policy = load_policy_from_start(path, cfg)
    latest = latest_checkpoint(path)
    if latest is not None:
        checkpoint.load(latest[1], policy)
    policy.model.eval()
    return cfg, policy


def is_run_dir(path: Path) -> bool:
    return (path / "config.yaml").is_file() and (path / "start.json").is_file()


def load_model(name: str) -> tuple[Config, Policy, Path | None]:
    """(config, policy, run directory or None) for a model argument: a run directory (its last
    checkpoint), a model folder or LoRA adapter folder, smollm2-135m-instruct, or a hub id."""
    path = Path(name)
    if is_run_dir(path):
        cfg, policy = load_run_policy(path)
        return cfg, policy, path
    cfg = load_config(None, [f"model.name={name}"])
    if cfg.model.name == "tiny":
        raise ValueError("`tiny` is untrained; give a run directory or a model folder")
    base = resolve(cfg.model.name)
    adapter = None
    if (Path(base) / "adapter_config.json").is_file():
        adapter, base = base, (Path(base) / "BASE").read_text().strip()
        cfg.model.lora = True
    return cfg, Policy.load(base, cfg.model, adapter=adapter), None


def write_summary(run: Run, before: dict | None, after: dict) -> dict:
    """summary.json at the end of a run (and a warning printed if no iteration had a signal)."""
    warning = no_signal_warning(read_jsonl(run.path("metrics.jsonl")))
    if warning:
        print(f"skillvet: warning: {warning}", file=sys.stderr, flush=True)
    warm = run.path("warm_start.json")
    result = {
        "run_dir": str(run.dir),
        "before": before["success_rate"] if before else None,
        "after": after["success_rate"],
        "before_eval": _eval_brief(before) if before else None,
        "after_eval": _eval_brief(after),
        "iterations": run.cfg.train.iterations,
        "warm_start": json.loads(warm.read_text()) if warm.is_file() else None,
        "warnings": [warning] if warning else [],
        "machine": machine_info(),
    }
    run.path("summary.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _eval_brief(record: dict) -> dict:
    keys = ("success_rate", "successes", "episodes", "ci95", "invalid_rate", "by_type")
    brief = {k: record[k] for k in keys if k in record}
    if "ci95" not in brief:  # an eval line written before intervals were recorded
        brief["successes"] = round(brief["success_rate"] * brief["episodes"])
        brief["ci95"] = list(wilson_interval(brief["successes"], brief["episodes"]))
    return brief


def no_signal_warning(metrics: list[dict]) -> str | None:
    """The warning for a run in which no iteration's groups carried any signal, else None."""
    if not metrics or any(m.get("zero_signal_share", 0.0) < 1.0 for m in metrics):
        return None
    success = float(np.mean([m["train_success"] for m in metrics]))
    cause = (
        "no rollout ever succeeded"
        if success == 0.0
        else "every rollout succeeded"
        if success == 1.0
        else "every group's rollouts scored alike"
    )
    return (
        f"no learning signal in any of the {len(metrics)} iterations: in every group {cause} "
        f"(train success {success:.1%}), so every advantage and the policy-gradient loss were 0 "
        "and only "
        f"the KL term moved the policy. Start from a stronger warm start (sft.steps, sft.recovery; "
        f"see its validation accuracy in sft.jsonl) or give the tasks more steps (env.max_steps)."
    )
