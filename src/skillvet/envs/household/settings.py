"""Settings of the household world (`env.household`): room size, tasks per split, the expert."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from skillvet.configerror import require
from skillvet.types import TASK_TYPES

HouseholdExpert = Literal["oracle", "search"]
WorkingHeater = Literal["any", "drawn", "microwave", "stoveburner"]


@dataclass
class HouseholdConfig:
    num_receptacles: int = 8
    """Receptacles in a room (at least the room's staples, which number 5 to 7)."""
    closed_share: float = 0.3
    """Probability that an openable receptacle (cabinet, drawer, fridge, microwave, safe) starts
    closed."""
    distractors: int = 3
    """Objects in the room besides the ones the task needs."""
    train_tasks: int = 6000
    """Tasks in the train split (seeds 0 .. train_tasks-1), spread evenly over its task types."""
    eval_tasks: int = 600
    """Tasks in the eval split (seeds from 1,000,000 on), spread evenly over its task types."""
    train_types: list[str] = field(default_factory=lambda: list(TASK_TYPES))
    """Task types of the train split; leave some out to test transfer to unseen types."""
    eval_types: list[str] = field(default_factory=lambda: list(TASK_TYPES))
    """Task types of the eval split."""
    heat_appliances: list[str] = field(default_factory=lambda: ["microwave"])
    """Kitchen receptacle types at which an object can be heated (ALFWorld: the microwave only).
    With more than one, such as [microwave, stoveburner], heating has more than one correct
    procedure, and the expert of each heat task uses one drawn from its seed."""
    working_heater: WorkingHeater = "any"
    """Which of `heat_appliances` heats: "any" (each of them), "drawn" (in each task's world only
    the one drawn from the task's seed, the one its expert uses: which appliance works differs
    from task to task), or "microwave" / "stoveburner" (only that one, in every task: knowledge
    the tasks share). Heating where it does not work is admissible and answers "Nothing
    happens."; the object stays as it was."""
    expert: HouseholdExpert = "search"
    """Expert for checks and warm starts: "oracle" reads hidden state and goes straight to the
    object; "search" sees only what an agent sees and searches receptacles in alphabetical
    order."""

    def __post_init__(self) -> None:
        require(self.num_receptacles >= 7, "env.household.num_receptacles", "must be >= 7")
        require(0.0 <= self.closed_share <= 1.0, "env.household.closed_share", "must be in [0, 1]")
        require(self.distractors >= 0, "env.household.distractors", "must be >= 0")
        require(
            self.train_tasks >= 0 and self.eval_tasks >= 0,
            "env.household",
            "task counts must be >= 0",
        )
        require(
            bool(self.heat_appliances)
            and set(self.heat_appliances) <= {"microwave", "stoveburner"}
            and len(set(self.heat_appliances)) == len(self.heat_appliances),
            "env.household.heat_appliances",
            "must name microwave, stoveburner or both, once each",
        )
        require(
            self.working_heater in ("any", "drawn") or self.working_heater in self.heat_appliances,
            "env.household.working_heater",
            f"{self.working_heater} must be one of heat_appliances {self.heat_appliances}",
        )
        require(
            self.working_heater != "drawn" or len(self.heat_appliances) > 1,
            "env.household.working_heater",
            "drawn needs two heat_appliances to draw from",
        )
        for key in ("train_types", "eval_types"):
            types = getattr(self, key)
            unknown = sorted(set(types) - set(TASK_TYPES))
            require(
                not unknown,
                f"env.household.{key}",
                f"unknown task types {unknown}; known: {list(TASK_TYPES)}",
            )
            require(bool(types), f"env.household.{key}", "must name at least one task type")
