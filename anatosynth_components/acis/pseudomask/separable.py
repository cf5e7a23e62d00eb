"""Separable filtering of 2D / 3D arrays by one dense matrix product per axis.

A separable linear filter ``y = (M_0 (x) M_1 (x) ... ) x`` is applied axis by axis as
``y[.., i, ..] = sum_k M_a[i, k] x[.., k, ..]``. Written as a matrix product, every pass is one
BLAS GEMM (``(n_a x n_a) @ (n_a x rest)``): for the shapes of medical volumes (n_a <= ~512) this is
faster than ``scipy.ndimage.correlate1d`` with a wide kernel, it is exact (no kernel truncation is
needed: the matrix holds every pair of positions) and the cost does not grow with the kernel width.
Values outside the array are zero (``mode="constant", cval=0``), which is what a sum over points
inside the image needs.

Example::

    >>> import numpy as np
    >>> x = np.zeros((5, 4), np.float32); x[2, 1] = 1
    >>> y = apply_separable(x, [gaussian_matrix(5, 1.0), gaussian_matrix(4, 1.0)])
    >>> round(float(y[2, 1]), 6), round(float(y[3, 1]), 6)  # exp(0), exp(-1/2)
    (1.0, 0.606531)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: kernel entries below this are stored as exact zeros; keeps float32 products away from
#: subnormal numbers (slow on x86) and changes a density by < 1e-11 of one point's peak.
KERNEL_FLOOR = 1e-11


def gaussian_matrix(
    n: int, sigma: float, *, floor: float = KERNEL_FLOOR, normalize_rows: bool = False
) -> np.ndarray:
    """``G[i, k] = exp(-(i - k)^2 / (2 sigma^2))`` for ``i, k`` in ``0..n-1`` as float32, shape (n, n).

    Args:
        n: number of positions along the axis.
        sigma: standard deviation in voxels along this axis (bandwidth in mm / spacing in mm).
        floor: entries below ``floor`` are set to exactly 0.
        normalize_rows: divide each row by its sum (a smoothing filter whose weights sum to one
            inside the image: ``scipy.ndimage.gaussian_filter`` with ``mode="constant"`` followed
            by the bleed-over correction that ``skimage.feature.canny`` applies at the border).
    """
    offsets = np.arange(n, dtype=np.float64)
    matrix = np.exp(-0.5 * ((offsets[:, None] - offsets[None, :]) / float(sigma)) ** 2)
    matrix[matrix < floor] = 0.0
    if normalize_rows:
        matrix /= matrix.sum(axis=1, keepdims=True)
    return matrix.astype(np.float32)


def band_halfwidth(matrix: np.ndarray) -> int:
    """Largest ``|i - k|`` with ``matrix[i, k] != 0``."""
    rows, cols = np.nonzero(matrix)
    return int(np.abs(rows - cols).max()) if rows.size else 0


def apply_axis(x: np.ndarray, matrix: np.ndarray, axis: int, out: np.ndarray | None = None) -> np.ndarray:
    """``out[.., i, ..] = sum_k matrix[i, k] * x[.., k, ..]`` along ``axis`` of a C-contiguous ``x``.

    A banded matrix (a narrow kernel) is applied block by block, each block of output positions
    multiplying only the input positions its band reaches; the result is the same.
    """
    n = x.shape[axis]
    if matrix.shape != (n, n):
        raise ValueError(f"matrix shape {matrix.shape} does not match axis {axis} of length {n}")
    if out is None:
        out = np.empty(x.shape, dtype=np.result_type(x, matrix))
    half = band_halfwidth(matrix)
    block = max(8 * half, 32)
    blocks = [(0, n)] if block + 2 * half >= n // 2 else [(i, min(i + block, n)) for i in range(0, n, block)]
    lead = int(np.prod(x.shape[:axis], dtype=np.int64))
    trail = int(np.prod(x.shape[axis + 1 :], dtype=np.int64))
    for start, stop in blocks:
        lo, hi = max(start - half, 0), min(stop + half, n)
        sub = matrix[start:stop, lo:hi]
        if axis == x.ndim - 1:  # (rest x n) @ (n x n)^T
            dst = out.reshape(-1, n)[:, start:stop]
            np.matmul(x.reshape(-1, n)[:, lo:hi], sub.T, out=dst)
        elif lead == 1:  # one GEMM: (n x n) @ (n x trailing)
            np.matmul(sub, x.reshape(n, trail)[lo:hi], out=out.reshape(n, trail)[start:stop])
        else:  # batched GEMMs: for every leading index p, (n x n) @ (n x trailing)
            np.matmul(
                sub, x.reshape(lead, n, trail)[:, lo:hi], out=out.reshape(lead, n, trail)[:, start:stop]
            )
    return out


def apply_separable(x: np.ndarray, matrices: Sequence[np.ndarray]) -> np.ndarray:
    """Apply ``matrices[a]`` along every axis ``a`` of ``x`` (float32, C order); returns a new array.

    Two buffers are used in turn, so the peak memory is two copies of ``x``.
    """
    if len(matrices) != x.ndim:
        raise ValueError(f"need one matrix per axis ({x.ndim}), got {len(matrices)}")
    src = np.ascontiguousarray(x, dtype=np.float32)
    bufs = [np.empty_like(src), np.empty_like(src) if x.ndim > 1 else None]
    for axis, matrix in enumerate(matrices):
        dst = bufs[axis % 2]
        apply_axis(src, matrix, axis, out=dst)
        src = dst
    return src
