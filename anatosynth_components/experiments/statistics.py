"""Significance of the downstream tables as the ACIS paper tests it (Sec. 3.1: "a significance test
between ACIS and the other-best performing models using a one-sided Wilcoxon signed-rank test,
considering p < 0.05 as the threshold").

Every arm except the baseline is tested twice, on scores paired by *case* (a test subject for
segmentation; a test scan's mean over its slices for reconstruction, since slices of one scan are
not independent):

- ``vs_baseline``: against the baseline arm of the same row;
- ``vs_best_other``: against the best other arm of the row, the competitor with the best mean
  score (highest, or lowest where lower is better), chosen among ``competitors`` (default every
  other arm; the reconstruction table leaves its upper bound out, which is a reference, not a
  competing method).

Table marks (:func:`significance_marks`): ``*`` p < 0.05 against the baseline, ``†`` p < 0.05
against the best other arm.

Example:
    >>> scores = {"baseline": [1, 2, 3, 4, 5, 6], "acis_minus": [2, 3, 4, 5, 6, 7],
    ...           "acis": [3, 4, 5, 6, 7, 8]}
    >>> out = compare_arms(scores, higher_is_better=True)
    >>> out["acis"]["vs_best_other"]["arm"], round(out["acis"]["vs_baseline"]["p"], 4)
    ('acis_minus', 0.0156)
    >>> significance_marks(out["acis"])
    '*†'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from anatosynth_components.errors import ConfigError, DataError
from anatosynth_components.metrics.wilcoxon import one_sided_wilcoxon

ALPHA = 0.05


def best_arm(scores: Mapping[str, Sequence[float]], candidates: Sequence[str], higher_is_better: bool) -> str:
    """The candidate arm with the best mean score (NaN scores left out; ties: the first candidate)."""
    if not candidates:
        raise ConfigError("no competing arm to compare with")
    means = {arm: float(np.nanmean(np.asarray(scores[arm], dtype=float))) for arm in candidates}
    sign = 1.0 if higher_is_better else -1.0
    return max(candidates, key=lambda arm: sign * means[arm] if math.isfinite(means[arm]) else -math.inf)


def compare_arms(
    per_case: Mapping[str, Sequence[float]],
    higher_is_better: bool,
    baseline: str = "baseline",
    competitors: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """One-sided paired Wilcoxon tests of every arm except ``baseline``.

    Args:
        per_case: arm -> scores of the same cases in the same order (one per test subject / scan).
        higher_is_better: the direction of the score (Dice, PSNR, SSIM: True; surface distance: False).
        baseline: the arm every other arm is compared with.
        competitors: the arms that can be "the best other arm" (default: all of ``per_case``).

    Returns:
        ``{arm: {"vs_baseline": test, "vs_best_other": {"arm": best, **test}}}`` with ``test`` the
        dict of :func:`~anatosynth_components.metrics.wilcoxon.one_sided_wilcoxon` (``p``,
        ``statistic``, ``n``, ``alternative``, ``note``).  An arm with no other competitor
        than itself gets ``vs_best_other`` None.

    Raises:
        ConfigError: ``baseline`` or a competitor is not an arm of ``per_case``.
        DataError: arms score different numbers of cases.
    """
    arms = list(per_case)
    if baseline not in per_case:
        raise ConfigError(f"the arms {arms} have no {baseline!r} arm to compare with")
    pool = arms if competitors is None else list(competitors)
    unknown = [a for a in pool if a not in per_case]
    if unknown:
        raise ConfigError(f"competitors {unknown} are not among the arms {arms}")
    sizes = {arm: len(per_case[arm]) for arm in arms}
    if len(set(sizes.values())) > 1:
        raise DataError(f"arms score different numbers of paired cases: {sizes}")
    out: dict[str, dict[str, Any]] = {}
    for arm in arms:
        if arm == baseline:
            continue
        entry: dict[str, Any] = {
            "vs_baseline": one_sided_wilcoxon(per_case[arm], per_case[baseline], higher_is_better)
        }
        others = [a for a in pool if a != arm]
        if others:
            best = best_arm(per_case, others, higher_is_better)
            test = one_sided_wilcoxon(per_case[arm], per_case[best], higher_is_better)
            entry["vs_best_other"] = {"arm": best, **test}
        else:
            entry["vs_best_other"] = None
        out[arm] = entry
    return out


def significant(test: Mapping[str, Any] | None) -> bool:
    """True when ``test`` (a :func:`compare_arms` entry's test) has p < 0.05."""
    return bool(test) and math.isfinite(float(test["p"])) and float(test["p"]) < ALPHA


def significance_marks(entry: Mapping[str, Any] | None) -> str:
    """``*`` when significant against the baseline, ``†`` when against the best other arm."""
    if not entry:
        return ""
    return ("*" if significant(entry["vs_baseline"]) else "") + (
        "†" if significant(entry.get("vs_best_other")) else ""
    )


def p_value_text(entry: Mapping[str, Any] | None) -> str:
    """``p = 0.031 vs baseline; p = 0.22 vs acis_minus`` for a table's p-value list; when the best
    other arm is the baseline itself the one test is named once.

    >>> test = {"p": 0.0123, "note": None}
    >>> p_value_text({"vs_baseline": test, "vs_best_other": {**test, "arm": "baseline"}})
    'p = 0.0123 vs baseline (also the best other arm)'
    """
    if not entry:
        return "—"
    parts = [f"{_p(entry['vs_baseline'])} vs baseline"]
    other = entry.get("vs_best_other")
    if other and other["arm"] == "baseline":
        return parts[0] + " (also the best other arm)"
    if other:
        parts.append(f"{_p(other)} vs {other['arm']}")
    return "; ".join(parts)


def smallest_p_lines(cases: int, what: str) -> list[str]:
    """A note when ``cases`` paired cases (``what``: "test scans") cannot give p < 0.05: a one-sided
    signed-rank test's smallest p-value is 1 / 2^cases.

    >>> smallest_p_lines(4, "test subjects")[0][:44]
    'With 4 test subjects no one-sided signed-ran'
    >>> smallest_p_lines(6, "test subjects")
    []
    """
    if 0.5**cases < ALPHA:
        return []
    return [
        f"With {cases} {what} no one-sided signed-rank p-value can fall below {ALPHA} (the smallest "
        f"possible is 1/2^{cases} = {0.5**cases:.3g}): use more {what} for significance."
    ]


def _p(test: Mapping[str, Any]) -> str:
    p = float(test["p"])
    return f"p = {p:.3g}" if math.isfinite(p) else f"p undefined ({test.get('note')})"
