"""A household world's state (`World`), its task (`Goal`), and their generation from a seed."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from skillvet.envs.household.catalogue import (
    GOALS,
    LAMP_STANDS,
    OPENABLE,
    RoomKind,
    appliance_types,
    rooms_for,
)
from skillvet.envs.household.settings import HouseholdConfig


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
    """Receptacle types at which heating a held object is admissible."""
    working: tuple[str, ...] = ("microwave",)
    """Those of `heaters` at which heating works (HouseholdConfig.working_heater)."""
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
            working=self.working,
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
            made[0].working = working_heaters(cfg, seed)
            return made
    raise RuntimeError(f"could not generate a {task_type} world for seed {seed}")


def drawn_heater(kinds: tuple[str, ...], seed: int) -> str:
    """The heater type drawn for task `seed` among `kinds`: where its expert heats when more
    than one works, and the only one that works with `working_heater: drawn`."""
    return random.Random(f"household:heater:{seed}").choice(kinds)


def working_heaters(cfg: HouseholdConfig, seed: int) -> tuple[str, ...]:
    """The heater types at which heating works in task `seed`'s world."""
    if cfg.working_heater == "any":
        return tuple(cfg.heat_appliances)
    if cfg.working_heater == "drawn":
        return (drawn_heater(tuple(cfg.heat_appliances), seed),)
    return (cfg.working_heater,)


def _try_generate(
    task_type: str, rng: random.Random, cfg: HouseholdConfig
) -> tuple[World, Goal] | None:
    """One draw of a room for the task; None when the room drawn cannot hold it."""
    kind = rng.choice(rooms_for(task_type))
    appliances = appliance_types(task_type, tuple(cfg.heat_appliances))
    needs_lamp = task_type == "look_at_obj_in_light"
    receptacles = _draw_receptacles(kind, needs_lamp, cfg.num_receptacles, rng)
    drawn = _draw_object_and_target(kind, receptacles, needs_lamp, appliances, rng)
    if drawn is None:
        return None
    obj, target, starts = drawn

    world = _empty_world(receptacles, cfg, rng)
    if needs_lamp:
        stands = [r for r in receptacles if world.rtype[r] in LAMP_STANDS]
        world.lamp_at = rng.choice(stands)
        world.contents[world.lamp_at].append("desklamp 1")
    for _ in range(2 if task_type == "pick_two_obj_and_place" else 1):
        _place(world, obj, rng.choice(starts))
    _place_distractors(world, receptacles, kind, obj, target, cfg.distractors, rng)
    for objs in world.contents.values():
        rng.shuffle(objs)
    text = rng.choice(GOALS[task_type]).format(o=obj, r=target)
    return world, Goal(task_type, obj, target, text)


def _type_of(name: str) -> str:
    """The type of a receptacle or object by its name: "cabinet" for "cabinet 2"."""
    return name.rsplit(" ", 1)[0]


def _draw_receptacles(
    kind: RoomKind, needs_lamp: bool, size: int, rng: random.Random
) -> list[str]:
    """Receptacle names, numbered per type, in the order drawn: the room's staples, then random
    extras up to `size`, then a lamp stand if the task needs a lamp and none was drawn."""
    types = list(kind.staples)
    while len(types) < size:
        types.append(rng.choice(kind.extras))
    if needs_lamp and not any(t in LAMP_STANDS for t in types):
        types.append("desk" if "desk" in kind.extras + kind.staples else "sidetable")
    counts: dict[str, int] = {}
    receptacles = []
    for t in types:
        counts[t] = counts.get(t, 0) + 1
        receptacles.append(f"{t} {counts[t]}")
    return receptacles


def _draw_object_and_target(
    kind: RoomKind,
    receptacles: list[str],
    needs_lamp: bool,
    appliances: tuple[str, ...],
    rng: random.Random,
) -> tuple[str, str | None, list[str]] | None:
    """The task's object type, its target receptacle type (None for a lamp task) and the
    receptacles it may start in; None when this room has no fitting choice."""
    present = {_type_of(r) for r in receptacles}
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
    starts = [r for r in receptacles if _type_of(r) in homes and _type_of(r) != target]
    if not starts:
        return None
    return obj, target, starts


def _empty_world(receptacles: list[str], cfg: HouseholdConfig, rng: random.Random) -> World:
    """The room with its receptacles, each openable one drawn open or closed, and no objects."""
    return World(
        receptacles=sorted(receptacles, key=lambda r: (_type_of(r), -int(r.rsplit(" ", 1)[1]))),
        rtype={r: _type_of(r) for r in receptacles},
        is_open={
            r: rng.random() >= cfg.closed_share for r in receptacles if _type_of(r) in OPENABLE
        },
        contents={r: [] for r in receptacles},
        location={},
        otype={},
        lamp_at=None,
        heaters=tuple(cfg.heat_appliances),
    )


def _place(world: World, otype: str, where: str) -> None:
    """Put a new object of type `otype`, numbered after those already placed, in `where`."""
    name = f"{otype} {sum(t == otype for t in world.otype.values()) + 1}"
    world.otype[name] = otype
    world.location[name] = where
    world.contents[where].append(name)


def _place_distractors(
    world: World,
    receptacles: list[str],
    kind: RoomKind,
    obj: str,
    target: str | None,
    n: int,
    rng: random.Random,
) -> None:
    """Put `n` random objects of the room's kind where they belong; an extra instance of the
    task's object stays out of the target."""
    for _ in range(n):
        dtype = rng.choice(list(kind.objects))
        where = [r for r in receptacles if world.rtype[r] in kind.objects[dtype]]
        if dtype == obj:
            where = [r for r in where if world.rtype[r] != target]
        if where:
            _place(world, dtype, rng.choice(where))
