"""Physiological density (ACIS Sec. 2.1, Eq. 1): a Gaussian KDE of the Canny edge points on the voxel grid.

Eq. 1: ``f_i = (1/n) sum_j K(d(x_i, x^_j) / h)`` with ``K(u) = exp(-u^2 / 2) / sqrt(2 pi)`` (the
1-D normal density applied to the Euclidean distance, exactly as printed; note that it has no
``1 / h^d`` factor, so ``f`` is a density only up to a constant, which does not matter for sampling),
``x^_j`` the ``n`` edge points (all of them, or a uniform random subset), ``h`` the bandwidth in mm.

Exact evaluation in linear time: ``exp(-d^2 / (2 h^2))`` with ``d^2 = sum_a (s_a (i_a - j_a))^2``
factorises over the axes, so the sum over all edge points at every voxel is the separable filter
``G_0 (x) G_1 (x) ... `` applied to the edge indicator ``e`` (1 at the chosen edge points), with
``G_a[i, k] = exp(-(s_a (i - k))^2 / (2 h^2))`` (``s_a`` the spacing in mm). Hence

    f = (G_0 (x) ... (x) G_{d-1}) e / (n sqrt(2 pi)),

the normalisation constant being ``1 / (n sqrt(2 pi))``. Each ``G_a`` is a full ``n_a x n_a``
matrix (see :mod:`.separable`): no truncation radius, so ``f`` equals the direct sum up to float32
rounding (~1e-6 of the maximum) and kernel entries below 1e-11 that are stored as zeros.

The paper samples "following f"; pure KDE gives zero probability far from any edge. The
``floor`` (default 0.05) mixes in a uniform share: ``p = (1 - floor) f / sum(f) + floor / M``
(``M`` voxels), so every voxel keeps probability >= ``floor / M`` and on average a ``floor``
share of the seeds lands anywhere, the background included.

Default bandwidth: ``DEFAULT_BANDWIDTH_MM = 10`` mm. The paper's value is in its supplementary
(unavailable). 10 mm is about 3 voxels of the 3 mm test CT and 5 of a 2 mm, 192 x 192 x 160 chest
volume: the density spreads over the structures around the edges instead of tracing the edge lines,
and edge-rich structures (spine, kidneys, vessels, bowel) get clearly more and smaller cells than
the liver or the air around the body. Compared on TotalSegmentator's example CT (thorax-abdomen,
3 mm; axial montages of density, cells and pseudo-mask at 5, 10 and 20 mm): 5 mm gives a density that is a
thin copy of the edge map, 20 mm one that is nearly flat over the whole body.

Example::

    >>> import numpy as np
    >>> edges = np.zeros((9, 9), bool); edges[4, 4] = True
    >>> f = edge_density(edges, bandwidth_mm=2.0, spacing=(1.0, 1.0))
    >>> round(float(f[4, 4]), 6), round(float(f[4, 6]), 6)  # K(0), K(1) = 0.398942, 0.241971
    (0.398942, 0.241971)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from anatosynth_components.acis.pseudomask.separable import apply_separable, gaussian_matrix
from anatosynth_components.checks import (
    check_fraction,
    check_positive_float,
    check_positive_int,
    check_spacing,
)

DEFAULT_BANDWIDTH_MM = 10.0
DEFAULT_FLOOR = 0.05
SQRT_2PI = float(np.sqrt(2.0 * np.pi))


def select_edge_points(
    edges: np.ndarray, num_edge_points: int | None, rng: np.random.Generator | None
) -> np.ndarray:
    """Flat indices of the edge points used in Eq. 1, sorted: all of them, or a uniform random subset
    of ``num_edge_points`` drawn without replacement from ``rng`` (all of them when there are fewer)."""
    points = np.flatnonzero(edges)
    if num_edge_points is None:
        return points
    num = check_positive_int("num_edge_points", num_edge_points)
    if num >= points.size:
        return points
    if rng is None:
        raise ValueError("a random generator is needed to draw a subset of the edge points")
    return np.sort(rng.choice(points, size=num, replace=False))


def edge_density(
    edges: np.ndarray,
    bandwidth_mm: float = DEFAULT_BANDWIDTH_MM,
    spacing: float | Sequence[float] | None = None,
    num_edge_points: int | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Eq. 1 at every voxel: ``edges`` bool (H, W[, D]) -> float32 density of the same shape.

    Args:
        edges: binary edge map (e.g. :func:`.edges.canny_edges`).
        bandwidth_mm: kernel bandwidth ``h`` in mm.
        spacing: voxel size in mm per axis (one number for isotropic; None means 1 mm).
        num_edge_points: use a uniform random subset of this many edge points (the paper's ``n``);
            None uses every edge point.
        rng: generator for the subset.

    Returns:
        ``f`` with ``f[i] = (1/n) sum_j exp(-|x_i - x_j|^2 / (2 h^2)) / sqrt(2 pi)``; all zeros
        when there is no edge point (``n = 0``, Eq. 1 undefined; callers fall back to uniform).
    """
    edges = np.asarray(edges, dtype=bool)
    h = check_positive_float("bandwidth_mm", bandwidth_mm)
    spacing_mm = check_spacing(spacing, edges.ndim)
    if num_edge_points is None:  # every edge point: the indicator is the edge map itself
        count = int(np.count_nonzero(edges))
        indicator = edges.astype(np.float32)
    else:
        points = select_edge_points(edges, num_edge_points, rng)
        count = points.size
        indicator = np.zeros(edges.shape, dtype=np.float32)
        indicator.reshape(-1)[points] = 1.0
    if count == 0:
        return np.zeros(edges.shape, dtype=np.float32)
    mats = [gaussian_matrix(n, h / s) for n, s in zip(edges.shape, spacing_mm, strict=True)]
    density = apply_separable(indicator, mats)
    density *= np.float32(1.0 / (count * SQRT_2PI))
    return density


def kde_direct(
    points: np.ndarray,
    queries: np.ndarray,
    bandwidth_mm: float,
    spacing: float | Sequence[float] | None = None,
    block: int = 4096,
) -> np.ndarray:
    """Eq. 1 by the direct sum, in float64: reference for tests and benchmarks.

    Args:
        points: (n, ndim) voxel coordinates of the edge points.
        queries: (m, ndim) voxel coordinates where ``f`` is evaluated.

    Returns:
        (m,) float64 ``f``; O(n m) time.
    """
    points = np.asarray(points, dtype=np.float64)
    queries = np.asarray(queries, dtype=np.float64)
    scale = check_spacing(spacing, points.shape[1]) / float(bandwidth_mm)
    p = points * scale
    q = queries * scale
    out = np.empty(len(q))
    for start in range(0, len(q), block):
        d2 = ((q[start : start + block, None, :] - p[None, :, :]) ** 2).sum(-1)
        out[start : start + block] = np.exp(-0.5 * d2).sum(1)
    return out / (len(p) * SQRT_2PI)


def sampling_weights(density: np.ndarray, floor: float = DEFAULT_FLOOR) -> np.ndarray:
    """Per-voxel sampling weights, mean 1: ``M p = (1 - floor) M f / sum(f) + floor`` (float32).

    A density that sums to zero (no edges) gives uniform weights.
    """
    floor = check_fraction("floor", floor)
    f = np.asarray(density, dtype=np.float32)
    total = float(f.sum(dtype=np.float64))
    if total <= 0 or floor >= 1:
        return np.ones(f.shape, dtype=np.float32)
    weights = np.multiply(f, np.float32((1.0 - floor) * f.size / total))
    weights += np.float32(floor)
    return weights
