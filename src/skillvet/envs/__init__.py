"""Environments behind one protocol (`protocol.py`), and `make_source` to build one by name."""

from __future__ import annotations

import functools

from skillvet.config import EnvConfig
from skillvet.envs.protocol import (
    Env,
    EnvCrashed,
    TaskSource,
    make_group,
    match_admissible,
    normalize_action,
)

__all__ = [
    "ENVIRONMENTS",
    "Env",
    "EnvCrashed",
    "TaskSource",
    "make_group",
    "make_source",
    "match_admissible",
    "normalize_action",
]

ENVIRONMENTS = {
    "household": "built in: procedural rooms in ALFWorld's world and language",
    "alfworld": "ALFWorld's text games (extra: alfworld; data: env.data or ALFWORLD_DATA)",
    "scienceworld": "ScienceWorld's tasks (extra: scienceworld)",
    "textworld": "TextWorld games made offline with tw-make (extra: textworld)",
    "sokoban": "Sokoban rooms as text grids (extra: sokoban)",
}


def make_source(cfg: EnvConfig) -> TaskSource:
    """The task source named by `cfg.name`."""
    if cfg.name == "household":
        from skillvet.envs.household import HouseholdSource

        return HouseholdSource(cfg.household, max_steps=cfg.max_steps)
    if cfg.name == "alfworld":
        from skillvet.envs.alfworld import AlfworldSource

        return AlfworldSource(cfg.data, max_steps=cfg.max_steps)
    if cfg.name == "textworld":
        from skillvet.envs.textworld import TextworldSource

        return TextworldSource(cfg.textworld, max_steps=cfg.max_steps)
    if cfg.name == "sokoban":
        from skillvet.envs.sokoban import SokobanSource

        return SokobanSource(cfg.sokoban, max_steps=cfg.max_steps)
    if cfg.name == "scienceworld":
        from skillvet.envs.process import ProcessSource
        from skillvet.envs.scienceworld import ScienceworldSource

        factory = functools.partial(ScienceworldSource, cfg.scienceworld, cfg.max_steps)
        return ProcessSource(factory, workers=cfg.scienceworld.workers)
    raise ValueError(f"unknown environment {cfg.name!r}")
