"""household: a procedural, pure-Python world in ALFWorld's image.

Rooms of numbered receptacles (cabinet 1, fridge 1, ...) hold numbered objects (mug 2, ...);
some receptacles open and close. The actions, the wording of observations, the admissible
action lists and the six task types follow ALFWorld's text games, so prompts, skills and models
carry over between the two. Worlds are made from (task type, seed); train and eval splits use
disjoint seed ranges and may hold out whole task types.

Simplifications against ALFWorld: heat, cool and clean work on any held object at the right
appliance (as ALFWorld lets you type them), objects cannot be sliced, and there is one room.
One extension: `heat_appliances` may name more receptacle types than the microwave (say the
stove burner), so that heating has more than one correct procedure.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import get_args

from skillvet.config import HouseholdConfig, HouseholdExpert
from skillvet.envs.protocol import NOTHING_HAPPENS, check_split, normalize_action, seeded_tasks
from skillvet.types import SUCCESS_REWARD, StepResult, Task

# --------------------------------------------------------------------------------------------
# The catalogue: rooms, receptacles, objects
# --------------------------------------------------------------------------------------------

OPENABLE = frozenset({"cabinet", "drawer", "fridge", "microwave", "safe"})
LAMP_STANDS = ("desk", "sidetable", "dresser")


@dataclass(frozen=True)
class RoomKind:
    name: str
    staples: tuple[str, ...]
    """Receptacle types every room of this kind has (one each)."""
    extras: tuple[str, ...]
    """Receptacle types drawn (with repeats) to reach the room's size."""
    objects: dict[str, tuple[str, ...]]
    """Object type -> receptacle types it is found in and may be put in."""


KITCHEN = RoomKind(
    "kitchen",
    staples=(
        "countertop",
        "fridge",
        "microwave",
        "sinkbasin",
        "stoveburner",
        "garbagecan",
        "cabinet",
    ),
    extras=(
        "cabinet",
        "cabinet",
        "drawer",
        "drawer",
        "countertop",
        "stoveburner",
        "shelf",
        "diningtable",
        "coffeemachine",
        "toaster",
    ),
    objects={
        "apple": ("countertop", "diningtable", "fridge", "garbagecan", "sinkbasin", "microwave"),
        "bread": ("countertop", "diningtable", "fridge", "cabinet"),
        "potato": ("countertop", "diningtable", "fridge", "sinkbasin", "garbagecan", "microwave"),
        "tomato": ("countertop", "diningtable", "fridge", "sinkbasin", "garbagecan"),
        "egg": ("countertop", "diningtable", "fridge", "sinkbasin", "garbagecan", "microwave"),
        "lettuce": ("countertop", "diningtable", "fridge", "sinkbasin"),
        "mug": (
            "countertop",
            "diningtable",
            "cabinet",
            "coffeemachine",
            "sinkbasin",
            "microwave",
            "shelf",
        ),
        "cup": (
            "countertop",
            "diningtable",
            "cabinet",
            "fridge",
            "sinkbasin",
            "microwave",
            "shelf",
        ),
        "bowl": ("countertop", "diningtable", "cabinet", "fridge", "sinkbasin", "shelf"),
        "plate": ("countertop", "diningtable", "cabinet", "fridge", "sinkbasin", "shelf"),
        "pan": ("stoveburner", "countertop", "cabinet", "diningtable", "sinkbasin", "fridge"),
        "pot": ("stoveburner", "countertop", "cabinet", "diningtable", "sinkbasin", "fridge"),
        "knife": ("countertop", "diningtable", "drawer", "sinkbasin"),
        "butterknife": ("countertop", "diningtable", "drawer", "sinkbasin"),
        "fork": ("countertop", "diningtable", "drawer", "sinkbasin"),
        "spoon": ("countertop", "diningtable", "drawer", "sinkbasin"),
        "spatula": ("countertop", "diningtable", "drawer", "sinkbasin"),
        "ladle": ("countertop", "diningtable", "drawer", "sinkbasin"),
        "kettle": ("stoveburner", "countertop", "cabinet", "shelf"),
        "peppershaker": ("countertop", "diningtable", "cabinet", "drawer", "shelf"),
        "saltshaker": ("countertop", "diningtable", "cabinet", "drawer", "shelf"),
        "dishsponge": ("countertop", "cabinet", "drawer", "sinkbasin", "shelf"),
        "winebottle": ("countertop", "diningtable", "fridge", "cabinet", "shelf"),
    },
)

