"""The `skillvet` command line. Each subcommand is a small function that wires objects together;
the work happens in the library modules."""

from __future__ import annotations

import argparse
import sys

from skillvet import __version__
from skillvet.config import ConfigError, load_config, to_yaml


def cmd_config_show(args: argparse.Namespace) -> int:
    cfg = load_config(args.recipe, args.overrides)
    sys.stdout.write(to_yaml(cfg, comments=not args.plain))
    return 0


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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"skillvet: config error: {err}", file=sys.stderr)
        return 2
