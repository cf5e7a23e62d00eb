"""Voronoi tessellation of the voxel grid by seed voxels, and the pseudo-mask values (ACIS Eq. 2).

Every voxel belongs to the cell of its nearest seed in physical space,
``d(x, p)^2 = sum_a (s_a (x_a - p_a))^2`` with the voxel spacing ``s`` in mm, so anisotropic volumes
get the right cells. Eq. 2: ``I^m(x) = I(p_k)`` for ``x`` in the cell ``C(p_k)``.

Two exact methods, both linear in the number of voxels:

* ``"envelope"`` (default): the separable squared-distance transform of Felzenszwalb & Huttenlocher
  (2012), carrying the seed number along, and using that there are few seeds. Pass 1 finds the
  nearest seed within its row along the last axis, only for the rows that hold a seed (prefix
  max / min over the row). In 3D, pass 2 runs along axis 1 with the seeded rows of each plane as
  the only candidates (about 20 per line instead of ``n_1``) and only for the planes that hold a
  seed, giving every voxel of those planes its nearest seed within the plane. The last pass runs
  along axis 0 with the planes (3D) or rows (2D) that hold a seed as candidates. Each of these
  passes is the integer lower envelope of the parabolas ``g_j + s_a^2 (x - j)^2``, which is
  ``min_j`` over all candidates exactly (:mod:`.envelope`: stacks for all lines advanced together
  by NumPy, the first two pops of every step as vector operations over all lines). The last pass
  writes the cell map straight from the stacks; the distances are read off only when asked for.
  On 192 x 192 x 160 with 4096 seeds, one core: about 0.3 s, against 0.45 s for the previous
  version of this module (a dense middle pass and a position-by-position query loop) and 0.56 s
  for SciPy's feature transform.
* ``"edt"``: ``scipy.ndimage.distance_transform_edt(..., sampling=spacing, return_indices=True)``
  on the complement of the seed mask (Maurer et al. 2003). Ties follow SciPy's internal order.

MONAI has no CPU feature transform of its own (``monai.transforms.utils.distance_transform_edt``
calls the same SciPy function on the CPU), hence this module.

Ties (``"envelope"``): a voxel at exactly equal distance from several seeds goes to the one with the
smallest C-order voxel index (the lexicographically smallest ``(p_0, p_1, p_2)``), whatever the
order in which the seeds are listed. Arithmetic is in float64 on integer offsets weighted by
``(s_a / u)^2``, with the unit ``u`` the smallest spacing or 1 mm: equal distances are recognised
exactly whenever the spacings are multiples of 1/1024 of one of these units (isotropic spacing of
any size, 0.7 x 0.7 x 1.4, 0.5 x 1.5 x 2.5 mm, ...): every decision compares the crossing of two
parabolas, a correctly rounded quotient of exact numbers, with an integer, so a crossing exactly on
a voxel is recognised (unless spacing ratios exceed ~1000, when two distinct distances can differ
by less than float64 resolution). For other spacings two distances that differ by less than
float64 rounding (~1e-16 relative) may be taken as equal or not.

Shapes: seeds (N, ndim) integer voxel indices; cell map int32 (H, W[, D]) with values 0..N-1,
``cells[x] = k`` when ``x`` is in the cell of ``seeds[k]``.

Example::

    >>> import numpy as np
    >>> cells, dist2 = nearest_seed((1, 7), np.array([[0, 6], [0, 0]]), spacing=(1.0, 1.0))
    >>> cells.tolist(), dist2.tolist()  # voxel 3 is a tie: the seed at index (0, 0) wins
    ([[1, 1, 1, 1, 0, 0, 0]], [[0.0, 1.0, 4.0, 9.0, 4.0, 1.0, 0.0]])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.ndimage as ndi

from anatosynth_components.acis.pseudomask.envelope import Candidates, build_stacks, emit_labels, walk_queries
from anatosynth_components.checks import check_spacing
from anatosynth_components.errors import ConfigError, DataError

METHODS = ("envelope", "edt")


def check_seeds(seeds: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``seeds`` as an (N, ndim) int64 array of distinct in-bounds voxel indices; ``DataError`` otherwise."""
    seeds = np.asarray(seeds)
    if seeds.ndim != 2 or seeds.shape[1] != len(shape) or seeds.shape[0] < 1:
        raise DataError(f"seeds must be an (N >= 1, {len(shape)}) array of voxel indices, got {seeds.shape}")
    if not np.issubdtype(seeds.dtype, np.integer):
        raise DataError(f"seeds must be integer voxel indices, got dtype {seeds.dtype}")
    seeds = seeds.astype(np.int64)
    if np.any(seeds < 0) or np.any(seeds >= np.asarray(shape)):
        raise DataError(f"seeds must lie inside the image of shape {shape}")
    flat = np.ravel_multi_index(tuple(seeds.T), shape)
    if np.unique(flat).size != flat.size:
        raise DataError("seeds must be distinct voxels")
    return seeds