BATHROOM = RoomKind(
    "bathroom",
    staples=(
        "countertop",
        "sinkbasin",
        "bathtubbasin",
        "toilet",
        "towelholder",
        "garbagecan",
        "cabinet",
    ),
    extras=(
        "cabinet",
        "cabinet",
        "drawer",
        "drawer",
        "shelf",
        "sinkbasin",
        "handtowelholder",
        "toiletpaperhanger",
    ),
    objects={
        "soapbar": ("countertop", "cabinet", "toilet", "bathtubbasin", "sinkbasin", "shelf"),
        "cloth": ("countertop", "cabinet", "bathtubbasin", "sinkbasin", "drawer", "shelf"),
        "towel": ("towelholder", "countertop", "bathtubbasin", "shelf"),
        "handtowel": ("handtowelholder", "countertop", "shelf", "cabinet"),
        "toiletpaper": (
            "toiletpaperhanger",
            "countertop",
            "toilet",
            "cabinet",
            "drawer",
            "garbagecan",
        ),
        "candle": ("countertop", "toilet", "cabinet", "shelf", "bathtubbasin"),
        "spraybottle": ("countertop", "toilet", "cabinet", "garbagecan", "shelf"),
        "soapbottle": ("countertop", "toilet", "cabinet", "shelf", "garbagecan"),
        "dishsponge": ("countertop", "cabinet", "drawer", "shelf", "sinkbasin"),
        "scrubbrush": ("toilet", "cabinet", "garbagecan", "shelf"),
    },
)

BEDROOM = RoomKind(
    "bedroom",
    staples=("bed", "desk", "drawer", "garbagecan", "sidetable"),
    extras=(
        "drawer",
        "drawer",
        "drawer",
        "shelf",
        "shelf",
        "dresser",
        "sidetable",
        "safe",
        "armchair",
        "bed",
        "laundryhamper",
    ),
    objects={
        "alarmclock": ("desk", "sidetable", "dresser", "shelf"),
        "book": ("bed", "desk", "sidetable", "shelf", "dresser", "drawer"),
        "cellphone": ("bed", "desk", "sidetable", "drawer", "dresser", "armchair"),
        "cd": ("desk", "drawer", "shelf", "safe", "garbagecan", "sidetable"),
        "creditcard": ("desk", "drawer", "shelf", "dresser", "sidetable"),
        "keychain": ("desk", "drawer", "shelf", "dresser", "safe", "sidetable"),
        "pen": ("desk", "drawer", "shelf", "sidetable", "dresser", "garbagecan"),
        "pencil": ("desk", "drawer", "shelf", "sidetable", "dresser", "garbagecan"),
        "laptop": ("bed", "desk", "dresser"),
        "pillow": ("bed", "armchair"),
        "mug": ("desk", "shelf", "sidetable"),
        "bowl": ("desk", "shelf", "sidetable"),
        "vase": ("shelf", "desk", "dresser", "sidetable"),
        "statue": ("shelf", "desk", "dresser", "sidetable"),
        "cloth": ("laundryhamper", "drawer", "dresser", "bed"),
    },
)

