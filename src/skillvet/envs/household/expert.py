"""The household experts: plans that fetch the task's object, treat it and deliver it.

"oracle" reads the hidden state and goes straight to each object. "search" reads only what the
agent could see: it visits receptacles in alphabetical order (the order of the admissible "go to"
actions), opening closed ones, and takes the first object of the wanted type it sees. Each plan
heats where heating works; where more than one appliance type does, at one drawn from the task's
seed.
"""

from __future__ import annotations

from typing import get_args

from skillvet.envs.household.catalogue import APPLIANCE, appliance_types
from skillvet.envs.household.rules import admissible_actions, apply_action
from skillvet.envs.household.settings import HouseholdExpert
from skillvet.envs.household.world import Goal, World, drawn_heater


def expert_plan(
    world: World, goal: Goal, mode: HouseholdExpert = "oracle", seed: int = 0
) -> list[str]:
    """The actions of expert `mode` for `goal` from `world` (left unchanged); `seed` picks the
    heater where heating works at more than one."""
    if mode not in get_args(HouseholdExpert):
        raise ValueError(
            f"unknown household expert {mode!r}: use one of {', '.join(get_args(HouseholdExpert))}"
        )
    plan = _Plan(world.copy(), goal)
    station = _station(plan.w, goal, seed)
    if mode == "oracle":
        _oracle(plan, station)
    else:
        _search(plan, station)
    return plan.actions


class _Plan:
    """A plan being written: each action is checked, carried out on a copy of the world, kept."""

    def __init__(self, w: World, goal: Goal) -> None:
        self.w, self.goal = w, goal
        self.actions: list[str] = []

    def do(self, action: str) -> None:
        if action not in admissible_actions(self.w):
            raise RuntimeError(f"expert plan broke at {action!r} for goal {self.goal.text!r}")
        apply_action(self.w, action)
        self.actions.append(action)

    def go(self, r: str) -> None:
        """Go to `r` (unless there) and open it if it is closed."""
        if self.w.at != r:
            self.do(f"go to {r}")
        if not self.w.accessible(r):
            self.do(f"open {r}")

    def fetch(self, obj: str) -> None:
        """Go where `obj` is, known from the hidden state, and take it."""
        r = self.w.location[obj]
        self.go(r)
        self.do(f"take {obj} from {r}")

    def search_for(self, taken: set[str]) -> str:
        """Visit receptacles in alphabetical order (the target left out) until one shows an
        object of the goal's type not in `taken`; take the lowest-numbered one there."""
        w, goal = self.w, self.goal
        target_name = next((r for r in w.receptacles if w.rtype[r] == goal.target), None)
        for r in sorted(w.receptacles):
            if r == target_name and goal.task_type != "look_at_obj_in_light":
                continue  # what lies in the target already is not to be fetched again
            self.go(r)
            seen = [o for o in w.contents[r] if w.otype.get(o) == goal.obj and o not in taken]
            if seen:
                obj = min(seen, key=lambda o: int(o.rsplit(" ", 1)[1]))
                self.do(f"take {obj} from {r}")
                return obj
        raise RuntimeError(f"search found no {goal.obj} for goal {goal.text!r}")

    def treat_and_place(self, obj: str, target: str, station: str | None) -> None:
        """With `obj` in hand: heat, cool or clean it at `station` when the task asks, then put
        it on `target`."""
        if station is not None:
            verb = APPLIANCE[self.goal.task_type][1]
            if self.w.at != station:
                self.do(f"go to {station}")
            self.do(f"{verb} {obj} with {station}")
        self.go(target)
        self.do(f"move {obj} to {target}")

    def light(self) -> None:
        """With the object in hand: go to the desklamp and turn it on."""
        self.go(self.w.lamp_at)  # type: ignore[arg-type]
        self.do("use desklamp 1")


def _station(w: World, goal: Goal, seed: int) -> str | None:
    """The receptacle at which the task's object is heated, cooled or cleaned (None: not
    needed)."""
    kinds = appliance_types(goal.task_type, w.working)
    if not kinds:
        return None
    appliance = kinds[0] if len(kinds) == 1 else drawn_heater(kinds, seed)
    return next(r for r in w.receptacles if w.rtype[r] == appliance)


def _oracle(plan: _Plan, station: str | None) -> None:
    w, goal = plan.w, plan.goal
    matching = sorted(
        (o for o, t in w.otype.items() if t == goal.obj), key=lambda o: int(o.rsplit(" ", 1)[1])
    )
    if goal.task_type == "look_at_obj_in_light":
        plan.fetch(matching[0])
        plan.light()
        return
    target = next(r for r in w.receptacles if w.rtype[r] == goal.target)
    carry = matching[:2] if goal.task_type == "pick_two_obj_and_place" else matching[:1]
    for obj in carry:
        plan.fetch(obj)
        plan.treat_and_place(obj, target, station)


def _search(plan: _Plan, station: str | None) -> None:
    w, goal = plan.w, plan.goal
    if goal.task_type == "look_at_obj_in_light":
        plan.search_for(set())
        plan.light()
        return
    target = next(r for r in w.receptacles if w.rtype[r] == goal.target)
    taken: set[str] = set()
    for _ in range(2 if goal.task_type == "pick_two_obj_and_place" else 1):
        obj = plan.search_for(taken)
        taken.add(obj)
        plan.treat_and_place(obj, target, station)
