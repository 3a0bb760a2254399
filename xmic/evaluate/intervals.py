"""95 % bootstrap intervals over test clips for top-1 and for the harmonic mean of two test sets.

A clip is right or wrong, so resampling a test set's ``n`` clips with replacement gives a number of right clips
that is Binomial(n, top-1): the bootstrap of a top-1 needs only the top-1 and ``n``, not the clips themselves. The
harmonic mean resamples its two test sets (within and cross) independently, as they hold different clips.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Bootstrap draws per interval; fixed seed, so an interval is the same on every run.
DRAWS = 4000
SEED = 0
LEVEL = 0.95


def _draws(top1: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """``(DRAWS,)`` resampled top-1 fractions of a test set of ``n`` clips."""
    return rng.binomial(int(n), min(max(float(top1), 0.0), 1.0), size=DRAWS) / int(n)


def _hm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    total = a + b
    return np.divide(2 * a * b, total, out=np.zeros_like(total), where=total > 0)


def bootstrap_interval(parts: Sequence[tuple[float, int]]) -> tuple[float, float] | None:
    """The 95 % bootstrap interval, in percent, of one top-1 (one part) or of the hm of two (within, cross).

    Args:
        parts: ``(top-1 fraction, test clips)`` per test set; one or two of them.

    Returns:
        ``(low, high)`` in percent, or None when a part has no clips or there are not one or two parts.
    """
    if len(parts) not in (1, 2) or any(n is None or int(n) <= 0 or p is None or np.isnan(p) for p, n in parts):
        return None
    rng = np.random.default_rng(SEED)
    draws = [_draws(p, n, rng) for p, n in parts]
    values = draws[0] if len(draws) == 1 else _hm(*draws)
    tail = (1.0 - LEVEL) / 2
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return 100.0 * float(low), 100.0 * float(high)


def seeds_interval(mean: float, per_seed: Sequence[tuple[float, tuple[float, float]]]) -> tuple[float, float]:
    """The interval of a mean over seeds: each seed's interval offsets averaged, around ``mean`` (percent).

    The seeds are evaluated on the same clips, so their clip noise is not independent; averaging the offsets
    keeps the width of one seed's interval instead of shrinking it as independent draws would.

    Args:
        mean: the mean over seeds.
        per_seed: ``(value, (low, high))`` of each seed.
    """
    below = float(np.mean([v - lo for v, (lo, _) in per_seed]))
    above = float(np.mean([hi - v for v, (_, hi) in per_seed]))
    return mean - below, mean + above
