"""Settings removed from the library: a config that still names one at its off value loads as
before; one that sets it to anything else fails with a message that says so."""

from __future__ import annotations

from typing import Any

from skillvet.configerror import ConfigError

RETIRED: dict[str, Any] = {
    "sft.skill_types": [],
    "sft.skill_types_plain": 0.0,
    "sft.decoy_share": 0.0,
    "sft.own_procedure": False,
    "sft.other_types": [],
    "sft.decoy_types": [],
    "sft.decoy_procedures": 8,
    "sft.decoy_named": False,
    "sft.decoy_chores": 0,
    "sft.decoy_chores_mixed": False,
    "sft.decoy_chores_furniture": False,
    "sft.decoy_consistency": 0.0,
    "sft.save_every": 0,
}
"""Experiment settings removed from the library (the last commit with them: a9425ba), with the
value that left them off. A run directory written before keeps them in its config.yaml."""


def drop_retired(data: dict[str, Any]) -> None:
    """Remove retired keys that hold their off value; a retired key set to anything else is an
    error that says so (that run needs the older skillvet)."""
    for dotted, off in RETIRED.items():
        section, _, key = dotted.partition(".")
        node = data.get(section)
        if not isinstance(node, dict) or key not in node:
            continue
        if node[key] != off:
            raise ConfigError(
                f"{dotted}: this setting was removed (last in commit a9425ba); this config sets "
                f"it to {node[key]!r}"
            )
        del node[key]
    env = data.get("env")
    household = env.get("household") if isinstance(env, dict) else None
    if isinstance(household, dict) and household.get("expert") == "explore":
        raise ConfigError("env.household.expert: explore was removed (last in commit a9425ba)")
