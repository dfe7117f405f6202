"""What the command-line modules share: ranged number types for argparse options, the
EnvConfig that `skillvet env`-style options describe, and the split an eval plays."""

from __future__ import annotations

import argparse
import dataclasses

from skillvet.config import EnvConfig, apply_override, from_dict


def number(kind, low=None, high=None, low_open=False):
    """An argparse type: `kind` within [low, high] (low excluded with low_open)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            what = "n integer" if kind is int else " number"
            raise argparse.ArgumentTypeError(f"{text!r} is not a{what}") from None
        if low is not None and (value <= low if low_open else value < low):
            raise argparse.ArgumentTypeError(f"{value} must be {'>' if low_open else '>='} {low}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{value} must be <= {high}")
        return value
    return parse


POSITIVE = number(int, 1)
NON_NEGATIVE = number(int, 0)
TEMPERATURE = number(float, 0.0)
PORT = number(int, 0, 65535)
LEVEL = number(float, 0.0, 1.0, low_open=True)


def env_config(args: argparse.Namespace, start: EnvConfig | None = None) -> EnvConfig:
    """EnvConfig from `skillvet env` options: the name, --data, --max-steps and --set overrides.
    With `start` (a run's own env settings) of the same environment, the options change those."""
    same = start is not None and start.name == args.env
    data: dict = dataclasses.asdict(start) if same else {"name": args.env}
    if getattr(args, "data", None):
        data["data"] = args.data
    if getattr(args, "max_steps", None):
        data["max_steps"] = args.max_steps
    for item in getattr(args, "set", None) or []:
        apply_override(data, item)
    return from_dict(EnvConfig, data, "env.")


def eval_split(source, preferred: str) -> str:
    """`preferred` if the source has that split, else its first split."""
    return preferred if preferred in source.splits() else next(iter(source.splits()))
