"""household: a procedural, pure-Python world in ALFWorld's image.

Rooms of numbered receptacles (cabinet 1, fridge 1, ...) hold numbered objects (mug 2, ...);
some receptacles open and close. The actions, the wording of observations, the admissible
action lists and the six task types follow ALFWorld's text games, so prompts, skills and models
carry over between the two. Worlds are made from (task type, seed); train and eval splits use
disjoint seed ranges and may hold out whole task types.

Simplifications against ALFWorld: heat, cool and clean work on any held object at the right
appliance (as ALFWorld lets you type them), objects cannot be sliced, and there is one room.
One extension: `heat_appliances` may name more receptacle types than the microwave (say the
stove burner), so that heating has more than one correct procedure, and `working_heater` may
let only one of them work (per task, or in every task), so that which one does is something to
know.

The modules, in the order they build on each other:

    settings.py    HouseholdConfig (env.household) and the expert names
    catalogue.py   room kinds, their receptacles and objects, task goals
    world.py       World (the state), Goal, and `generate` from (task type, seed)
    rules.py       admissible actions, what an action does, observations, winning, the anchor
    expert.py      the oracle and search experts' plans
    env.py         HouseholdEnv (one episode) and HouseholdSource (splits, envs, experts)
"""

from skillvet.envs.household.catalogue import (
    APPLIANCE,
    BATHROOM,
    BEDROOM,
    GOALS,
    KITCHEN,
    LAMP_STANDS,
    LIVINGROOM,
    OPENABLE,
    ROOMS,
    RoomKind,
)
from skillvet.envs.household.env import HouseholdEnv, HouseholdSource
from skillvet.envs.household.expert import expert_plan
from skillvet.envs.household.rules import (
    admissible_actions,
    apply_action,
    describe_receptacle,
    is_won,
    room_view,
    state_key,
)
from skillvet.envs.household.settings import HouseholdConfig, HouseholdExpert
from skillvet.envs.household.world import Goal, World, generate

__all__ = [
    "APPLIANCE",
    "BATHROOM",
    "BEDROOM",
    "GOALS",
    "KITCHEN",
    "LAMP_STANDS",
    "LIVINGROOM",
    "OPENABLE",
    "ROOMS",
    "Goal",
    "HouseholdConfig",
    "HouseholdEnv",
    "HouseholdExpert",
    "HouseholdSource",
    "RoomKind",
    "World",
    "admissible_actions",
    "apply_action",
    "describe_receptacle",
    "expert_plan",
    "generate",
    "is_won",
    "room_view",
    "state_key",
]