LIVINGROOM = RoomKind(
    "livingroom",
    staples=("sofa", "coffeetable", "sidetable", "garbagecan", "shelf"),
    extras=(
        "armchair",
        "sidetable",
        "shelf",
        "shelf",
        "drawer",
        "drawer",
        "cabinet",
        "dresser",
        "tvstand",
        "diningtable",
        "ottoman",
    ),
    objects={
        "remotecontrol": (
            "sofa",
            "armchair",
            "coffeetable",
            "sidetable",
            "tvstand",
            "dresser",
            "drawer",
        ),
        "keychain": ("sofa", "coffeetable", "sidetable", "drawer", "dresser", "shelf"),
        "creditcard": ("sofa", "coffeetable", "sidetable", "drawer", "dresser", "diningtable"),
        "newspaper": ("sofa", "armchair", "coffeetable", "sidetable", "diningtable", "ottoman"),
        "pillow": ("sofa", "armchair", "ottoman"),
        "laptop": ("sofa", "coffeetable", "diningtable", "ottoman"),
        "box": ("coffeetable", "sidetable", "shelf", "dresser", "diningtable", "tvstand"),
        "statue": ("shelf", "coffeetable", "sidetable", "dresser", "tvstand"),
        "vase": ("shelf", "coffeetable", "sidetable", "dresser", "diningtable"),
        "watch": ("coffeetable", "sidetable", "shelf", "drawer", "dresser"),
        "wateringcan": ("shelf", "sidetable", "garbagecan"),
        "plate": ("coffeetable", "diningtable", "shelf", "cabinet"),
    },
)

ROOMS = (KITCHEN, BATHROOM, BEDROOM, LIVINGROOM)

APPLIANCE = {
    "pick_clean_then_place": ("sinkbasin", "clean", "clean"),
    "pick_heat_then_place": ("microwave", "heat", "hot"),
    "pick_cool_then_place": ("fridge", "cool", "cool"),
}
"""Task type -> (appliance receptacle, verb, the property it gives)."""

GOALS = {
    "pick_and_place": ("put a {o} in {r}.", "put some {o} on {r}."),
    "look_at_obj_in_light": (
        "look at {o} under the desklamp.",
        "examine the {o} with the desklamp.",
    ),
    "pick_clean_then_place": ("put a clean {o} in {r}.", "clean some {o} and put it in {r}."),
    "pick_heat_then_place": ("put a hot {o} in {r}.", "heat some {o} and put it in {r}."),
    "pick_cool_then_place": ("put a cool {o} in {r}.", "cool some {o} and put it in {r}."),
    "pick_two_obj_and_place": ("put two {o} in {r}.", "find two {o} and put them in {r}."),
}


def _appliance_types(task_type: str, heaters: tuple[str, ...]) -> tuple[str, ...]:
    """Receptacle types at which a task of this type treats its object (none for untreated types)."""
    if task_type == "pick_heat_then_place":
        return heaters
    return (APPLIANCE[task_type][0],) if task_type in APPLIANCE else ()


def _rooms_for(task_type: str) -> tuple[RoomKind, ...]:
    if task_type in ("pick_heat_then_place", "pick_cool_then_place"):
        return (KITCHEN,)
    if task_type == "pick_clean_then_place":
        return (KITCHEN, BATHROOM)
    if task_type == "look_at_obj_in_light":
        return (BEDROOM, LIVINGROOM)
    return ROOMS


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# A world and its generation
# --------------------------------------------------------------------------------------------


@dataclass
class World:
    """The complete state of one room. Objects and receptacles are referred to by name."""

    receptacles: list[str]
    rtype: dict[str, str]
    is_open: dict[str, bool]
    """Openable receptacles only."""
    contents: dict[str, list[str]]
    location: dict[str, str]
    """Object -> the receptacle it is in; a held object has no entry."""
    otype: dict[str, str]
    lamp_at: str | None
    heaters: tuple[str, ...] = ("microwave",)
    """Receptacle types at which a held object can be heated."""
    at: str | None = None
    holding: str | None = None
    props: dict[str, set[str]] = field(default_factory=dict)
    """Object -> the properties it has gained: "clean", "hot", "cool"."""
    lamp_on: bool = False

    def copy(self) -> World:
        return World(
            receptacles=self.receptacles,
            rtype=self.rtype,
            is_open=dict(self.is_open),
            contents={r: list(objs) for r, objs in self.contents.items()},
            location=dict(self.location),
            otype=self.otype,
            lamp_at=self.lamp_at,
            heaters=self.heaters,
            at=self.at,
            holding=self.holding,
            props={o: set(p) for o, p in self.props.items()},
            lamp_on=self.lamp_on,
        )

    def accessible(self, r: str) -> bool:
        return self.is_open.get(r, True)


