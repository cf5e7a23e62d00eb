"""Voronoi tessellation of the voxel grid by seed voxels, and the pseudo-mask values (ACIS Eq. 2).

Every voxel belongs to the cell of its nearest seed in physical space,
``d(x, p)^2 = sum_a (s_a (x_a - p_a))^2`` with the voxel spacing ``s`` in mm, so anisotropic volumes
get the right cells. Eq. 2: ``I^m(x) = I(p_k)`` for ``x`` in the cell ``C(p_k)``.

Two exact methods, both linear in the number of voxels:

* ``"envelope"`` (default): the separable squared-distance transform of Felzenszwalb & Huttenlocher
  (2012), carrying the seed number along. Pass 1 finds the nearest seed of every voxel within its
  row along the last axis (only rows that hold a seed); each further pass takes, along one axis,
  the lower envelope of the parabolas ``g_j + s_a^2 (x - j)^2`` left by the previous pass, which is
  ``min_j`` over all candidates exactly. The envelope is built for all lines of the volume at once
  with NumPy (a Python loop over the positions of the axis, vector operations across lines), about
  2x faster than SciPy's feature transform on 192 x 192 x 160 and with a fixed tie rule.
* ``"edt"``: ``scipy.ndimage.distance_transform_edt(..., sampling=spacing, return_indices=True)``
  on the complement of the seed mask (Maurer et al. 2003). Ties follow SciPy's internal order.

MONAI has no CPU feature transform of its own (``monai.transforms.utils.distance_transform_edt``
calls the same SciPy function on the CPU), hence this module.

Ties (``"envelope"``): a voxel at exactly equal distance from several seeds goes to the one with the
smallest C-order voxel index (the lexicographically smallest ``(p_0, p_1, p_2)``), whatever the
order in which the seeds are listed. Arithmetic is in float64 on integer offsets weighted by
``(s_a / u)^2``, with the unit ``u`` the smallest spacing or 1 mm: equal distances are recognised
exactly whenever the spacings are multiples of 1/1024 of one of these units (isotropic spacing of
any size, 0.7 x 0.7 x 1.4, 0.5 x 1.5 x 2.5 mm, ...); for other spacings two distances that differ by
less than float64 rounding (~1e-16 relative) may be taken as equal or not.

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

from anatosynth_components.errors import ConfigError, DataError
from anatosynth_components.pseudomask._checks import check_spacing

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
    """Every pass breaks ties towards the smaller coordinate along its axis (the smaller position in a
    row, the smaller ``j`` in an envelope); with the passes run from the last axis to the first the
    overall rule is the smallest C-order index, whatever the order of ``seeds``."""
    ndim = len(shape)
    size = int(np.prod(shape))
    unit = _unit(spacing)
    weights = (spacing / unit) ** 2  # squared distances are computed in units of unit^2
    ids = np.arange(len(seeds), dtype=np.int32)
    rows, row_index = np.unique(np.ravel_multi_index(tuple(seeds[:, :-1].T), shape[:-1]), return_inverse=True)
    row_g, row_lab = _nearest_in_rows(row_index, seeds[:, -1], ids, len(rows), shape[-1], weights[-1])
    index_type = np.int32 if size < 2**31 else np.int64
    work = (np.empty(size), np.empty(size), np.empty(size, dtype=index_type))  # z, h, prev: shared
    if ndim == 2:
        g = np.full(shape, np.inf)
        lab = np.empty(shape, dtype=np.int32)
        g[rows], lab[rows] = row_g, row_lab
        dist2 = np.empty(shape) if with_distance else None
        cells = np.empty(shape, dtype=np.int32)
        _envelope_pass(g, lab, weights[0], dist2, cells, work, whole_rows=True)
    else:
        n0, n1, n2 = shape
        r0, r1 = np.unravel_index(rows, (n0, n1))
        g = np.full((n1, n0, n2), np.inf)  # pass 2 runs along axis 1: positions first
        lab = np.empty((n1, n0, n2), dtype=np.int32)
        g[r1, r0], lab[r1, r0] = row_g, row_lab
        g2, lab2 = np.empty(shape), np.empty(shape, dtype=np.int32)
        _envelope_pass(
            g.reshape(n1, -1),
            lab.reshape(n1, -1),
            weights[1],
            g2.transpose(1, 0, 2),
            lab2.transpose(1, 0, 2),
            work,
        )
        dist2 = g.reshape(shape) if with_distance else None  # pass 2's inputs are free: reuse them
        cells = lab.reshape(shape)
        _envelope_pass(
            g2.reshape(n0, -1), lab2.reshape(n0, -1), weights[0], dist2, cells, work, whole_rows=True
        )
    if dist2 is not None:
        dist2 *= unit * unit
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


def _envelope_pass(
    g: np.ndarray,
    lab: np.ndarray,
    weight: float,
    out_g: np.ndarray | None,
    out_lab: np.ndarray,
    work: tuple[np.ndarray, np.ndarray, np.ndarray],
    whole_rows: bool = False,
) -> None:
    """``out_g[i, l] = min_j g[j, l] + weight (i - j)^2`` and the ``lab`` of the minimising ``j``.

    ``g``, ``lab``: (n, L) C-contiguous, position ``j`` first, ``L`` lines; ``g = inf`` marks "no
    candidate". ``out_g``, ``out_lab``: (n, *line_shape) arrays (views allowed) with prod = L;
    ``out_g`` None skips the distances.
    ``work``: flat float64, float64 and integer buffers of at least n L elements. ``whole_rows``:
    the caller knows every row ``g[j]`` is either all finite or all inf (saves a test per row).
    Per line the lower envelope of the parabolas is a stack (Felzenszwalb & Huttenlocher), stored as
    linked lists in (n, L) arrays: ``z[j]`` is the left end of parabola ``j``'s interval,
    ``h[j] = g[j] + weight j^2``, ``prev[j]`` the flat index of the element below. On a tie the
    smaller ``j`` wins: a parabola whose interval would be a single point is dropped (``s <= z``),
    and a query exactly at an interval's left end goes to the left neighbour.
    """
    n, num_lines = g.shape
    line_shape = out_lab.shape[1:]
    z_flat, h_flat, prev_flat = (w[: n * num_lines] for w in work)
    z_all, h_all, prev = (w.reshape(n, num_lines) for w in (z_flat, h_flat, prev_flat))
    top = np.full(num_lines, -1, dtype=np.int64)  # flat index of the top element (-1: empty)
    top_pos = np.full(num_lines, -1.0)
    top_h = np.full(num_lines, np.inf)  # inf: empty stack, so s = -inf
    top_z = np.full(num_lines, np.nan)  # nan: an empty stack never pops
    two_w, inv_lines = 2.0 * weight, 1.0 / num_lines
    lines_all = np.arange(num_lines, dtype=np.int64)
    d_dense = np.empty(num_lines)
    aliased = False  # top_h / top_z are rows of h_all / z_all (dense steps write no copies)
    for q in range(n):
        if whole_rows:
            if not g[q, 0] < np.inf:
                continue
            dense = True
        else:
            finite = g[q] < np.inf
            m = int(np.count_nonzero(finite))
            if m == 0:
                continue
            dense = m == num_lines
        if dense:  # the per-line state is updated in place
            lines = lines_all
            hq = np.add(g[q], weight * q * q, out=h_all[q])
            t, tp, th, tz = top, top_pos, top_h, top_z
            s = np.subtract(hq, th, out=z_all[q])
            s /= np.multiply(np.subtract(q, tp, out=d_dense), two_w, out=d_dense)
        else:
            if aliased:  # sparse steps write into the state: it must not share memory with h_all, z_all
                top_h, top_z, aliased = top_h.copy(), top_z.copy(), False
            lines = np.flatnonzero(finite)
            hq = g[q, lines] + weight * q * q
            t, tp, th, tz = top[lines], top_pos[lines], top_h[lines], top_z[lines]
            s = (hq - th) / (two_w * (q - tp))
        pop = np.flatnonzero(s <= tz)  # the bottom (z = -inf) is never popped
        while pop.size:
            below = prev_flat[t[pop]]
            h_below, z_below = h_flat[below], z_flat[below]
            pos = np.rint((below - lines[pop]) * inv_lines)
            s_new = (hq[pop] - h_below) / (two_w * (q - pos))
            t[pop], tp[pop], th[pop], tz[pop], s[pop] = below, pos, h_below, z_below, s_new
            pop = pop[s_new <= z_below]
        if dense:
            # pops wrote into th / tz only at popped elements, which are never read again, so the
            # rows q of h_all and z_all can serve directly as the new per-line state
            prev[q] = t
            np.add(lines_all, q * num_lines, out=top)
            top_pos.fill(q)
            top_h, top_z, aliased = hq, s, True
        else:
            prev[q, lines], z_all[q, lines], h_all[q, lines] = t, s, hq
            top[lines], top_pos[lines], top_h[lines], top_z[lines] = lines + q * num_lines, q, hq, s
    # queries from the right end: walk each stack down as i decreases
    valid = top >= 0
    cur = np.where(valid, top, 0)
    cur_z = np.where(valid, z_flat[cur], -np.inf)
    cur_g = np.where(valid, g.reshape(-1)[cur], np.inf)
    lab_flat, g_flat = lab.reshape(-1), g.reshape(-1)
    cur_lab = np.where(valid, lab_flat[cur], -1).astype(np.int32)
    cur_pos = np.where(valid, top_pos, 0.0)
    tmp = np.empty(num_lines)
    out_g_2d = out_g.reshape(n, num_lines) if out_g is not None and out_g.flags.c_contiguous else None
    for i in range(n - 1, -1, -1):
        move = np.flatnonzero(cur_z >= i)
        while move.size:
            below = prev_flat[cur[move]]
            z_below = z_flat[below]
            cur[move], cur_z[move], cur_g[move], cur_lab[move] = (
                below,
                z_below,
                g_flat[below],
                lab_flat[below],
            )
            cur_pos[move] = np.rint((below - move) * inv_lines)
            move = move[z_below >= i]
        out_lab[i] = cur_lab.reshape(line_shape)
        if out_g is None:
            continue
        np.subtract(i, cur_pos, out=tmp)
        tmp *= tmp
        tmp *= weight
        if out_g_2d is not None:
            np.add(tmp, cur_g, out=out_g_2d[i])
        else:
            tmp += cur_g
            out_g[i] = tmp.reshape(line_shape)
