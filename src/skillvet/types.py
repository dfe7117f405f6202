"""Plain data passed between the environments, the rollout and the learner."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

SUCCESS_REWARD = 10.0
"""Environment reward on the step that completes the task; every other step gives 0."""

TASK_TYPES = (
    "pick_and_place",
    "look_at_obj_in_light",
    "pick_clean_then_place",
    "pick_heat_then_place",
    "pick_cool_then_place",
    "pick_two_obj_and_place",
)
"""ALFWorld's six task types, by the names skillvet uses for both ALFWorld and household."""


@dataclass(frozen=True)
class Task:
    """One playable task: which environment, which split, and what identifies it there."""

    env: str
    split: str
    id: str
    """Unique within the environment: a seed for procedural worlds, a game path for ALFWorld."""
    task_type: str


@dataclass(frozen=True)
class StepResult:
    """What an environment returns from `reset()` and `step(action)`."""

    observation: str
    """The text the agent sees after the action (the first observation after reset)."""
    reward: float
    done: bool
    task: str
    """The goal in words, e.g. "put a clean mug in coffeemachine."."""
    task_type: str
    anchor: Hashable
    """Key of the raw environment state, without history, prompt or skills (GiGPO step groups)."""
    admissible: tuple[str, ...] | None = None
    """Valid actions in this state, when the environment can list them."""
    won: bool = False
    action_valid: bool = True
    """False when the action could not be parsed or was not admissible; the state is unchanged."""
    error: str | None = None
    """Set when the environment died during this step; the episode ends here."""
