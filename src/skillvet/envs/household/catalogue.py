"""The catalogue of the household world: room kinds, their receptacles and objects, task goals.

Plain data, and two lookups by task type: the rooms a task can be set in, and the receptacle
types at which its object is heated, cooled or cleaned.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def appliance_types(task_type: str, heaters: tuple[str, ...]) -> tuple[str, ...]:
    """Receptacle types at which a task of this type treats its object (none: untreated types)."""
    if task_type == "pick_heat_then_place":
        return heaters
    return (APPLIANCE[task_type][0],) if task_type in APPLIANCE else ()


def rooms_for(task_type: str) -> tuple[RoomKind, ...]:
    """The room kinds a task of this type can be set in."""
    if task_type in ("pick_heat_then_place", "pick_cool_then_place"):
        return (KITCHEN,)
    if task_type == "pick_clean_then_place":
        return (KITCHEN, BATHROOM)
    if task_type == "look_at_obj_in_light":
        return (BEDROOM, LIVINGROOM)
    return ROOMS
