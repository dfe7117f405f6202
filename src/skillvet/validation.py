"""A warm start measured on held-out expert steps: teacher-forced loss and action accuracy, by
kind of action, and which validation's weights a warm start keeps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from skillvet.policy.hf import Policy
from skillvet.prompts import parse_action


@dataclass(frozen=True)
class Validation:
    """The warm start measured on held-out expert steps, teacher-forced."""

    step: int
    """SFT steps taken when measured."""
    loss: float
    """Cross-entropy per answer token."""
    accuracy: float
    """Share of held-out steps whose whole answer (every token, end of turn included) is the
    model's most likely continuation: the expert's action would come out of greedy decoding."""
    by_kind: dict[str, tuple[int, int]] = field(default_factory=dict)
    """(right, steps) per kind of expert action (its first word: "go", "take", ...), where
    the kinds were given: which decisions the warm start gets wrong."""
    played: tuple[int, int] | None = None
    """(successes, episodes) of the held-out tasks played closed-loop at this validation, where
    they were played (`sft.val_play`): what the policy does with its own actions, which the
    teacher-forced figures do not tell."""


@torch.no_grad()
def validate(
    policy: Policy,
    prompts: Sequence[list[int]],
    answers: Sequence[list[int]],
    step: int,
    batch_size: int = 64,
    kinds: Sequence[str] = (),
) -> Validation:
    """Teacher-forced loss and action accuracy of `policy` on encoded demonstrations; with
    `kinds` (one per demonstration, e.g. `action_kind` of its answer), the accuracy per kind."""
    if kinds and len(kinds) != len(prompts):
        raise ValueError(f"{len(kinds)} kinds for {len(prompts)} demonstrations")
    was_training = policy.model.training
    policy.model.eval()
    loss_sum, tokens, exact = 0.0, 0.0, 0
    hits: list[bool] = []
    for start in range(0, len(prompts), batch_size):
        logp_all, target, mask = policy.answer_distributions(
            prompts[start : start + batch_size], answers[start : start + batch_size]
        )
        logp = logp_all.gather(-1, target[..., None]).squeeze(-1)
        loss_sum += float(-(logp * mask).sum())
        tokens += float(mask.sum())
        whole = ((logp_all.argmax(-1) == target) | (mask == 0)).all(-1)
        exact += int(whole.sum())
        hits += whole.tolist()
    policy.model.train(was_training)
    by_kind: dict[str, tuple[int, int]] = {}
    for kind, hit in zip(kinds, hits):
        right, seen = by_kind.get(kind, (0, 0))
        by_kind[kind] = (right + int(hit), seen + 1)
    by_kind = dict(sorted(by_kind.items(), key=lambda kv: -kv[1][1]))  # most common first
    return Validation(step, loss_sum / max(tokens, 1.0), exact / max(len(prompts), 1), by_kind)


def action_kind(answer: str) -> str:
    """The kind of a demonstrated action: the first word of the action in `answer` ("go" for
    `<action>go to desk 1</action>`; "(none)" without an action)."""
    action = parse_action(answer)
    return action.split()[0].lower() if action else "(none)"


def kinds_line(v: Validation, most: int = 6) -> str:
    """The per-kind accuracies of `v`, most common kinds first: "go 59% (316), take 49% (59)"."""
    shown = list(v.by_kind.items())[:most]
    return ", ".join(f"{kind} {right / seen:.0%} ({seen})" for kind, (right, seen) in shown)


def rank(v: Validation) -> tuple[int, float, float]:
    """What "best" means: the most held-out successes played (a validation played beats one not
    played), then the highest action accuracy, then the lowest loss."""
    return (v.played[0] if v.played else -1, v.accuracy, -v.loss)


def better(a: Validation, b: Validation | None) -> bool:
    return b is None or rank(a) > rank(b)


class Keeper:
    """Validations in order, and the weights of the best one (with `select == "best"`)."""

    def __init__(self, policy: Policy, select: str, last_step: int) -> None:
        self.policy, self.select, self.last_step = policy, select, last_step
        self.validations: list[Validation] = []
        self.best: Validation | None = None
        self.best_state: dict[str, torch.Tensor] | None = None

    def add(self, measured: Validation) -> None:
        self.validations.append(measured)
        if better(measured, self.best):
            self.best = measured
            keep = self.select == "best" and measured.step < self.last_step  # else held anyway
            self.best_state = self.policy.trainable_state() if keep else None

    def finish(self) -> Validation | None:
        """Load the kept weights; the validation they scored."""
        if self.select == "best" and self.best is not None and self.best_state is not None:
            self.policy.load_trainable_state(self.best_state)
            return self.best
        return self.validations[-1] if self.validations else None
