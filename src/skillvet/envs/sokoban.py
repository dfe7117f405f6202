"""Sokoban rooms from gym-sokoban's generator, played as text grids
(`pip install skillvet[sokoban]`).

Only the generator is used (`gym_sokoban/envs/room_utils.py`, loaded from its file so that the
package's gym registration is not needed). The moves are up, down, left and right; a move into
a wall, or a push against a wall or another box, is allowed and changes nothing. The grid is
the anchor. The expert is a breadth-first search over (player, boxes) states.
"""

from __future__ import annotations

import importlib.util
import random
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from skillvet.configerror import require
from skillvet.envs.protocol import NOTHING_HAPPENS, check_split, normalize_action, seeded_tasks
from skillvet.types import SUCCESS_REWARD, StepResult, Task


@dataclass
class SokobanConfig:
    size: int = 6
    """Rooms are size x size cells, walls included."""
    boxes: int = 1
    """Boxes (and targets) per room."""
    train_tasks: int = 5000
    """Rooms in the train split (seeds 0 .. train_tasks-1)."""
    eval_tasks: int = 500
    """Rooms in the eval split (seeds from 1,000,000 on)."""

    def __post_init__(self) -> None:
        require(5 <= self.size <= 12, "env.sokoban.size", f"must be in [5, 12], got {self.size}")
        require(1 <= self.boxes <= 3, "env.sokoban.boxes", f"must be in [1, 3], got {self.boxes}")


MOVES = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
LEGEND = "# wall, _ floor, O target, X box, √ box on target, P you, S you on a target"
GOAL = "push every box onto a target."

# gym-sokoban's cell codes in a generated room state (its docstring swaps 3 and 4)
WALL, FLOOR, TARGET, BOX_ON_TARGET, BOX, PLAYER = 0, 1, 2, 3, 4, 5


@lru_cache(maxsize=1)
def _room_utils():
    spec = importlib.util.find_spec("gym_sokoban")
    if spec is None or spec.origin is None:
        raise ImportError("Sokoban needs gym-sokoban: pip install 'skillvet[sokoban]'")
    path = Path(spec.origin).parent / "envs" / "room_utils.py"
    module_spec = importlib.util.spec_from_file_location("skillvet_sokoban_room_utils", path)
    module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
    module_spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def generate_room(
    seed: int, cfg: SokobanConfig
) -> tuple[frozenset, frozenset, frozenset, tuple[int, int]]:
    """(walls, targets, boxes, player) of room `seed`, from gym-sokoban's generator.

    The generator draws from the global `random` and `numpy.random` states; they are seeded for
    the call and restored afterwards.
    """
    import numpy as np  # gym-sokoban needs it anyway; imported here to keep skillvet.config light

    room_utils = _room_utils()
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        for attempt in range(50):
            random.seed(seed * 1000 + attempt)
            np.random.seed((seed * 1000 + attempt) % 2**32)
            try:
                structure, state, _ = room_utils.generate_room(
                    dim=(cfg.size, cfg.size), num_steps=int(cfg.size * 2.5), num_boxes=cfg.boxes
                )
            except (RuntimeError, RuntimeWarning, ValueError):  # it gives up on some layouts
                continue
            cells = lambda grid, code: frozenset(zip(*np.nonzero(grid == code)))  # noqa: E731
            walls, targets = cells(structure, WALL), cells(structure, TARGET)
            boxes = cells(state, BOX) | cells(state, BOX_ON_TARGET)
            players = cells(state, PLAYER)
            if boxes <= targets or len(players) != 1:
                continue  # already solved: draw again
            (player,) = players
            as_int = lambda cs: frozenset((int(r), int(c)) for r, c in cs)  # noqa: E731
            return as_int(walls), as_int(targets), as_int(boxes), (int(player[0]), int(player[1]))
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    raise RuntimeError(f"gym-sokoban could not make room {seed}")