@dataclass(frozen=True)
class Goal:
    task_type: str
    obj: str
    """Object type."""
    target: str | None
    """Receptacle type (None for look_at_obj_in_light)."""
    text: str


def generate(task_type: str, seed: int, cfg: HouseholdConfig) -> tuple[World, Goal]:
    """The world and goal of (task_type, seed); the same arguments always give the same world."""
    rng = random.Random(f"household:{task_type}:{seed}")
    for _ in range(100):
        made = _try_generate(task_type, rng, cfg)
        if made is not None:
            return made
    raise RuntimeError(f"could not generate a {task_type} world for seed {seed}")


def _try_generate(
    task_type: str, rng: random.Random, cfg: HouseholdConfig
) -> tuple[World, Goal] | None:
    kind = rng.choice(_rooms_for(task_type))
    appliances = _appliance_types(task_type, tuple(cfg.heat_appliances))
    needs_lamp = task_type == "look_at_obj_in_light"

    # Receptacle types: staples, then random extras up to the room size.
    types = list(kind.staples)
    while len(types) < cfg.num_receptacles:
        types.append(rng.choice(kind.extras))
    if needs_lamp and not any(t in LAMP_STANDS for t in types):
        types.append("desk" if "desk" in kind.extras + kind.staples else "sidetable")
    counts: dict[str, int] = {}
    receptacles = []
    for t in types:
        counts[t] = counts.get(t, 0) + 1
        receptacles.append(f"{t} {counts[t]}")
    present = set(types)

    # The task's object type and target receptacle type.
    candidates = [
        o
        for o, homes in kind.objects.items()
        if sum(h in present for h in homes) >= (1 if needs_lamp else 2)
    ]
    if not candidates:
        return None
    obj = rng.choice(candidates)
    homes = [h for h in kind.objects[obj] if h in present]
    target = None
    if not needs_lamp:
        targets = [h for h in homes if h not in appliances]
        if not targets:
            return None
        target = rng.choice(targets)
    starts = [
        r for r in receptacles if r.rsplit(" ", 1)[0] in homes and r.rsplit(" ", 1)[0] != target
    ]
    if not starts:
        return None

    world = World(
        receptacles=sorted(
            receptacles, key=lambda r: (r.rsplit(" ", 1)[0], -int(r.rsplit(" ", 1)[1]))
        ),
        rtype={r: r.rsplit(" ", 1)[0] for r in receptacles},
        is_open={
            r: rng.random() >= cfg.closed_share
            for r in receptacles
            if r.rsplit(" ", 1)[0] in OPENABLE
        },
        contents={r: [] for r in receptacles},
        location={},
        otype={},
        lamp_at=None,
        heaters=tuple(cfg.heat_appliances),
    )
    numbers: dict[str, int] = {}

    def place(otype: str, where: str) -> None:
        numbers[otype] = numbers.get(otype, 0) + 1
        name = f"{otype} {numbers[otype]}"
        world.otype[name] = otype
        world.location[name] = where
        world.contents[where].append(name)

    if needs_lamp:
        stands = [r for r in receptacles if world.rtype[r] in LAMP_STANDS]
        world.lamp_at = rng.choice(stands)
        world.contents[world.lamp_at].append("desklamp 1")
    for _ in range(2 if task_type == "pick_two_obj_and_place" else 1):
        place(obj, rng.choice(starts))
    for _ in range(cfg.distractors):
        dtype = rng.choice(list(kind.objects))
        where = [r for r in receptacles if world.rtype[r] in kind.objects[dtype]]
        if dtype == obj:  # an extra instance of the task's object stays out of the target
            where = [r for r in where if world.rtype[r] != target]
        if where:
            place(dtype, rng.choice(where))
    for objs in world.contents.values():
        rng.shuffle(objs)
    text = rng.choice(GOALS[task_type]).format(o=obj, r=target)
    return world, Goal(task_type, obj, target, text)


