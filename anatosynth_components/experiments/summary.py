"""Summaries of per-subject values: mean and (population) standard deviation, formatted for tables.

Non-finite values are kept out of the mean and counted, so a table never hides them.

Example:
    >>> summarize([1.0, 2.0, 3.0])
    {'mean': 2.0, 'std': 0.816496580927726, 'n': 3, 'non_finite': 0}
    >>> mean_std([0.9, 0.8], digits=3)
    '0.850 ± 0.050'
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def finite(values: Sequence[float]) -> np.ndarray:
    array = np.asarray([float(v) for v in values], dtype=np.float64)
    return array[np.isfinite(array)]


def summarize(values: Sequence[float]) -> dict[str, float | int]:
    """``{"mean", "std", "n", "non_finite"}`` over the finite values (std with ddof 0, as the bundles'
    evaluation report); mean and std are NaN when no value is finite."""
    good = finite(values)
    return {
        "mean": float(good.mean()) if good.size else math.nan,
        "std": float(good.std()) if good.size else math.nan,
        "n": int(good.size),
        "non_finite": len(values) - int(good.size),
    }


def mean_std(values: Sequence[float], digits: int = 2, scale: float = 1.0) -> str:
    """``"mean ± std"`` of the finite values (times ``scale``), with a note when some were not finite."""
    s = summarize(values)
    if s["n"] == 0:
        return "n/a"
    text = f"{s['mean'] * scale:.{digits}f} ± {s['std'] * scale:.{digits}f}"
    return text + (f" ({s['non_finite']} non-finite)" if s["non_finite"] else "")