def render(
    size: int, walls: frozenset, targets: frozenset, boxes: frozenset, player: tuple[int, int]
) -> str:
    rows = []
    for r in range(size):
        row = []
        for c in range(size):
            p = (r, c)
            if p in walls:
                row.append("#")
            elif p == player:
                row.append("S" if p in targets else "P")
            elif p in boxes:
                row.append("√" if p in targets else "X")
            elif p in targets:
                row.append("O")
            else:
                row.append("_")
        rows.append("".join(row))
    return "\n".join(rows)


def push(walls, boxes, player, move: str):
    """The (boxes, player) after `move`; unchanged when blocked."""
    dr, dc = MOVES[move]
    nxt = (player[0] + dr, player[1] + dc)
    if nxt in walls:
        return boxes, player
    if nxt in boxes:
        beyond = (nxt[0] + dr, nxt[1] + dc)
        if beyond in walls or beyond in boxes:
            return boxes, player
        return (boxes - {nxt}) | {beyond}, nxt
    return boxes, nxt


def solve(walls, targets, boxes, player, limit: int = 200_000) -> list[str] | None:
    """Shortest move sequence that puts every box on a target (breadth-first search)."""
    start = (boxes, player)
    parents: dict = {start: None}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        if state[0] <= targets:
            path = []
            while parents[state] is not None:
                state, move = parents[state]
                path.append(move)
            return path[::-1]
        for move in MOVES:
            nxt = push(walls, state[0], state[1], move)
            if nxt not in parents:
                parents[nxt] = (state, move)
                if len(parents) > limit:
                    return None
                queue.append(nxt)
    return None


class SokobanEnv:
    def __init__(self, room: tuple, size: int, max_steps: int) -> None:
        self.walls, self.targets, self.start_boxes, self.start_player = room
        self.size, self.max_steps = size, max_steps
        self.boxes, self.player, self.steps = self.start_boxes, self.start_player, 0

    def _result(self, obs: str | None, *, valid: bool = True) -> StepResult:
        grid = render(self.size, self.walls, self.targets, self.boxes, self.player)
        won = self.boxes <= self.targets
        text = obs if obs is not None else f"The room ({LEGEND}):\n{grid}"
        return StepResult(
            observation=text,
            reward=SUCCESS_REWARD if won and valid else 0.0,
            done=won or self.steps >= self.max_steps,
            task=GOAL,
            task_type=f"sokoban_{len(self.targets)}box",
            anchor=grid,
            admissible=tuple(MOVES),
            won=won,
            action_valid=valid,
        )

    def reset(self) -> StepResult:
        self.boxes, self.player, self.steps = self.start_boxes, self.start_player, 0
        return self._result(None)

    def step(self, action: str) -> StepResult:
        self.steps += 1
        move = normalize_action(action)
        if move not in MOVES:
            return self._result(NOTHING_HAPPENS, valid=False)
        self.boxes, self.player = push(self.walls, self.boxes, self.player, move)
        return self._result(None)

    def close(self) -> None:
        pass


class SokobanSource:
    name = "sokoban"

    def __init__(self, cfg: SokobanConfig | None = None, max_steps: int = 30) -> None:
        self.cfg = cfg or SokobanConfig()
        self.max_steps = max_steps
        _room_utils()  # fail early, with the install hint, when gym-sokoban is missing

    def splits(self) -> dict[str, int]:
        return {"train": self.cfg.train_tasks, "eval": self.cfg.eval_tasks}

    def tasks(self, split: str) -> list[Task]:
        check_split(self, split)
        return seeded_tasks(
            "sokoban", split, self.splits()[split], [f"sokoban_{self.cfg.boxes}box"]
        )

    def _room(self, task: Task) -> tuple:
        return generate_room(int(task.id), self.cfg)

    def make(self, task: Task) -> SokobanEnv:
        return SokobanEnv(self._room(task), self.cfg.size, self.max_steps)

    def expert(self, task: Task) -> list[str]:
        walls, targets, boxes, player = self._room(task)
        plan = solve(walls, targets, boxes, player)
        if plan is None:
            raise RuntimeError(f"no solution found for Sokoban room {task.id}")
        return plan