# --------------------------------------------------------------------------------------------
# Rules: what can be done, what it does, when the task is won
# --------------------------------------------------------------------------------------------


def _listing(names: list[str]) -> str:
    items = [f"a {n}" for n in names]
    if not items:
        return "nothing"
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + ", and " + items[-1]


def describe_receptacle(w: World, r: str) -> str:
    if r in w.is_open:
        if not w.is_open[r]:
            return f"The {r} is closed."
        return f"The {r} is open. In it, you see {_listing(w.contents[r])}."
    return f"On the {r}, you see {_listing(w.contents[r])}."


def room_view(w: World) -> str:
    return f"You are in the middle of a room. Looking quickly around you, you see {_listing(w.receptacles)}."


def admissible_actions(w: World) -> list[str]:
    """ALFWorld's admissible commands for this state, sorted (ALFWorld's `help` left out)."""
    acts = ["inventory", "look"]
    acts += [f"go to {r}" for r in w.receptacles if r != w.at]
    r = w.at
    if r is not None:
        acts.append(f"examine {r}")
        if r in w.is_open:
            acts.append(f"close {r}" if w.is_open[r] else f"open {r}")
        visible = w.accessible(r)
        if visible and w.lamp_at == r:
            acts.append("use desklamp 1")
        o = w.holding
        if o is None:
            if visible:
                acts += [f"take {x} from {r}" for x in w.contents[r] if x != "desklamp 1"]
        else:
            if visible:
                acts.append(f"move {o} to {r}")
            kind = w.rtype[r]
            if kind in w.heaters:
                acts.append(f"heat {o} with {r}")
            if kind == "fridge":
                acts.append(f"cool {o} with {r}")
            if kind == "sinkbasin":
                acts.append(f"clean {o} with {r}")
    if w.holding is not None:
        acts.append(f"examine {w.holding}")
    acts.sort()
    return acts


def apply_action(w: World, action: str) -> str:
    """Carry out an admissible `action` on `w` in place; returns the observation."""
    verb, _, rest = action.partition(" ")
    if action == "inventory":
        return (
            f"You are carrying: a {w.holding}." if w.holding else "You are not carrying anything."
        )
    if action == "look":
        if w.at is None:
            return room_view(w)
        return f"You are facing the {w.at}. Next to it, you see nothing."
    if verb == "go":
        w.at = rest[3:]  # "to X"
        return f"You arrive at {w.at}. {describe_receptacle(w, w.at)}"
    if verb == "open":
        w.is_open[rest] = True
        return f"You open the {rest}. {describe_receptacle(w, rest)}"
    if verb == "close":
        w.is_open[rest] = False
        return f"You close the {rest}."
    if verb == "take":
        obj, _, r = rest.partition(" from ")
        w.contents[r].remove(obj)
        del w.location[obj]
        w.holding = obj
        return f"You pick up the {obj} from the {r}."
    if verb == "move":
        obj, _, r = rest.partition(" to ")
        w.contents[r].append(obj)
        w.location[obj] = r
        w.holding = None
        return f"You move the {obj} to the {r}."
    if verb in ("heat", "cool", "clean"):
        obj, _, r = rest.partition(" with ")
        w.props.setdefault(obj, set()).add({"heat": "hot", "cool": "cool", "clean": "clean"}[verb])
        return f"You {verb} the {obj} using the {r}."
    if action == "use desklamp 1":
        w.lamp_on = True
        return "You turn on the desklamp 1."
    if verb == "examine":
        if rest in w.rtype:
            return describe_receptacle(w, rest)
        return f"There's nothing special about {rest}."
    raise ValueError(f"not an action of this world: {action!r}")


