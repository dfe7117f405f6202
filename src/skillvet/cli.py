"""The `skillvet` command line. Each subcommand is a small function that wires objects together;
the work happens in the library modules."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from skillvet import __version__
from skillvet.cliargs import (
    NON_NEGATIVE,
    PORT,
    POSITIVE,
    TEMPERATURE,
    env_config,
    eval_split,
    number,
)
from skillvet.config import ConfigError, load_config, to_yaml
from skillvet.skills.commands import add_skills_commands


def cmd_config_show(args: argparse.Namespace) -> int:
    cfg = load_config(args.recipe, args.overrides)
    sys.stdout.write(to_yaml(cfg, comments=not args.plain))
    return 0


def cmd_env_list(args: argparse.Namespace) -> int:
    from skillvet.envs import ENVIRONMENTS, make_source

    for name, about in ENVIRONMENTS.items():
        print(f"{name}: {about}")
        try:
            source = make_source(env_config(argparse.Namespace(env=name, data=args.data)))
            splits = source.splits()
        except (ImportError, FileNotFoundError) as err:
            print(f"    not available here: {err}")
            continue
        for split, count in splits.items():
            print(f"    {split}: {count} tasks")
    return 0


def _pick_task(source, split: str, task_id: str | None):
    tasks = source.tasks(split)
    if task_id is None:
        return tasks[0]
    for task in tasks:
        if task.id == task_id:
            return task
    if task_id.isdigit() and int(task_id) < len(tasks):
        return tasks[int(task_id)]
    raise SystemExit(f"skillvet: no task {task_id!r} in split {split!r}")


def cmd_env_play(args: argparse.Namespace) -> int:
    from skillvet.envs import make_source

    source = make_source(env_config(args))
    split = args.split or next(iter(source.splits()))
    task = _pick_task(source, split, args.task)
    env = source.make(task)
    result = env.reset()
    print(f"[{source.name} {split} {task.id} · {task.task_type}]\n")
    print(result.observation)
    total, steps = 0.0, 0
    while not result.done:
        if result.admissible:
            print("\nactions: " + " | ".join(f"{i}) {a}" for i, a in enumerate(result.admissible)))
        try:
            line = input("> ").strip()
        except EOFError:
            break
        if line in ("quit", "exit"):
            break
        if line.isdigit() and result.admissible and int(line) < len(result.admissible):
            line = result.admissible[int(line)]
        result = env.step(line)
        steps += 1
        total += result.reward
        print(result.observation + ("" if result.action_valid else "  [invalid action]"))
    env.close()
    print(f"\n{'won' if result.won else 'not won'} · reward {total:g} · {steps} steps")
    return 0


def cmd_env_check(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from skillvet.envs import make_source
    from skillvet.envs.check import replay_expert

    if not args.expert:
        raise SystemExit("skillvet: env check needs --expert (the only player it has)")
    source = make_source(env_config(args))
    split = args.split or next(iter(source.splits()))
    tasks = source.tasks(split)[: args.limit]
    # disable=None: a bar on a terminal only, never in logs
    with tqdm(
        total=len(tasks),
        desc=f"{source.name}/{split}",
        disable=True if args.json or args.quiet else None,
    ) as bar:

        def progress(report):
            bar.update(1)
            bar.set_postfix(success=f"{report.success_rate:.3f}")

        report = replay_expert(source, tasks, on_episode=progress)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        d = report.as_dict()
        print(
            f"{source.name} {split}: expert won {report.wins}/{report.episodes} "
            f"({report.success_rate:.1%})"
        )
        print(
            f"mean steps {d['mean_steps']:.2f} · {report.steps_per_second:,.0f} steps/s · errors "
            f"{report.errors}"
        )
        for task_type, row in d["by_type"].items():
            print(f"  {task_type:<24} {row['success_rate']:.1%} of {row['episodes']}")
        if report.failures:
            print("not won: " + ", ".join(report.failures[:20]))
    return 0 if report.wins == report.episodes else 1


def cmd_train(args: argparse.Namespace) -> int:
    from skillvet.learner import NonFiniteLoss
    from skillvet.train import main_train

    if args.resume and (args.recipe or args.overrides):
        raise SystemExit(
            "skillvet: --resume continues a run with its saved config; give no recipe or overrides"
        )
    recipe, overrides = args.recipe, list(args.overrides or [])
    if recipe and "=" in recipe and not recipe.endswith((".yaml", ".yml")):
        # `skillvet train key=value` without a recipe
        recipe, overrides = None, [recipe, *overrides]
    cfg = None if args.resume else load_config(recipe, overrides)
    try:
        result = main_train(cfg, args.resume, args.quiet)
    except NonFiniteLoss as err:
        print(
            f"skillvet: training stopped: {err}. The last checkpoint is kept; resume with "
            "--resume.",
            file=sys.stderr,
        )
        return 3
    if not result:  # a rank of a torchrun job other than the main one: it prints nothing
        return 0

    def rate(brief: dict | None) -> str:
        if brief is None:
            return "n/a"
        lo, hi = brief["ci95"]
        return f"{brief['success_rate']:.1%} [{100 * lo:.1f}, {100 * hi:.1f}]"

    print(
        f"eval success before RL: {rate(result['before_eval'])} · after RL: "
        f"{rate(result['after_eval'])} "
        f"(95% intervals) · run: {result['run_dir']}"
    )
    return 0


def cmd_sft(args: argparse.Namespace) -> int:
    """Warm start alone: a model folder trained on expert demonstrations."""

    from skillvet.evaluate import evaluate, format_summary
    from skillvet.train import eval_seed, start_run

    cfg = load_config(
        args.recipe,
        [
            f"env.name={args.env}",
            f"model.name={args.model}",
            "train.iterations=0",
            *([f"env.data={args.data}"] if args.data else []),
            *([f"sft.steps={args.steps}"] if args.steps else []),
            *(args.set or []),
        ],
    )
    if cfg.sft.steps == 0:
        raise SystemExit("skillvet: sft needs sft.steps > 0 (--steps N)")
    run = start_run(cfg, quiet=args.quiet, run_dir=args.out)
    out = Path(args.out) / "model-sft"  # a HF folder, or LoRA adapters naming their base in BASE
    summary, _ = evaluate(  # as a run evaluates: its temperature and sampling seed
        run.policy,
        run.source,
        run.source.tasks(cfg.env.eval_split)[: cfg.eval.tasks],
        max_new_tokens=cfg.sampling.max_action_tokens,
        temperature=cfg.eval.temperature,
        history_length=cfg.sampling.history_length,
        seed=eval_seed(cfg),
        admissible_only=cfg.sampling.admissible_only,
    )
    print(
        f"warm-started model: {out} · eval success on {cfg.env.eval_split} at temperature "
        f"{cfg.eval.temperature}: {format_summary(summary)}"
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:

    from tqdm import tqdm

    from skillvet.envs import make_source
    from skillvet.evaluate import evaluate, format_summary
    from skillvet.policy.sampler import make_sampler
    from skillvet.runs import load_model
    from skillvet.train import eval_seed

    cfg, policy, run_dir = load_model(args.model)
    held = args.admissible_only or cfg.sampling.admissible_only
    sampling = replace(cfg.sampling, admissible_only=held)
    sampler = make_sampler(policy, replace(sampling, engine=args.engine or sampling.engine))
    skills = None
    if (
        run_dir is not None
        and cfg.skills.enabled
        and (run_dir / "skills.sqlite").is_file()
        and not args.no_skills
    ):
        from skillvet.skills.sapo import SkillVetting

        skills = SkillVetting(cfg, run_dir).skills_fn(policy)  # the run's bank, as in its own evals
    env_cfg = env_config(args, cfg.env if run_dir is not None else None)  # a run: its own env
    source = make_source(env_cfg)
    split = args.split or eval_split(source, env_cfg.eval_split)
    tasks = source.tasks(split)[: args.limit]
    with tqdm(
        total=len(tasks),
        desc=f"eval {source.name}/{split}",
        disable=True if args.json or args.quiet else None,
    ) as bar:
        summary, episodes = evaluate(
            sampler,
            source,
            tasks,
            max_new_tokens=args.max_action_tokens or sampling.max_action_tokens,
            temperature=cfg.eval.temperature if args.temperature is None else args.temperature,
            history_length=sampling.history_length,
            seed=eval_seed(cfg) if args.seed is None else args.seed,
            batch_size=args.batch_size,
            on_episodes=bar.update,
            skills=skills,
            skills_section=skills is not None,
            admissible_only=sampling.admissible_only,
        )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w") as f:
            for e in episodes:
                f.write(json.dumps(e.as_dict()) + "\n")
    summary = {"model": args.model, "env": source.name, "split": split, **summary}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{args.model} on {source.name}/{split}: success {format_summary(summary)}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from skillvet.report import write_report

    path = write_report(args.run_dir, args.out, trajectories=args.trajectories)
    print(f"report: {path}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from skillvet.report import compare, format_table

    rows, figure = compare(args.run_dirs, args.out, args.ignore)
    print(format_table(rows))
    if figure is not None:
        print(f"\nfigure: {figure} · page: {figure.with_name('compare.html')}")
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    from skillvet.runs import load_model
    from skillvet.serve import make_server

    _, policy, _ = load_model(args.model)
    key = os.environ.get(args.api_key_env) if args.api_key_env else None
    if args.api_key_env and not key:
        raise SystemExit(f"skillvet: --api-key-env {args.api_key_env} names an unset variable")
    server = make_server(
        policy, args.name or args.model, args.host, args.port, api_key=key, timeout=args.timeout
    )
    print(
        f"serving {args.model} at http://{args.host}:{server.server_address[1]}/v1 (chat "
        "completions); Ctrl-C stops",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skillvet",
        description="Train LLM agents with GiGPO and vetted skills in multi-turn text "
        "environments.",
    )
    parser.add_argument("--version", action="version", version=f"skillvet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    config = sub.add_parser("config", help="inspect configurations")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = config_sub.add_parser("show", help="print the resolved config of a recipe")
    show.add_argument("recipe", nargs="?", help="YAML recipe (defaults if omitted)")
    show.add_argument("overrides", nargs="*", help="dotted overrides, e.g. algo.step_weight=0.5")
    show.add_argument("--plain", action="store_true", help="no comments")
    show.set_defaults(func=cmd_config_show)

    env = sub.add_parser("env", help="list, play and check environments")
    env_sub = env.add_subparsers(dest="env_command", required=True, metavar="ACTION")

    def env_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("env", help="environment name (see `skillvet env list`)")
        p.add_argument("--data", help="game folder for file-based environments (ALFWorld)")
        p.add_argument("--split", help="split (default: the first one)")
        p.add_argument("--max-steps", type=POSITIVE, help="episode step limit")
        p.add_argument(
            "--set",
            action="append",
            metavar="KEY=VALUE",
            help="env config override, e.g. household.distractors=12",
        )

    listing = env_sub.add_parser("list", help="environments, their splits and task counts")
    listing.add_argument("--data", help="game folder for file-based environments (ALFWorld)")
    listing.set_defaults(func=cmd_env_list)
    play = env_sub.add_parser("play", help="play a task in the terminal")
    env_options(play)
    play.add_argument("--task", help="task id, or its index in the split")
    play.set_defaults(func=cmd_env_play)
    check = env_sub.add_parser("check", help="replay the expert and report success and speed")
    env_options(check)
    check.add_argument("--limit", type=POSITIVE, help="play only the first N tasks of the split")
    check.add_argument("--expert", action="store_true", help="play the environment's expert")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    check.set_defaults(func=cmd_env_check)

    train = sub.add_parser("train", help="train an agent: warm start, then RL (GiGPO, GRPO, RLOO)")
    train.add_argument(
        "recipe", nargs="?", help="YAML recipe (default: the built-in household-tiny run)"
    )
    train.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.iterations=5")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its checkpoint")
    train.add_argument("--quiet", action="store_true", help="log lines instead of progress bars")
    train.set_defaults(func=cmd_train)

    sft = sub.add_parser("sft", help="supervised warm start on expert demonstrations")
    sft.add_argument("--env", default="household", help="environment name")
    sft.add_argument("--model", default="tiny", help="tiny, smollm2-135m-instruct, or an HF folder")
    sft.add_argument("--data", help="game folder for file-based environments (ALFWorld)")
    sft.add_argument("--steps", type=POSITIVE, help="SFT optimizer steps (sft.steps)")
    sft.add_argument("--recipe", help="YAML recipe to start from")
    sft.add_argument("--out", required=True, help="output folder; the model goes to OUT/model-sft")
    sft.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="config override, e.g. sft.lr=3e-3"
    )
    sft.add_argument("--quiet", action="store_true", help="no progress bars")
    sft.set_defaults(func=cmd_sft)

    ev = sub.add_parser("eval", help="success rate of a model or a run, overall and per task type")
    ev.add_argument(
        "--model", required=True, help="run directory, HF folder, smollm2-135m-instruct, or hub id"
    )
    ev.add_argument("--env", required=True, help="environment name")
    ev.add_argument("--data", help="game folder for file-based environments (ALFWorld)")
    ev.add_argument("--split", help="split (default: env.eval_split, else the first)")
    ev.add_argument("--limit", type=POSITIVE, help="play only the first N tasks")
    ev.add_argument("--max-steps", type=POSITIVE, help="episode step limit")
    ev.add_argument("--max-action-tokens", type=POSITIVE, help="token limit of one answer")
    ev.add_argument(
        "--temperature",
        type=TEMPERATURE,
        help="sampling temperature, 0 for greedy (default: the run's eval.temperature, else 0.4)",
    )
    ev.add_argument(
        "--seed", type=NON_NEGATIVE, help="sampling seed (default: the one the run's own evals use)"
    )
    ev.add_argument("--batch-size", type=POSITIVE, default=64, help="environments played at once")
    ev.add_argument("--engine", choices=["hf", "vllm"], help="rollout engine (default: the run's)")
    ev.add_argument("--out", help="write the episodes to this JSONL file")
    ev.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="env config override (household.distractors=12)")
    ev.add_argument("--no-skills", action="store_true", help="a SAPO run without its skill bank")
    ev.add_argument("--admissible-only", action="store_true",
                    help="answers sampled among the admissible actions (sampling.admissible_only)")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.set_defaults(func=cmd_eval)

    report = sub.add_parser("report", help="figures and a self-contained report.html for a run")
    report.add_argument("run_dir", help="run directory")
    report.add_argument("--out", help="output folder (default RUN_DIR/report)")
    report.add_argument(
        "--trajectories", type=NON_NEGATIVE, default=3, help="sample trajectories to render"
    )
    report.set_defaults(func=cmd_report)

    cmp_ = sub.add_parser(
        "compare", help="runs grouped by recipe: curves over seeds and a summary table"
    )
    cmp_.add_argument("run_dirs", nargs="+", help="run directories")
    cmp_.add_argument("--out", help="folder for compare.png, compare.md and compare.html")
    cmp_.add_argument("--json", action="store_true", help="also print the rows as JSON")
    ignore = "a dotted config key that may differ within a recipe, e.g. model.name (repeatable)"
    cmp_.add_argument("--ignore", action="append", default=[], metavar="KEY", help=ignore)
    cmp_.set_defaults(func=cmd_compare)

    add_skills_commands(sub)

    serve = sub.add_parser("serve", help="a model behind an OpenAI-compatible chat-completions API")
    serve.add_argument("--model", required=True, help="run directory, HF folder, or model name")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=PORT, default=8000)
    serve.add_argument("--name", help="model name the API reports (default: --model)")
    serve.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="require 'Authorization: Bearer <key>', the key read from this environment variable",
    )
    serve.add_argument(
        "--timeout",
        type=number(float, 0.0, low_open=True),
        default=30.0,
        help="seconds a client may take to send each part of its request",
    )
    serve.set_defaults(func=cmd_serve)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """What a wrong command, file or setting raises: a one-line message, not a traceback."""
    import sqlite3

    import yaml

    from skillvet.jsonl import DamagedRecord
    from skillvet.rundir import DamagedRun, RunInUse

    return (
        DamagedRun,
        RunInUse,
        DamagedRecord,
        OSError,
        ValueError,
        KeyError,
        yaml.YAMLError,
        sqlite3.DatabaseError,
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"skillvet: config error: {err}", file=sys.stderr)
        return 2
    except _user_errors() as err:
        if args.debug:
            raise
        text = str(err) or type(err).__name__
        if isinstance(err, KeyError):
            text = f"not found: {err.args[0] if err.args else err}"
        elif isinstance(err, OSError) and err.filename and err.strerror:
            text = f"{err.strerror}: {err.filename}"
        print(f"skillvet: {text} (--debug shows the traceback)", file=sys.stderr)
        return 2
