"""Answers restricted to a list of choices (`sampling.admissible_only`).

A row given choices (the admissible actions, written as whole answers) may only sample a token
that continues one of them: at each step the tokens that no remaining choice has next are
masked out, so the row ends having written exactly one choice, token for token as the choice's
own encoding spells it. Rows given none sample freely.

The policy is the restricted one, in the sampler and in the learner: the sampler records each
token's log-probability among the tokens it could draw (`Generation.allowed`), and the learner
scores the same tokens under the same restriction (`response_bias`), so an update that lowers
an answer gives its probability to the other admissible answers, not to text the sampler never
draws.
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
        self.drawn_among: list[list[list[int]] | None] = [
            [] if left is not None else None for left in self.left
        ]
        """Per restricted row, the ids each of its tokens was drawn among ([]: any)."""

    def allowed(self, row: int) -> set[int] | None:
        """Token ids row `row` may sample next (None: any)."""
        left = self.left[row]
        if left is None:
            return None
        at = self.sampled[row]
        return {c[at] for c in left if len(c) > at}

    def bias(self, rows: Sequence[int], vocab: int, device: torch.device) -> torch.Tensor | None:
        """An additive mask for the live `rows`' next token (0 where allowed, -inf elsewhere), or
        None when none of them is restricted; recorded in `drawn_among`. A row whose choices are
        used up is left free."""
        masks = [self.allowed(i) for i in rows]
        for i, allowed in zip(rows, masks):
            if self.drawn_among[i] is not None:
                self.drawn_among[i].append(sorted(allowed or ()))
        bias = response_bias([[sorted(m)] if m else None for m in masks], 1, vocab)
        return None if bias is None else bias[:, 0].to(device)

    def advance(self, rows: Sequence[int], tokens: Sequence[int]) -> None:
        """The live `rows` sampled `tokens`: keep the choices that continue with them."""
        for i, t in zip(rows, tokens):
            left, at = self.left[i], self.sampled[i]
            if left is not None:
                self.left[i] = [c for c in left if len(c) > at and c[at] == t]
            self.sampled[i] = at + 1


def response_bias(
    allowed: Sequence[Sequence[Sequence[int]] | None] | None, width: int, vocab: int
) -> torch.Tensor | None:
    """The additive mask (rows x `width` x `vocab`: 0 where allowed, -inf elsewhere) of
    right-aligned responses whose tokens were drawn among `allowed` (per row: the allowed ids
    of each of its tokens, or None when it was drawn freely); None when no row was restricted."""
    if allowed is None or not any(allowed):
        return None
    held: list[tuple[int, int]] = []  # (row, column) of every restricted token
    keep: list[list[int]] = [[], [], []]  # (row, column, id) of every id allowed there
    for b, row in enumerate(allowed):
        for t, ids in enumerate(row or []):
            if ids:
                at = width - len(row) + t
                held.append((b, at))
                keep[0] += [b] * len(ids)
                keep[1] += [at] * len(ids)
                keep[2] += ids
    out = torch.zeros((len(allowed), width, vocab))
    if held:
        rows_at, columns = zip(*held)
        out[list(rows_at), list(columns)] = float("-inf")
        out[keep[0], keep[1], keep[2]] = 0.0
    return out
