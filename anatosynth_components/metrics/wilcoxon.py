"""One-sided Wilcoxon signed-rank test of paired scores (ACIS Sec. 3.1: "a one-sided Wilcoxon
signed-rank test, considering p < 0.05 as the threshold for statistical significance").

:func:`one_sided_wilcoxon` tests whether ``treatment`` is better than ``baseline`` on the same
cases (test subjects or test slices): H1 "treatment - baseline > 0" for a score where higher is
better (Dice, PSNR, SSIM), "< 0" where lower is better (surface distance).  It is
``scipy.stats.wilcoxon(treatment - baseline, alternative=...)`` with scipy's defaults (exact
distribution for small samples without ties or zeros, zero differences dropped, ``"wilcox"``).

Example:
    >>> result = one_sided_wilcoxon([0.9, 0.8, 0.85, 0.95, 0.7], [0.8, 0.7, 0.8, 0.9, 0.6])
    >>> result["p"], result["alternative"], result["n"]
    (0.03125, 'greater', 5)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import wilcoxon

from anatosynth_components.errors import DataError


def one_sided_wilcoxon(
    treatment: Sequence[float], baseline: Sequence[float], higher_is_better: bool = True
) -> dict[str, float | int | str | None]:
    """Paired one-sided Wilcoxon signed-rank test.

    Args:
        treatment, baseline: scores of the same cases, in the same order.
        higher_is_better: the direction of the score (True: H1 treatment > baseline).

    Returns:
        ``{"p", "statistic", "n", "alternative", "note"}``; ``p`` is NaN with a ``note`` when the
        test is undefined (fewer than one non-zero difference, or non-finite scores).

    Raises:
        DataError: the two sequences differ in length.
    """
    t = np.asarray([float(v) for v in treatment], dtype=np.float64)
    b = np.asarray([float(v) for v in baseline], dtype=np.float64)
    if t.shape != b.shape:
        raise DataError(
            f"Wilcoxon test: {len(t)} treatment scores vs {len(b)} baseline scores; they must be paired"
        )
    alternative = "greater" if higher_is_better else "less"
    out: dict[str, float | int | str | None] = {
        "p": math.nan,
        "statistic": math.nan,
        "n": int(t.size),
        "alternative": alternative,
        "note": None,
    }
    if not (np.isfinite(t).all() and np.isfinite(b).all()):
        out["note"] = "non-finite scores"
        return out
    diff = t - b
    if not np.any(diff != 0):
        out["note"] = "no non-zero paired difference"
        return out
    result = wilcoxon(diff, alternative=alternative)
    out["p"], out["statistic"] = float(result.pvalue), float(result.statistic)
    return out
