"""Plain data passed between the environments, the rollout and the learner."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

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


@dataclass
class Step:
    prompt_ids: list[int]
    response_ids: list[int]
    logprobs: list[float]
    answer: str
    """The decoded answer."""
    action: str | None
    """The parsed action, None when the answer held none."""
    anchor: Hashable
    """Anchor of the state in which the action was chosen."""
    reward: float
    """Environment reward of this step (no penalty applied)."""
    valid: bool
    observation: str
    """What the environment answered."""
    allowed: list[list[int]] | None = None
    """An answer held to the admissible actions: the ids each token was drawn among."""


@dataclass
class Episode:
    task: Task
    group: int
    """Index of the task in the batch: rollouts of one task share it."""
    index: int
    """Index of the rollout within its group."""
    goal: str
    skills: tuple[str, ...] = ()
    steps: list[Step] = field(default_factory=list)
    won: bool = False
    error: str | None = None
    """Set when the environment crashed; the episode ended there."""

    @property
    def reward(self) -> float:
        return sum(s.reward for s in self.steps)

    @property
    def invalid_steps(self) -> int:
        return sum(not s.valid for s in self.steps)

    def as_dict(self, decode: Callable[[list[int]], str] | None = None) -> dict:
        """A JSON-ready record; with `decode`, each step carries its prompt as the model saw it."""
        return {
            "task": self.task.id,
            "task_type": self.task.task_type,
            "goal": self.goal,
            "group": self.group,
            "index": self.index,
            "won": self.won,
            "reward": self.reward,
            "error": self.error,
            "skills": list(self.skills),
            "steps": [
                {
                    **({"prompt": decode(s.prompt_ids)} if decode is not None else {}),
                    "answer": s.answer,
                    "action": s.action,
                    "valid": s.valid,
                    "reward": s.reward,
                    "observation": s.observation,
                }
                for s in self.steps
            ],
        }


@dataclass
class GeneratorRows:
    """SAPO's policy-written skills decided in a promotion round: the generator loss's rows."""

    prompts: list[list[int]]
    """Induction prompt ids."""
    responses: list[list[int]]
    """The skill's sampled token ids."""
    weights: list[float]
    """w(U): U for promoted skills, -skills.gen_discard_weight * |U| for discarded ones."""
    coef: float
    """lambda_gen."""


@dataclass
class Decision:
    """A status change of one skill, with why."""

    skill_id: int
    kind: str
    reason: str
    figures: dict = field(default_factory=dict)
