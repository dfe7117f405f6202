"""The household environment (one episode of one task) and its task source (splits, experts)."""

from __future__ import annotations

from skillvet.envs.household.expert import expert_plan
from skillvet.envs.household.rules import (
    admissible_actions,
    apply_action,
    is_won,
    room_view,
    state_key,
)
from skillvet.envs.household.settings import HouseholdConfig
from skillvet.envs.household.world import Goal, World, generate
from skillvet.envs.protocol import NOTHING_HAPPENS, check_split, normalize_action, seeded_tasks
from skillvet.types import SUCCESS_REWARD, StepResult, Task


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
        intro = (
            f"-= Welcome to TextWorld, ALFRED! =-\n\n{room_view(self.world)}\n\n"
            f"Your task is to: {self.goal.text}"
        )
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
