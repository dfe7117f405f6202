"""Environments behind one protocol (`protocol.py`), and `make_source` to build one by name."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from skillvet.envs.protocol import (
    Env,
    EnvCrashed,
    TaskSource,
    make_group,
    match_admissible,
    normalize_action,
)

if TYPE_CHECKING:  # not at run time: skillvet.config imports the envs' settings classes
    from skillvet.config import EnvConfig

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
    """The task source named by `cfg.name`, its environments where `cfg.backend` puts them."""
    if cfg.backend == "ray":
        from skillvet.envs.process import ProcessSource, cores
        from skillvet.envs.ray_workers import RayWorker, connect

        connect(cfg.ray_address)
        workers = cfg.workers or cores()
        return ProcessSource(functools.partial(local_source, cfg), workers, spawn=RayWorker)
    if cfg.name == "alfworld":
        from skillvet.envs.process import ProcessSource, cores

        workers = cores() if cfg.workers is None else cfg.workers
        if workers == 0:
            return local_source(cfg)
        return ProcessSource(functools.partial(local_source, cfg), workers=workers)
    if cfg.name == "scienceworld":
        from skillvet.envs.process import ProcessSource

        factory = functools.partial(local_source, cfg)
        return ProcessSource(factory, workers=cfg.scienceworld.workers)
    return local_source(cfg)


def local_source(cfg: EnvConfig) -> TaskSource:
    """The task source named by `cfg.name`, playing in this process."""
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
        from skillvet.envs.scienceworld import ScienceworldSource

        return ScienceworldSource(cfg.scienceworld, cfg.max_steps)
    if ":" in cfg.name:
        return _plugin(cfg)
    raise ValueError(f"unknown environment {cfg.name!r}")


def _plugin(cfg: EnvConfig) -> TaskSource:
    """A user's environment: `package.module:factory`, called with the EnvConfig (its own
    settings in cfg.options), returning a task source that speaks the protocol. The module is
    imported from the installed packages or the current folder (as uvicorn finds an app)."""
    import importlib
    import os
    import sys

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name, _, attr = cfg.name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"env.name {cfg.name!r}: cannot import {module_name} ({err})") from err
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ValueError(f"env.name {cfg.name!r}: {module_name} has no function {attr}")
    source = factory(cfg)
    missing = [
        m for m in ("splits", "tasks", "make", "expert") if not callable(getattr(source, m, None))
    ]
    if missing or not isinstance(getattr(source, "name", None), str):
        raise ValueError(
            f"env.name {cfg.name!r}: {attr} returned {type(source).__name__}, which lacks "
            f"{', '.join(missing) or 'a name'} of the task-source protocol (skillvet.envs.protocol)"
        )
    return source