def is_won(w: World, goal: Goal) -> bool:
    if goal.task_type == "look_at_obj_in_light":
        return (
            w.lamp_on
            and w.holding is not None
            and w.otype[w.holding] == goal.obj
            and w.at == w.lamp_at
        )
    need = APPLIANCE.get(goal.task_type, (None, None, None))[2]
    enough = 2 if goal.task_type == "pick_two_obj_and_place" else 1
    for r, objs in w.contents.items():
        if w.rtype[r] != goal.target:
            continue
        fit = sum(
            1
            for o in objs
            if w.otype.get(o) == goal.obj and (need is None or need in w.props.get(o, ()))
        )
        if fit >= enough:
            return True
    return False


def state_key(w: World) -> tuple:
    """The GiGPO anchor: the whole state, as a tuple of plain values."""
    return (
        w.at,
        w.holding,
        tuple(sorted(w.location.items())),
        tuple(sorted(r for r, is_open in w.is_open.items() if is_open)),
        tuple(sorted((o, tuple(sorted(p))) for o, p in w.props.items())),
        w.lamp_on,
    )


# --------------------------------------------------------------------------------------------
# The expert: a plan from the full initial state
# --------------------------------------------------------------------------------------------


def expert_plan(world: World, goal: Goal, mode: HouseholdExpert = "oracle", seed: int = 0) -> list[str]:
    """A plan that fetches, treats and delivers.

    "oracle" reads the hidden state and goes straight to each object. "search" and "explore"
    read only what the agent could see: they visit receptacles, opening closed ones, and take
    the first object of the wanted type they see. "search" visits them in the order of the
    admissible "go to" actions (alphabetical); "explore" in a random order drawn from `seed`
    for each object it looks for, so that from where it stands its next place is any one it has
    not yet seen, all alike: a memoryless policy imitates it by going anywhere else.
    Where more than one appliance type heats, each task's plan heats at one drawn from `seed`.
    """
    if mode not in get_args(HouseholdExpert):
        raise ValueError(f"unknown household expert {mode!r}: use one of {', '.join(get_args(HouseholdExpert))}")
    w = world.copy()
    plan: list[str] = []

    def do(action: str) -> None:
        if action not in admissible_actions(w):
            raise RuntimeError(f"expert plan broke at {action!r} for goal {goal.text!r}")
        apply_action(w, action)
        plan.append(action)

    def go(r: str) -> None:
        if w.at != r:
            do(f"go to {r}")
        if not w.accessible(r):
            do(f"open {r}")

    def fetch(obj: str) -> None:
        r = w.location[obj]
        go(r)
        do(f"take {obj} from {r}")

    rng = random.Random(seed)
    station = _station(w, goal, seed)

    def search_for(taken: set[str]) -> str:
        order = sorted(w.receptacles)
        if mode == "explore":
            rng.shuffle(order)
        for r in order:
            if r == target_name and goal.task_type != "look_at_obj_in_light":
                continue  # what lies in the target already is not to be fetched again
            go(r)
            seen = [o for o in w.contents[r] if w.otype.get(o) == goal.obj and o not in taken]
            if seen:
                obj = min(seen, key=lambda o: int(o.rsplit(" ", 1)[1]))
                do(f"take {obj} from {r}")
                return obj
        raise RuntimeError(f"search found no {goal.obj} for goal {goal.text!r}")

    matching = sorted(
        (o for o, t in w.otype.items() if t == goal.obj), key=lambda o: int(o.rsplit(" ", 1)[1])
    )
    target_name = next((r for r in w.receptacles if w.rtype[r] == goal.target), None)
    if mode != "oracle":
        return _search_plan(w, goal, plan, station, do, go, search_for)
    if goal.task_type == "look_at_obj_in_light":
        fetch(matching[0])
        go(w.lamp_at)  # type: ignore[arg-type]
        do("use desklamp 1")
        return plan

    target = next(r for r in w.receptacles if w.rtype[r] == goal.target)
    carry = matching[:2] if goal.task_type == "pick_two_obj_and_place" else matching[:1]
    for obj in carry:
        fetch(obj)
        _treat_and_place(w, goal, obj, target, station, do, go)
    return plan


