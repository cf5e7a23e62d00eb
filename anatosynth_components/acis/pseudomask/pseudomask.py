"""The ACIS pseudo-mask of one image, end to end (paper Sec. 2.1, Eqs. 1-2).

``image -> Canny edges e -> density f (Eq. 1) -> N seeds drawn ~ f, without replacement ->
Voronoi cells of the seeds in physical space -> every cell takes the image value at its seed (Eq. 2)``.

Images without any edge (constant, or thresholds that keep nothing): Eq. 1 is undefined (``n = 0``);
the density is returned as zeros, the seeds are drawn uniformly, and a warning is logged.

Example::

    >>> import numpy as np
    >>> img = np.zeros((32, 32), np.float32); img[8:24, 8:24] = 1.0
    >>> pm = pseudo_mask(img, num_points=20, rng=0, spacing=(1.0, 1.0), bandwidth_mm=3.0)
    >>> pm.mask.shape, pm.cells.shape, pm.seeds.shape, int(pm.cells.max())
    ((32, 32), (32, 32), (20, 2), 19)
    >>> bool(np.all(pm.mask == img[tuple(pm.seeds[pm.cells].transpose(2, 0, 1))]))  # Eq. 2
    True
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from anatosynth_components.acis.pseudomask.density import (
    DEFAULT_BANDWIDTH_MM,
    DEFAULT_FLOOR,
    edge_density,
    sampling_weights,
)
from anatosynth_components.acis.pseudomask.edges import (
    DEFAULT_HIGH_THRESHOLD,
    DEFAULT_LOW_THRESHOLD,
    canny_edges,
    check_canny_args,
)
from anatosynth_components.acis.pseudomask.sampling import sample_without_replacement
from anatosynth_components.acis.pseudomask.voronoi import METHODS as VORONOI_METHODS
from anatosynth_components.acis.pseudomask.voronoi import voronoi_fill
from anatosynth_components.checks import (
    check_fraction,
    check_image,
    check_positive_float,
    check_positive_int,
    check_spacing,
)
from anatosynth_components.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

RandomLike = np.random.Generator | int | None


@dataclass(frozen=True)
class PseudoMask:
    """Result of :func:`pseudo_mask`; ``S`` is the image's spatial shape, (H, W) or (H, W, D).

    Attributes:
        mask: (S) the pseudo-mask, ``image``'s dtype: ``mask[x] = image[seeds[cells[x]]]`` (Eq. 2).
        cells: (S) int32 cell map, values ``0..N-1``.
        seeds: (N, ndim) int64 voxel indices of the seeds, in draw order.
        density: (S) float32 ``f`` of Eq. 1 (zeros when the image has no edges).
        edges: (S) bool Canny edges.
    """

    mask: np.ndarray
    cells: np.ndarray
    seeds: np.ndarray
    density: np.ndarray
    edges: np.ndarray


def pseudo_mask(
    image: np.ndarray,
    num_points: int,
    rng: RandomLike = None,
    *,
    spacing: float | Sequence[float] | None = None,
    bandwidth_mm: float = DEFAULT_BANDWIDTH_MM,
    floor: float = DEFAULT_FLOOR,
    num_edge_points: int | None = None,
    canny_sigma: float = 1.0,
    low_threshold: float = DEFAULT_LOW_THRESHOLD,
    high_threshold: float = DEFAULT_HIGH_THRESHOLD,
    use_quantiles: bool = True,
    edge_method: str = "auto",
    voronoi_method: str = "envelope",
    name: str = "image",
) -> PseudoMask:
    """ACIS pseudo-mask of a 2D (H, W) or 3D (H, W, D) ``image``.

    Args:
        image: finite real values; NaN / inf raise ``DataError``.
        num_points: ``N``, the number of seeds (Voronoi cells), 1 <= N <= number of voxels.
        rng: ``numpy.random.Generator`` or an int seed (None: fresh entropy).
        spacing: voxel size in mm per axis (None: 1 mm); distances in Eq. 1 and the Voronoi cells
            are physical.
        bandwidth_mm: ``h`` of Eq. 1 in mm (see :mod:`.density` for the default).
        floor: uniform share of the sampling probability, in [0, 1] (see :mod:`.density`).
        num_edge_points: Eq. 1's ``n``: a uniform random subset of this many edge points
            (None: all edge points, the exact KDE over ``e``).
        canny_sigma, low_threshold, high_threshold, use_quantiles, edge_method: Canny settings,
            see :mod:`.edges`.
        voronoi_method: ``"envelope"`` or ``"edt"``, see :mod:`.voronoi` (same cells up to ties).
        name: how errors name the image (file or dictionary key).

    Raises:
        ConfigError: a setting out of range (the message names it).
        DataError: not 2D / 3D, non-finite voxels, ``num_points`` above the number of voxels.
    """
    array = check_image(image, name)
    num = check_positive_int("num_points", num_points)
    if num > array.size:
        raise DataError(
            f"{name}: num_points {num} exceeds the number of voxels {array.size} (shape {array.shape})"
        )
    spacing_mm = check_spacing(spacing, array.ndim)
    check_positive_float("bandwidth_mm", bandwidth_mm)
    check_fraction("floor", floor)
    if num_edge_points is not None:
        check_positive_int("num_edge_points", num_edge_points)
    check_canny_args(canny_sigma, low_threshold, high_threshold, use_quantiles, edge_method)
    if voronoi_method not in VORONOI_METHODS:
        raise ConfigError(
            f"voronoi_method must be one of {', '.join(VORONOI_METHODS)}, got {voronoi_method!r}"
        )
    generator = np.random.default_rng(rng)

    edges = canny_edges(array, canny_sigma, low_threshold, high_threshold, use_quantiles, edge_method)
    density = edge_density(edges, bandwidth_mm, spacing_mm, num_edge_points, generator)
    if not edges.any():
        logger.warning(
            "%s: Canny found no edges (constant image, or thresholds that keep nothing); "
            "sampling the %d seeds uniformly",
            name,
            num,
        )
    mask, cells, seeds = sample_and_fill(
        array, density, num, generator, spacing_mm, floor, name, voronoi_method
    )
    return PseudoMask(mask, cells, seeds, density, edges)


def sample_and_fill(
    image: np.ndarray,
    density: np.ndarray,
    num_points: int,
    rng: RandomLike,
    spacing: float | Sequence[float] | None = None,
    floor: float = DEFAULT_FLOOR,
    name: str = "image",
    voronoi_method: str = "envelope",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The second half of :func:`pseudo_mask`, for a density computed beforehand (and cached).

    Args:
        image: (S) values for Eq. 2.
        density: (S) ``f`` of Eq. 1 (all zeros: uniform sampling).

    Returns:
        ``(mask, cells, seeds)`` as in :class:`PseudoMask`.
    """
    image = np.asarray(image)
    density = np.asarray(density)
    if density.shape != image.shape:
        raise DataError(f"{name}: density shape {density.shape} differs from image shape {image.shape}")
    weights = sampling_weights(density, floor)
    flat = sample_without_replacement(weights, num_points, np.random.default_rng(rng), name=name)
    seeds = np.stack(np.unravel_index(flat, image.shape), axis=1).astype(np.int64)
    mask, cells = voronoi_fill(image, seeds, spacing, voronoi_method)
    return mask.reshape(image.shape), cells.reshape(image.shape), seeds
