"""Statistics shared by sweeps, plots and experiment tables.

Kept apart from `jaxmb.sweeps` and `jaxmb.plotting` so that both can use it without importing
each other: sweeps draw plots, and plots draw the intervals sweeps report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["t_interval"]


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """Student's t interval of the mean of `values`; None for fewer than 2 finite values.

    Args:
      values: samples, e.g. one final return per seed; None and non-finite values are dropped.
      confidence: coverage of the interval.

    Returns:
      `(low, high)`, or None when fewer than 2 values remain.
    """
    from scipy import stats  # a dependency of jax itself

    data = np.asarray([v for v in values if v is not None and np.isfinite(v)], np.float64)
    if data.size < 2:
        return None
    half = (
        stats.t.ppf(0.5 + confidence / 2, data.size - 1) * data.std(ddof=1) / math.sqrt(data.size)
    )
    return float(data.mean() - half), float(data.mean() + half)
