"""The `skillvet` command line. Each subcommand is a small function that wires objects together;
the work happens in the library modules."""

from __future__ import annotations

import argparse
import json
import sys

from skillvet import __version__
from skillvet.config import ConfigError, EnvConfig, apply_override, from_dict, load_config, to_yaml


def cmd_config_show(args: argparse.Namespace) -> int:
    cfg = load_config(args.recipe, args.overrides)
    sys.stdout.write(to_yaml(cfg, comments=not args.plain))
    return 0


def env_config(args: argparse.Namespace) -> EnvConfig:
    """EnvConfig from `skillvet env` options: the name, --data, --max-steps and --set overrides."""
    data: dict = {"name": args.env}
    if getattr(args, "data", None):
        data["data"] = args.data
    if getattr(args, "max_steps", None):
        data["max_steps"] = args.max_steps
    for item in getattr(args, "set", None) or []:
        apply_override(data, item)
    return from_dict(EnvConfig, data, "env.")


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
            f"{source.name} {split}: expert won {report.wins}/{report.episodes} ({report.success_rate:.1%})"
        )
        print(
            f"mean steps {d['mean_steps']:.2f} · {report.steps_per_second:,.0f} steps/s · errors {report.errors}"
        )
        for task_type, row in d["by_type"].items():
            print(f"  {task_type:<24} {row['success_rate']:.1%} of {row['episodes']}")
        if report.failures:
            print("not won: " + ", ".join(report.failures[:20]))
    return 0 if report.wins == report.episodes else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skillvet",
        description="Train LLM agents with GiGPO and vetted skills in multi-turn text environments.",
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
        p.add_argument("--max-steps", type=int, help="episode step limit")
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
    check.add_argument("--limit", type=int, help="play only the first N tasks of the split")
    check.add_argument("--expert", action="store_true", help="play the environment's expert")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    check.set_defaults(func=cmd_env_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"skillvet: config error: {err}", file=sys.stderr)
        return 2