def nearest_seed(
    shape: tuple[int, ...],
    seeds: np.ndarray,
    spacing: float | Sequence[float] | None = None,
    method: str = "envelope",
) -> tuple[np.ndarray, np.ndarray]:
    """Cell map and squared distance to the nearest seed of every voxel of a 2D / 3D grid.

    Args:
        shape: (H, W) or (H, W, D).
        seeds: (N, ndim) distinct voxel indices.
        spacing: mm per voxel along each axis (None: 1 mm).
        method: ``"envelope"`` or ``"edt"`` (see the module docstring).

    Returns:
        ``(cells, dist2)``: int32 cell map (index into ``seeds``) and float64 squared distance in
        mm^2, both of ``shape``.
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3):
        raise DataError(f"nearest_seed needs a 2D or 3D grid, got shape {shape}")
    seeds = check_seeds(seeds, shape)
    cells, dist2 = _voronoi(shape, seeds, check_spacing(spacing, len(shape)), method, with_distance=True)
    assert dist2 is not None
    return cells, dist2


def _voronoi(
    shape: tuple[int, ...], seeds: np.ndarray, spacing: np.ndarray, method: str, with_distance: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    if method == "envelope":
        return _envelope_voronoi(shape, seeds, spacing, with_distance)
    if method == "edt":
        return _edt_voronoi(shape, seeds, spacing, with_distance)
    raise ConfigError(f"voronoi_method must be one of {', '.join(METHODS)}, got {method!r}")


def voronoi_cells(
    shape: tuple[int, ...],
    seeds: np.ndarray,
    spacing: float | Sequence[float] | None = None,
    method: str = "envelope",
) -> np.ndarray:
    """Cell map only: int32 array of ``shape`` with ``cells[x] = k`` for the nearest seed ``seeds[k]``."""
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3):
        raise DataError(f"voronoi_cells needs a 2D or 3D grid, got shape {shape}")
    seeds = check_seeds(seeds, shape)
    return _voronoi(shape, seeds, check_spacing(spacing, len(shape)), method, with_distance=False)[0]


def voronoi_fill(
    image: np.ndarray,
    seeds: np.ndarray,
    spacing: float | Sequence[float] | None = None,
    method: str = "envelope",
) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 2: every voxel takes the value of ``image`` at its nearest seed.

    Returns:
        ``(mask, cells)``: ``mask`` of ``image``'s shape and dtype, ``cells`` the int32 cell map.
    """
    image = np.asarray(image)
    seeds = check_seeds(seeds, image.shape)
    cells = voronoi_cells(image.shape, seeds, spacing, method)
    values = image[tuple(seeds.T)]  # (N,) value of every seed
    return values[cells], cells


# --- "edt": SciPy's feature transform -------------------------------------------------------------


