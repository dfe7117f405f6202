"""Intervals for the figures skillvet prints (pure functions).

- `wilson_interval`: a success rate of one run, k wins in n episodes (Wilson score interval:
  it stays inside [0, 1] and is honest at 0/n and n/n, where the normal one collapses).
- `t_interval`: a mean over seeds or tasks (two-sided Student t).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion; (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, {n}], got {successes}")
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def t_interval(values: Sequence[float], confidence: float) -> tuple[float, float]:
    """Two-sided Student t interval of the mean; (-inf, inf) with fewer than two values."""
    from scipy.stats import t

    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return -math.inf, math.inf
    mean = float(x.mean())
    se = float(x.std(ddof=1)) / math.sqrt(len(x))
    half = float(t.ppf(0.5 + confidence / 2, df=len(x) - 1)) * se
    return mean - half, mean + half


def format_rate(successes: int, n: int) -> str:
    """'29.6% [24.2, 35.7] (71/240)': the rate with its 95% Wilson interval, in points."""
    lo, hi = wilson_interval(successes, n)
    rate = successes / n if n else 0.0
    return f"{rate:.1%} [{100 * lo:.1f}, {100 * hi:.1f}] ({successes}/{n})"


def invalid_words(summary: dict, top: int) -> str:
    """The `top` most frequent first words of a summary's invalid actions with their shares of
    all steps: "take 18.5%, go 15.0%"."""
    return ", ".join(f"{w} {v:.1%}" for w, v in list(summary["invalid_by_word"].items())[:top])