def _station(w: World, goal: Goal, seed: int) -> str | None:
    """The receptacle at which the task's object is heated, cooled or cleaned (None: not needed)."""
    kinds = _appliance_types(goal.task_type, w.heaters)
    if not kinds:
        return None
    appliance = kinds[0] if len(kinds) == 1 else random.Random(f"household:heater:{seed}").choice(kinds)
    return next(r for r in w.receptacles if w.rtype[r] == appliance)


def _treat_and_place(w, goal, obj: str, target: str, station: str | None, do, go) -> None:
    """With `obj` in hand: heat, cool or clean it at `station` when the task asks, then put it on `target`."""
    if station is not None:
        verb = APPLIANCE[goal.task_type][1]
        if w.at != station:
            do(f"go to {station}")
        do(f"{verb} {obj} with {station}")
    go(target)
    do(f"move {obj} to {target}")


def _search_plan(w, goal, plan, station, do, go, search_for) -> list[str]:
    if goal.task_type == "look_at_obj_in_light":
        search_for(set())
        go(w.lamp_at)
        do("use desklamp 1")
        return plan
    target = next(r for r in w.receptacles if w.rtype[r] == goal.target)
    taken: set[str] = set()
    for _ in range(2 if goal.task_type == "pick_two_obj_and_place" else 1):
        obj = search_for(taken)
        taken.add(obj)
        _treat_and_place(w, goal, obj, target, station, do, go)
    return plan


# --------------------------------------------------------------------------------------------
# The environment and its task source
# --------------------------------------------------------------------------------------------


class HouseholdEnv:
    """One episode of one household task."""

    def __init__(self, world: World, goal: Goal, max_steps: int) -> None:
        self._start, self.goal, self.max_steps = world, goal, max_steps
        self.world = world.copy()
        self.steps = 0
        self._admissible: frozenset[str] = frozenset()
        self.done = False

    def _result(
        self, obs: str, *, reward: float = 0.0, won: bool = False, valid: bool = True
    ) -> StepResult:
        actions = admissible_actions(self.world)  # already lower-case, single-spaced
        self._admissible = frozenset(actions)
        self.done = won or self.steps >= self.max_steps
        return StepResult(
            observation=obs,
            reward=reward,
            done=self.done,
            task=self.goal.text,
            task_type=self.goal.task_type,
            anchor=state_key(self.world),
            admissible=tuple(actions),
            won=won,
            action_valid=valid,
        )

    def reset(self) -> StepResult:
        self.world = self._start.copy()
        self.steps = 0
        intro = f"-= Welcome to TextWorld, ALFRED! =-\n\n{room_view(self.world)}\n\nYour task is to: {self.goal.text}"
        return self._result(intro)

    def step(self, action: str) -> StepResult:
        if self.done:
            raise RuntimeError("step() after the episode ended; make a new environment")
        self.steps += 1
        chosen = normalize_action(action)
        if chosen not in self._admissible:
            return self._result(NOTHING_HAPPENS, valid=False)
        obs = apply_action(self.world, chosen)
        won = is_won(self.world, self.goal)
        return self._result(obs, reward=SUCCESS_REWARD if won else 0.0, won=won)

    def close(self) -> None:
        pass


class HouseholdSource:
    """Task lists by split, environments, and the expert for the household world."""

    name = "household"

    def __init__(self, cfg: HouseholdConfig | None = None, max_steps: int = 30) -> None:
        self.cfg = cfg or HouseholdConfig()
        self.max_steps = max_steps

    def splits(self) -> dict[str, int]:
        return {"train": self.cfg.train_tasks, "eval": self.cfg.eval_tasks}

    def tasks(self, split: str) -> list[Task]:
        check_split(self, split)
        types = self.cfg.train_types if split == "train" else self.cfg.eval_types
        return seeded_tasks("household", split, self.splits()[split], types)

    def _world(self, task: Task) -> tuple[World, Goal]:
        return generate(task.task_type, int(task.id), self.cfg)

    def make(self, task: Task) -> HouseholdEnv:
        world, goal = self._world(task)
        return HouseholdEnv(world, goal, self.max_steps)

    def expert(self, task: Task) -> list[str]:
        return expert_plan(*self._world(task), mode=self.cfg.expert, seed=int(task.id))