def _edt_voronoi(
    shape: tuple[int, ...], seeds: np.ndarray, spacing: np.ndarray, with_distance: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    background = np.ones(shape, dtype=bool)
    background[tuple(seeds.T)] = False
    index = ndi.distance_transform_edt(
        background, sampling=spacing, return_distances=False, return_indices=True
    )
    lookup = np.full(shape, -1, dtype=np.int32)
    lookup[tuple(seeds.T)] = np.arange(len(seeds), dtype=np.int32)
    cells = lookup[tuple(index)]
    if not with_distance:
        return cells, None
    dist2 = np.zeros(shape)
    grid = np.indices(shape, sparse=True)
    for a in range(len(shape)):
        dist2 += ((index[a] - grid[a]) * spacing[a]) ** 2
    return cells, dist2


# --- "envelope": separable lower envelopes -------------------------------------------------------


def _envelope_voronoi(
    shape: tuple[int, ...], seeds: np.ndarray, spacing: np.ndarray, with_distance: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """Passes along the last axis, then (3D) the middle axis, then axis 0 (see the module docstring).

    Every pass breaks ties towards the smaller coordinate along its axis (the smaller position in a
    row, the smaller ``j`` in an envelope); with the passes run from the last axis to the first the
    overall rule is the smallest C-order index, whatever the order of ``seeds``."""
    unit = _unit(spacing)
    weights = (spacing / unit) ** 2  # squared distances are computed in units of unit^2
    extent = weights * (np.asarray(shape, dtype=np.float64) - 1) ** 2  # largest term per axis
    rows, row_index = np.unique(np.ravel_multi_index(tuple(seeds[:, :-1].T), shape[:-1]), return_inverse=True)
    ids = np.arange(len(seeds), dtype=np.int32)
    row_g, row_lab = _nearest_in_rows(row_index, seeds[:, -1], ids, len(rows), shape[-1], weights[-1])
    if len(shape) == 2:
        values = np.empty((len(rows) + 1, shape[1]))
        values[:-1] = row_g
        lines = Candidates(
            values, row_lab, rows.astype(np.float64)[:, None], np.array([len(rows)]), shape[1], extent[1]
        )
    else:
        g2, lab2, planes = _plane_pass(shape, rows, row_g, row_lab, weights[1], extent[2])
        lines = Candidates(
            g2.reshape(len(planes) + 1, -1),
            lab2.reshape(len(planes), -1),
            planes.astype(np.float64)[:, None],
            np.array([len(planes)]),
            shape[1] * shape[2],
            extent[1] + extent[2],
        )
    cells, dist2 = _last_pass(lines, weights[0], shape, with_distance)
    if dist2 is not None:
        dist2 *= unit * unit
    return cells, dist2


def _plane_pass(
    shape: tuple[int, ...],
    rows: np.ndarray,
    row_g: np.ndarray,
    row_lab: np.ndarray,
    weight: float,
    bound: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """3D pass along axis 1, for the planes ``planes`` (sorted) that hold a seed.

    The rows holding a seed are the candidates; the lines of one plane (one per ``i_2``) form a group
    sharing the rows' positions. Returns ``g2`` (planes + 1, n1, n2) float64 (last plane: scratch
    for the next pass), ``lab2`` (planes, n1, n2) int32 and ``planes``.
    """
    n0, n1, n2 = shape
    r0, r1 = np.unravel_index(rows, (n0, n1))  # rows are sorted: by plane, then by r1
    planes, first, counts = np.unique(r0, return_index=True, return_counts=True)
    order = np.argsort(-counts, kind="stable")  # groups: planes by decreasing number of rows
    group_of_plane = np.empty(len(planes), dtype=np.int64)
    group_of_plane[order] = np.arange(len(planes))
    rank = np.arange(len(rows)) - np.repeat(first, counts)  # candidate number within the plane
    group = np.repeat(group_of_plane, counts)
    depth = int(counts.max())
    values = np.empty((depth + 1, len(planes), n2))
    labels = np.empty((depth, len(planes), n2), dtype=np.int32)
    positions = np.zeros((depth, len(planes)))
    values[rank, group], labels[rank, group], positions[rank, group] = row_g, row_lab, r1
    cand = Candidates(
        values.reshape(depth + 1, -1), labels.reshape(depth, -1), positions, counts[order], n2, bound
    )
    stacks = build_stacks(cand, weight, n1, keep_values=True)
    g2 = np.empty((len(planes) + 1, n1, n2))
    lab2 = np.empty((len(planes), n1, n2), dtype=np.int32)
    walk_queries(stacks, cand, weight, n1, lab2, g2[:-1], out_rows=order)
    return g2, lab2, planes


def _last_pass(
    cand: Candidates, weight: float, shape: tuple[int, ...], with_distance: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Pass along axis 0 (one group: all lines share the candidates' positions): cells and
    (with_distance) squared distances, both of ``shape``."""
    n0 = shape[0]
    stacks = build_stacks(cand, weight, n0)
    cells = np.empty(shape, dtype=np.int32)
    if not with_distance:
        emit_labels(stacks, cand.labels, n0, cells.reshape(n0, -1))
        return cells, None
    dist2 = np.empty(shape)
    walk_queries(stacks, cand, weight, n0, cells.reshape(n0, -1), dist2.reshape(n0, -1))
    return cells, dist2


def _unit(spacing: np.ndarray) -> float:
    """A length unit in which every spacing is a small dyadic rational (so squared distances are
    exact in float64): the smallest spacing (isotropic: all 1; 0.7 x 0.7 x 1.4: 1, 1, 2), else 1 mm
    (0.5, 1.5, 2.5 mm), else the smallest spacing anyway."""
    for unit in (float(spacing.min()), 1.0):
        scaled = spacing / unit * 1024
        if np.all(scaled == np.round(scaled)) and np.all(scaled < 2**20):
            return unit
    return float(spacing.min())


def _nearest_in_rows(
    row_index: np.ndarray, position: np.ndarray, ids: np.ndarray, num_rows: int, n: int, weight: float
) -> tuple[np.ndarray, np.ndarray]:
    """1-D pass on the rows that hold seeds: (num_rows, n) squared distance to, and number of, the
    nearest seed in the row (ties: the smaller position)."""
    slot = np.full((num_rows, n), -1, dtype=np.int32)
    slot[row_index, position] = ids
    ar = np.arange(n, dtype=np.int32)
    present = slot >= 0
    left = np.where(present, ar, np.int32(-(2**30)))
    np.maximum.accumulate(left, axis=1, out=left)
    right = np.minimum.accumulate(np.where(present, ar, np.int32(2**30))[:, ::-1], axis=1)[:, ::-1]
    to_left, to_right = ar - left, right - ar
    take_left = to_left <= to_right
    nearest = np.where(take_left, left, right)
    d = np.minimum(to_left, to_right).astype(np.float64)
    return weight * d * d, np.take_along_axis(slot, nearest, axis=1)
