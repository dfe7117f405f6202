"""Answers restricted to a list of choices (`sampling.admissible_only`).

A row given choices (the admissible actions, written as whole answers) may only sample a token
that continues one of them: at each step the tokens that no remaining choice has next are
masked out, so the row ends having written exactly one choice, token for token as the choice's
own encoding spells it. Rows given none sample freely.

The mask restricts what is drawn, not what is scored: the sampler records each token's
log-probability under the model's whole distribution, the one the learner recomputes, so the
PPO ratio starts at 1 and the update raises or lowers the chosen answer's probability as it
would without the restriction.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class ChoiceRows:
    """Each row's choices (token sequences) that still agree with what the row has sampled."""

    def __init__(self, choices: Sequence[Sequence[Sequence[int]] | None]) -> None:
        self.left: list[list[Sequence[int]] | None] = [
            [c for c in row if c] or None if row else None for row in choices
        ]
        self.sampled = [0] * len(choices)

    def allowed(self, row: int) -> set[int] | None:
        """Token ids row `row` may sample next (None: any)."""
        left = self.left[row]
        if left is None:
            return None
        at = self.sampled[row]
        return {c[at] for c in left if len(c) > at}

    def bias(self, rows: Sequence[int], vocab: int, device: torch.device) -> torch.Tensor | None:
        """An additive mask for the live `rows` (0 where allowed, -inf elsewhere), or None when
        none of them is restricted. A row whose choices are used up is left free."""
        masks = [self.allowed(i) for i in rows]
        if not any(masks):
            return None
        out = torch.zeros((len(rows), vocab))
        for b, allowed in enumerate(masks):
            if allowed:
                out[b] = float("-inf")
                out[b, sorted(allowed)] = 0.0
        return out.to(device)

    def advance(self, rows: Sequence[int], tokens: Sequence[int]) -> None:
        """The live `rows` sampled `tokens`: keep the choices that continue with them."""
        for i, t in zip(rows, tokens):
            left, at = self.left[i], self.sampled[i]
            if left is not None:
                self.left[i] = [c for c in left if len(c) > at and c[at] == t]
            self.sampled[i] = at + 1
