"""Density-weighted sampling of N distinct seed voxels (ACIS Sec. 2.1: "Following f as the spatial
probability distribution, we randomly sample N points").

The draw is *successive sampling without replacement*: the first seed is voxel ``i`` with probability
``w_i / sum(w)``, each next one is drawn the same way from the voxels not yet chosen. Two exact
implementations of that one distribution, used in turn by :func:`sample_without_replacement`:

1. Draw with replacement (inverse CDF: ``searchsorted`` of uniforms in ``cumsum(w)``) and keep the
   first occurrence of every voxel, in draw order. Given the voxels kept so far, the next new one is
   distributed as ``w`` restricted to the others, which is the definition above. Cost O(M) for the
   cumulative sum plus O(N log M); this is the fast path when N is small next to the number of
   voxels that carry the mass.
2. When a batch of draws yields few new voxels (the mass sits on voxels already chosen), the rest
   is drawn by the exponential race (Gumbel-top-k): keys ``E_i / w_i`` with ``E_i ~ Exp(1)``, the
   ``k`` smallest keys among the voxels not yet chosen, in increasing key order. Continuing from the
   voxels already drawn is exact because successive sampling restarted on the remaining voxels is
   the conditional law of the rest.

Both are driven by one ``numpy.random.Generator``, so a fixed seed gives a fixed result.

Example::

    >>> import numpy as np
    >>> w = np.array([0.0, 1.0, 1.0, 8.0])
    >>> idx = sample_without_replacement(w, 2, np.random.default_rng(0))
    >>> sorted(idx.tolist()) in ([1, 3], [2, 3], [1, 2])
    True
"""

from __future__ import annotations

import numpy as np

from anatosynth_components.checks import check_positive_int
from anatosynth_components.errors import DataError

#: a batch of draws with replacement that yields fewer new voxels than this share of its size
#: hands over to the exponential race
MIN_YIELD = 0.25


def sample_without_replacement(
    weights: np.ndarray, num: int, rng: np.random.Generator, name: str = "image"
) -> np.ndarray:
    """Draw ``num`` distinct flat indices of ``weights`` (any shape, finite, >= 0), in draw order.

    Raises:
        ConfigError: ``num`` < 1.
        DataError: ``num`` exceeds the number of voxels (or of voxels with nonzero weight); the
            message gives both numbers and names ``name``.
    """
    num = check_positive_int("num_points", num)
    w = np.asarray(weights).reshape(-1)
    if not np.issubdtype(w.dtype, np.floating):
        w = w.astype(np.float64)
    if num > w.size:
        raise DataError(f"{name}: num_points {num} exceeds the number of voxels {w.size}")
    cdf = np.cumsum(w, dtype=np.float64)
    total = float(cdf[-1])
    if not np.isfinite(total) or float(w.min()) < 0:
        raise DataError(f"{name}: sampling weights must be finite and >= 0")
    positive = int(np.count_nonzero(w))
    if num > positive:
        raise DataError(
            f"{name}: num_points {num} exceeds the {positive} voxels with nonzero sampling probability "
            f"(of {w.size}); lower num_points or raise floor"
        )
    last = int(np.searchsorted(cdf, total, side="left"))  # the last voxel with nonzero weight
    taken = np.zeros(w.size, dtype=bool)
    parts: list[np.ndarray] = []
    need = num
    while need > 0:
        batch = max(2 * need, 64)
        draws = np.searchsorted(cdf, rng.random(batch) * total, side="right")
        np.minimum(draws, last, out=draws)  # guards u * total rounding up to total
        _, first = np.unique(draws, return_index=True)
        fresh = draws[np.sort(first)]
        fresh = fresh[~taken[fresh]][:need]
        taken[fresh] = True
        parts.append(fresh)
        need -= fresh.size
        if need > 0 and fresh.size < MIN_YIELD * batch:
            parts.append(_exponential_race(w, need, rng, taken))
            need = 0
    return np.concatenate(parts).astype(np.int64)


def _exponential_race(w: np.ndarray, num: int, rng: np.random.Generator, taken: np.ndarray) -> np.ndarray:
    """The ``num`` smallest keys ``E / w`` among voxels not ``taken`` (zero weight: key +inf), by key."""
    keys = rng.standard_exponential(w.size)
    with np.errstate(divide="ignore"):
        keys /= w  # float64 keys: no ties in practice
    keys[taken] = np.inf
    chosen = np.argpartition(keys, num - 1)[:num] if num < keys.size else np.arange(keys.size)
    return chosen[np.argsort(keys[chosen], kind="stable")]
