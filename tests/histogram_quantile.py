"""Prometheus' histogram_quantile in numpy, the reference the metrics API's and the Metrics
dashboard's percentiles are checked against."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def interpolated(counts: Sequence[int] | np.ndarray, bounds: Sequence[float], q: float) -> float:
    """The ``q`` quantile of one histogram: the rank ``q × total`` interpolated linearly in its
    bucket (the first bucket's lower bound 0 when its upper bound is positive; a rank in the
    overflow bucket answers the highest bound)."""
    cum = np.cumsum(counts)
    rank = q * cum[-1]
    i = int(np.searchsorted(cum, rank, side="left"))
    if i == len(bounds):
        return bounds[-1]
    lower = (0.0 if bounds[0] > 0 else bounds[0]) if i == 0 else bounds[i - 1]
    before = 0 if i == 0 else cum[i - 1]
    return float(lower + (bounds[i] - lower) * (rank - before) / counts[i])
