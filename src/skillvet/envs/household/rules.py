"""The rules of the household world: what can be done, what it does, what is said, when the task
is won, and the state as a GiGPO anchor."""

from __future__ import annotations

from collections.abc import Callable

from skillvet.envs.household.catalogue import APPLIANCE
from skillvet.envs.household.world import Goal, World
from skillvet.envs.protocol import NOTHING_HAPPENS


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
    return (
        "You are in the middle of a room. Looking quickly around you, you see "
        f"{_listing(w.receptacles)}."
    )


# --------------------------------------------------------------------------------------------
# What can be done
# --------------------------------------------------------------------------------------------


def admissible_actions(w: World) -> list[str]:
    """ALFWorld's admissible commands for this state, sorted (ALFWorld's `help` left out)."""
    acts = ["inventory", "look"]
    acts += [f"go to {r}" for r in w.receptacles if r != w.at]
    if w.at is not None:
        acts += _actions_at(w, w.at)
    if w.holding is not None:
        acts.append(f"examine {w.holding}")
    acts.sort()
    return acts


def _actions_at(w: World, r: str) -> list[str]:
    """What can be done at receptacle `r`, where the agent stands."""
    acts = [f"examine {r}"]
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
        acts += _treatments_at(w, r, o)
    return acts


def _treatments_at(w: World, r: str, o: str) -> list[str]:
    """Heating, cooling or cleaning the held object `o` where `r` is the appliance for it."""
    kind = w.rtype[r]
    acts = []
    if kind in w.heaters:
        acts.append(f"heat {o} with {r}")
    if kind == "fridge":
        acts.append(f"cool {o} with {r}")
    if kind == "sinkbasin":
        acts.append(f"clean {o} with {r}")
    return acts


# --------------------------------------------------------------------------------------------
# What an action does
# --------------------------------------------------------------------------------------------


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
    if action == "use desklamp 1":
        w.lamp_on = True
        return "You turn on the desklamp 1."
    if verb in ("heat", "cool", "clean"):
        obj, _, r = rest.partition(" with ")
        if verb == "heat" and w.rtype[r] not in w.working:
            return NOTHING_HAPPENS
        w.props.setdefault(obj, set()).add({"heat": "hot", "cool": "cool", "clean": "clean"}[verb])
        return f"You {verb} the {obj} using the {r}."
    if verb in _VERBS:
        return _VERBS[verb](w, rest)
    raise ValueError(f"not an action of this world: {action!r}")


def _go(w: World, rest: str) -> str:
    w.at = rest[3:]  # "to X"
    return f"You arrive at {w.at}. {describe_receptacle(w, w.at)}"


def _open(w: World, r: str) -> str:
    w.is_open[r] = True
    return f"You open the {r}. {describe_receptacle(w, r)}"


def _close(w: World, r: str) -> str:
    w.is_open[r] = False
    return f"You close the {r}."


def _take(w: World, rest: str) -> str:
    obj, _, r = rest.partition(" from ")
    w.contents[r].remove(obj)
    del w.location[obj]
    w.holding = obj
    return f"You pick up the {obj} from the {r}."


def _move(w: World, rest: str) -> str:
    obj, _, r = rest.partition(" to ")
    w.contents[r].append(obj)
    w.location[obj] = r
    w.holding = None
    return f"You move the {obj} to the {r}."


def _examine(w: World, rest: str) -> str:
    if rest in w.rtype:
        return describe_receptacle(w, rest)
    return f"There's nothing special about {rest}."


_VERBS: dict[str, Callable[[World, str], str]] = {
    "go": _go,
    "open": _open,
    "close": _close,
    "take": _take,
    "move": _move,
    "examine": _examine,
}
"""Verb -> what an action of that verb does to the world (given the words after the verb)."""


# --------------------------------------------------------------------------------------------
# When the task is won, and the state as an anchor
# --------------------------------------------------------------------------------------------


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
