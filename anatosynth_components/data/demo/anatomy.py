"""Shared building blocks of the procedural demo phantoms (brain MRI, abdomen CT, chest CT).

Every phantom is built the same way:

1. :func:`voxel_grid` gives the physical coordinates (mm, RAS+, centred on the field of view) of every voxel;
2. :func:`random_warp` turns them into *anatomical* coordinates of one subject (global anisotropic scaling,
   small rotation, smooth random displacement), so that shapes defined in millimetres in a template space
   and evaluated at these coordinates come out deformed, different between subjects and continuous;
3. a :class:`Canvas` paints tissue classes and labels with signed-distance shapes (:func:`ellipsoid`,
   :func:`capsule`, polylines and vessel trees from :func:`branching_tree`), evaluated only in local
   bounding boxes found on a coarse copy of the coordinates;
4. :func:`render_intensity` maps the tissue classes to intensities (per-subject mean jitter, partial-volume
   blur, correlated texture, white noise, optional multiplicative gain or additive offset field).

Array conventions: volumes have shape ``(X, Y, Z)``; coordinate arrays have shape ``(3, X, Y, Z)`` (or
``(3, ...)`` for any point set); axis 0 points to the patient's Right, axis 1 Anterior, axis 2 Superior.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from anatosynth_components.errors import ConfigError

Vec3 = Sequence[float] | np.ndarray
Slices = tuple[slice, slice, slice]

#: Smallest edge length (voxels) of a phantom volume.
MIN_SIZE = 16


@dataclass(frozen=True)
class Phantom:
    """One procedural subject.

    Attributes:
        image: ``(X, Y, Z)`` float32 in [0, 1] (MRI) or int16 Hounsfield units (CT).
        label: ``(X, Y, Z)`` uint8 label map, 0 = background.
        spacing: voxel size (mm) along the three axes; the affine is ``diag(spacing)`` (RAS+).
        labels: names of the label ids (without background).
    """

    image: np.ndarray
    label: np.ndarray
    spacing: tuple[float, float, float]
    labels: dict[int, str]


def check_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    """Validate a volume shape: three integers, each at least :data:`MIN_SIZE`.

    >>> check_shape((40, 48, 36))
    (40, 48, 36)
    """
    out = tuple(int(n) for n in shape)
    if len(out) != 3 or min(out) < MIN_SIZE:
        raise ConfigError(f"phantom shape must be three sizes >= {MIN_SIZE}, got {tuple(shape)}")
    return out  # type: ignore[return-value]


def spacing_for(fov_mm: Vec3, shape: Sequence[int]) -> tuple[float, float, float]:
    """Voxel size (mm) that fits ``shape`` voxels into the field of view ``fov_mm``.

    >>> spacing_for((160, 224, 192), (80, 112, 96))
    (2.0, 2.0, 2.0)
    """
    return tuple(float(f) / int(n) for f, n in zip(fov_mm, shape, strict=True))  # type: ignore[return-value]


def as_generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    """Return ``rng`` if it is a generator, else ``numpy.random.default_rng(rng)``."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def voxel_grid(shape: Sequence[int], spacing: Vec3) -> np.ndarray:
    """Physical coordinates (mm) of the voxel centres, centred on the centre of the field of view.

    Returns:
        ``(3, X, Y, Z)`` float32; ``grid[:, i, j, k] = ((i, j, k) + 0.5 - shape / 2) * spacing``.

    >>> voxel_grid((2, 2, 2), (1.0, 1.0, 1.0))[:, 0, 0, 0]
    array([-0.5, -0.5, -0.5], dtype=float32)
    """
    axes = [
        (np.arange(n, dtype=np.float32) + 0.5 - n / 2) * np.float32(s)
        for n, s in zip(shape, spacing, strict=True)
    ]
    return np.stack(np.meshgrid(*axes, indexing="ij"))


def rotation_matrix(angles_deg: Vec3) -> np.ndarray:
    """``(3, 3)`` rotation about axes 0, 1, 2 (in this order) by the given angles in degrees."""
    a, b, c = np.deg2rad(np.asarray(angles_deg, dtype=float))
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def axis_frame(direction: Vec3, roll_deg: float = 0.0) -> np.ndarray:
    """``(3, 3)`` rotation whose first column is the unit ``direction`` (for :func:`ellipsoid` ``rotation``).

    ``roll_deg`` turns the two other local axes about ``direction``.

    >>> np.allclose(axis_frame((0, 0, 2))[:, 0], (0, 0, 1))
    True
    """
    d = _unit(np.asarray(direction, dtype=float))
    helper = np.array([0.0, 0.0, 1.0]) if abs(d[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = _unit(np.cross(helper, d))
    e1 = _rotate_about(e1, d, np.deg2rad(roll_deg))
    return np.column_stack([d, e1, np.cross(d, e1)])


def _apply_matrix(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``matrix @ points`` for ``(3, ...)`` points, keeping float32."""
    m = matrix.astype(np.float32)
    return np.stack([m[i, 0] * points[0] + m[i, 1] * points[1] + m[i, 2] * points[2] for i in range(3)])


def random_warp(
    coords: np.ndarray,
    rng: np.random.Generator,
    amplitude_mm: float = 3.0,
    length_mm: float = 40.0,
    scale_jitter: float = 0.08,
    rotation_deg: float = 3.0,
) -> np.ndarray:
    """Anatomical coordinates of a random subject: where to evaluate the template shapes.

    ``q = R @ (p / s) + d(p)``: ``s`` is a per-axis scale drawn in ``1 +- scale_jitter`` (the subject is
    ``s`` times the template), ``R`` a rotation of up to ``rotation_deg`` about each axis and ``d`` a smooth
    displacement field (Gaussian-smoothed noise on a coarse grid of spacing ``length_mm / 2``, RMS
    ``amplitude_mm`` per component, linearly interpolated).

    Args:
        coords: ``(3, ...)`` physical coordinates (mm), e.g. from :func:`voxel_grid`.
        rng: random generator (the only source of randomness).

    Returns:
        ``(3, ...)`` float32, same shape as ``coords``.

    >>> g = voxel_grid((16, 16, 16), (4.0, 4.0, 4.0))
    >>> random_warp(g, np.random.default_rng(0)).shape
    (3, 16, 16, 16)
    """
    scale = 1.0 + rng.uniform(-scale_jitter, scale_jitter, 3)
    rot = rotation_matrix(rng.uniform(-rotation_deg, rotation_deg, 3))
    step = length_mm / 2.0
    half = np.abs(coords.reshape(3, -1)).max(axis=1)
    nodes = np.ceil(half / step).astype(int) + 2
    noise = rng.standard_normal((3, *(2 * nodes + 1)))
    out = _apply_matrix(rot / scale[None, :], coords)
    axes = _grid_axes(coords)
    for k in range(3):
        field = ndimage.gaussian_filter(noise[k], 1.0, mode="nearest")
        field = (field * (amplitude_mm / max(float(field.std()), 1e-6))).astype(np.float32)
        if axes is not None:  # separable linear interpolation: much faster than map_coordinates
            weights = [_linear_weights(a / step + nodes[i], field.shape[i]) for i, a in enumerate(axes)]
            out[k] += _separable_apply(field, weights)
        else:
            idx = [coords[i] / np.float32(step) + np.float32(nodes[i]) for i in range(3)]
            out[k] += ndimage.map_coordinates(field, idx, order=1, mode="nearest")
    return out


def _grid_axes(coords: np.ndarray) -> list[np.ndarray] | None:
    """The three 1-D axes if ``coords`` ``(3, X, Y, Z)`` is an axis-aligned grid (e.g. :func:`voxel_grid`)."""
    if coords.ndim != 4:
        return None
    axes = [coords[0][:, 0, 0], coords[1][0, :, 0], coords[2][0, 0, :]]
    for k, a in enumerate(axes):
        shape = [1, 1, 1]
        shape[k] = -1
        if not np.array_equal(coords[k], np.broadcast_to(a.reshape(shape), coords.shape[1:])):
            return None
    return axes


def _linear_weights(pos: np.ndarray, n: int) -> np.ndarray:
    """``(len(pos), n)`` linear-interpolation weights at fractional node positions (clamped to the ends)."""
    pos = np.clip(np.asarray(pos, dtype=np.float64), 0, n - 1)
    i0 = np.minimum(np.floor(pos).astype(int), n - 2)
    f = (pos - i0).astype(np.float32)
    w = np.zeros((len(pos), n), np.float32)
    rows = np.arange(len(pos))
    w[rows, i0] = 1 - f
    w[rows, i0 + 1] = f
    return w


def _separable_apply(field: np.ndarray, weights: Sequence[np.ndarray]) -> np.ndarray:
    """Apply ``(out_k, in_k)`` matrices along the three axes of ``field`` ``(in_0, in_1, in_2)``."""
    out = np.tensordot(weights[0], field, axes=([1], [0]))
    out = np.tensordot(weights[1], out, axes=([1], [1])).transpose(1, 0, 2)
    return np.ascontiguousarray(np.tensordot(out, weights[2], axes=([2], [1])))


def ellipsoid(
    coords: np.ndarray, centre: Vec3, radii: Vec3, rotation: np.ndarray | None = None
) -> np.ndarray:
    """Approximate signed distance (mm, negative inside) to an ellipsoid.

    First-order estimate ``(rho - 1) / |grad rho|`` with ``rho`` the normalised radius: exact on the surface
    and for spheres, good enough near the surface for shells a few mm thick. A radius of ``inf`` gives an
    elliptic cylinder along that (local) axis.

    Args:
        coords: ``(3, ...)`` anatomical coordinates (mm).
        centre: ``(3,)`` centre (mm).
        radii: ``(3,)`` semi-axes (mm) along the local axes.
        rotation: ``(3, 3)`` matrix whose columns are the local axes in anatomical coordinates.

    Returns:
        ``(...)`` float32 signed distance.

    >>> g = voxel_grid((16, 16, 16), (2.0, 2.0, 2.0))
    >>> int((ellipsoid(g, (0, 0, 0), (8, 8, 8)) < 0).sum()) > 200
    True
    """
    rel = coords - np.asarray(centre, dtype=np.float32).reshape(3, *([1] * (coords.ndim - 1)))
    if rotation is not None:
        rel = _apply_matrix(np.asarray(rotation).T, rel)
    inv = [np.float32(0.0 if np.isinf(r) else 1.0 / r) for r in radii]
    rho2 = np.zeros(coords.shape[1:], np.float32)
    grad2 = np.zeros(coords.shape[1:], np.float32)
    for k in range(3):
        if inv[k]:
            t = rel[k] * inv[k]
            rho2 += t * t
            grad2 += (t * inv[k]) ** 2
    rho = np.sqrt(rho2)
    grad = np.sqrt(grad2) / np.maximum(rho, 1e-6)
    grad = np.maximum(grad, np.float32(min(i for i in inv if i)))
    return (rho - 1.0) / grad


def capsule(coords: np.ndarray, start: Vec3, end: Vec3, r_start: float, r_end: float) -> np.ndarray:
    """Signed distance (mm) to a tapered tube segment (radius linear from ``r_start`` to ``r_end``).

    Args:
        coords: ``(3, ...)`` anatomical coordinates (mm).

    Returns:
        ``(...)`` float32, negative inside.
    """
    a = np.asarray(start, dtype=np.float32)
    ab = np.asarray(end, dtype=np.float32) - a
    rel = coords - a.reshape(3, *([1] * (coords.ndim - 1)))
    t = (ab[0] * rel[0] + ab[1] * rel[1] + ab[2] * rel[2]) / max(float(ab @ ab), 1e-6)
    np.clip(t, 0.0, 1.0, out=t)
    dist2 = sum((rel[k] - t * ab[k]) ** 2 for k in range(3))
    return np.sqrt(dist2) - (np.float32(r_start) + t * np.float32(r_end - r_start))


def smooth_curve(points: np.ndarray, iterations: int = 2) -> np.ndarray:
    """Chaikin corner cutting of a polyline (keeps both ends); works on any trailing dimension.

    Args:
        points: ``(N, D)`` polyline vertices (e.g. x, y, z, radius).

    Returns:
        ``(M, D)`` smoother polyline; each iteration turns ``N`` vertices into ``2 (N - 1)``.

    >>> smooth_curve(np.array([[0.0, 0], [1, 0], [1, 1]]), 1).shape
    (4, 2)
    """
    pts = np.asarray(points, dtype=float)
    for _ in range(iterations):
        q = 0.75 * pts[:-1] + 0.25 * pts[1:]
        r = 0.25 * pts[:-1] + 0.75 * pts[1:]
        mid = np.stack([q, r], axis=1).reshape(-1, pts.shape[1])
        pts = np.concatenate([pts[:1], mid[1:-1], pts[-1:]])
    return pts


def _rotate_about(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation of vector ``v`` about unit ``axis`` by ``angle`` radians."""
    return v * np.cos(angle) + np.cross(axis, v) * np.sin(angle) + axis * (axis @ v) * (1 - np.cos(angle))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)


def branching_tree(
    rng: np.random.Generator,
    root: Vec3,
    direction: Vec3,
    length: float,
    radius: float,
    generations: int,
    centre: Vec3,
    spread_deg: float = 32.0,
    outward: float = 0.5,
    length_ratio: float = 0.8,
    radius_ratio: float = 0.72,
) -> tuple[np.ndarray, np.ndarray]:
    """Random binary tree of tube segments (vessels, airways).

    Each segment splits into two children turned by about ``spread_deg`` to opposite sides of a random
    plane, pulled ``outward`` away from ``centre`` (e.g. the lung centre), with lengths and radii scaled by
    ``length_ratio`` and ``radius_ratio`` per generation. The number of random draws depends only on
    ``generations`` (deterministic per generator).

    Returns:
        ``segments``: ``(N, 2, 3)`` start/end points (mm) and ``radii``: ``(N, 2)`` start/end radii,
        ``N = 2 ** generations - 1``.
    """
    centre = np.asarray(centre, dtype=float)
    todo = [(np.asarray(root, dtype=float), _unit(np.asarray(direction, dtype=float)), length, radius, 1)]
    segs, radii = [], []
    while todo:
        start, d, ln, r, gen = todo.pop(0)
        end = start + d * ln
        r_end = r * radius_ratio
        segs.append((start, end))
        radii.append((r, r_end))
        if gen >= generations:
            continue
        perp = _unit(np.cross(d, rng.standard_normal(3)))
        angles = np.deg2rad(spread_deg) * (1.0 + 0.3 * rng.standard_normal(2))
        out = _unit(end - centre)
        for side, ang in zip((1.0, -1.0), angles, strict=True):
            child = _unit(_rotate_about(d, perp, side * abs(ang)) + outward * out)
            todo.append((end, child, ln * length_ratio * (1 + 0.15 * rng.standard_normal()), r_end, gen + 1))
    return np.asarray(segs), np.asarray(radii)


class Canvas:
    """Tissue-class and label volumes painted at anatomical coordinates.

    Shapes are evaluated only inside a voxel bounding box (:meth:`box`): the coordinates are summarised by
    their per-block minimum and maximum (blocks of ``block`` voxels a side) and by an affine fit with its
    largest residual, so that finding the blocks a small structure can touch costs little and never misses
    a voxel.

    Attributes:
        coords: ``(3, X, Y, Z)`` anatomical coordinates (mm), e.g. from :func:`random_warp`.
        tissue: ``(X, Y, Z)`` uint8 tissue classes (intensity model), 0 = outside.
        label: ``(X, Y, Z)`` uint8 labels, 0 = background.

    >>> cv = Canvas(voxel_grid((16, 16, 16), (2.0, 2.0, 2.0)))
    >>> cv.ellipsoid((0, 0, 0), (6, 6, 6), tissue=1, label=1)
    >>> int(cv.label.sum()) > 50
    True
    """

    def __init__(self, coords: np.ndarray, block: int = 4) -> None:
        self.coords = coords
        self.shape: tuple[int, int, int] = tuple(coords.shape[1:])  # type: ignore[assignment]
        self.tissue = np.zeros(self.shape, np.uint8)
        self.label = np.zeros(self.shape, np.uint8)
        self._block = block
        nb = [-(-n // block) for n in self.shape]
        pad = [(0, 0)] + [(0, b * block - n) for b, n in zip(nb, self.shape, strict=True)]
        blocks = np.pad(coords, pad, mode="edge").reshape(3, nb[0], block, nb[1], block, nb[2], block)
        self._qmin = blocks.min(axis=(2, 4, 6))
        self._qmax = blocks.max(axis=(2, 4, 6))
        # affine fit q ~ M v + t on the block centres, and the largest residual over all voxels
        centres = [(np.arange(b) + 0.5) * block - 0.5 for b in nb]
        v = np.stack(np.meshgrid(*centres, indexing="ij")).reshape(3, -1)
        q = 0.5 * (self._qmin + self._qmax).reshape(3, -1)
        sol = np.linalg.lstsq(np.vstack([v, np.ones(v.shape[1])]).T, q.T, rcond=None)[0]
        self._m, self._t = sol[:3].T, sol[3]
        axes = [np.arange(n, dtype=np.float32) for n in self.shape]
        resid = 0.0
        for k in range(3):
            pred = self._t[k] + sum(
                np.float32(self._m[k, i]) * axes[i].reshape([-1 if j == i else 1 for j in range(3)])
                for i in range(3)
            )
            resid = max(resid, float(np.abs(coords[k] - pred).max()))
        self._resid = resid + 1e-3
        self._minv = np.linalg.inv(self._m)

    def sub(self, box: Slices) -> np.ndarray:
        """``(3, x, y, z)`` view of the coordinates in a box."""
        return self.coords[(slice(None), *box)]

    def box(self, lo: Vec3, hi: Vec3) -> Slices | None:
        """Voxel box containing every voxel whose coordinates lie in ``[lo, hi]`` (mm); None if there is none.

        >>> cv = Canvas(voxel_grid((16, 16, 16), (2.0, 2.0, 2.0)))
        >>> cv.box((-1, -1, -1), (1, 1, 1))
        (slice(4, 12, None), slice(4, 12, None), slice(4, 12, None))
        """
        lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
        corners = np.array(np.meshgrid(*zip(lo - self._resid, hi + self._resid, strict=True), indexing="ij"))
        vox = self._minv @ (corners.reshape(3, -1) - self._t[:, None])
        nb = self._qmin.shape[1:]
        b0 = [min(max(int(np.floor(vox[k].min() / self._block)), 0), nb[k]) for k in range(3)]
        b1 = [min(max(int(np.floor(vox[k].max() / self._block)) + 1, 0), nb[k]) for k in range(3)]
        if any(a >= b for a, b in zip(b0, b1, strict=True)):
            return None
        cand = (slice(None), *(slice(a, b) for a, b in zip(b0, b1, strict=True)))
        qmin, qmax = self._qmin[cand], self._qmax[cand]
        hit = (qmax[0] >= lo[0]) & (qmin[0] <= hi[0]) & (qmax[1] >= lo[1]) & (qmin[1] <= hi[1])
        hit &= (qmax[2] >= lo[2]) & (qmin[2] <= hi[2])
        if not hit.any():
            return None
        out = []
        for k in range(3):
            ids = np.flatnonzero(hit.any(axis=tuple(j for j in range(3) if j != k))) + b0[k]
            out.append(slice(int(ids[0]) * self._block, min((int(ids[-1]) + 1) * self._block, self.shape[k])))
        return tuple(out)  # type: ignore[return-value]

    def paint(
        self,
        box: Slices,
        mask: np.ndarray,
        tissue: int | None = None,
        label: int | None = None,
        where: np.ndarray | None = None,
    ) -> None:
        """Set ``tissue``/``label`` (None = keep) where ``mask`` (box-sized) and the full-size ``where``."""
        if where is not None:
            mask = mask & where[box]
        if tissue is not None:
            self.tissue[box][mask] = tissue
        if label is not None:
            self.label[box][mask] = label

    def ellipsoid_sdf(
        self, centre: Vec3, radii: Vec3, rotation: np.ndarray | None = None, pad: float = 0.0
    ) -> tuple[Slices, np.ndarray] | None:
        """Box and signed distance (mm) of an ellipsoid, evaluated where it can be ``< pad``."""
        reach = max(r for r in radii if np.isfinite(r)) + pad
        c = np.asarray(centre, dtype=float)
        box = self.box(c - reach, c + reach)
        if box is None:
            return None
        return box, ellipsoid(self.sub(box), c, radii, rotation)

    def ellipsoid(
        self,
        centre: Vec3,
        radii: Vec3,
        rotation: np.ndarray | None = None,
        *,
        tissue: int | None = None,
        label: int | None = None,
        where: np.ndarray | None = None,
    ) -> None:
        """Paint a solid ellipsoid (see :func:`ellipsoid`)."""
        got = self.ellipsoid_sdf(centre, radii, rotation)
        if got is not None:
            self.paint(got[0], got[1] < 0, tissue, label, where)

    def tubes(
        self,
        segments: np.ndarray,
        radii: np.ndarray,
        *,
        grow: float = 0.0,
        min_radius: float = 0.0,
        tissue: int | None = None,
        label: int | None = None,
        where: np.ndarray | None = None,
        inner: Sequence[tuple[float, int | None, int | None]] = (),
    ) -> None:
        """Paint tapered tube segments (e.g. from :func:`branching_tree`).

        Args:
            segments: ``(N, 2, 3)`` start and end points (mm).
            radii: ``(N, 2)`` start and end radii (mm); ``grow`` is added (e.g. a wall around a lumen) and
                the result is at least ``min_radius``.
            inner: ``(depth_mm, tissue, label)`` layers painted, after the whole tube, where the distance is
                below ``-depth_mm`` (a lumen inside a wall, marrow inside cortical bone).
        """
        done = []
        for (a, b), (ra, rb) in zip(segments, radii, strict=True):
            ra, rb = max(ra + grow, min_radius), max(rb + grow, min_radius)
            reach = max(ra, rb)
            box = self.box(np.minimum(a, b) - reach, np.maximum(a, b) + reach)
            if box is not None:
                d = capsule(self.sub(box), a, b, ra, rb)
                self.paint(box, d < 0, tissue, label, where)
                done.append((box, d))
        for depth, inner_tissue, inner_label in inner:  # e.g. a lumen inside a wall, after all segments
            for box, d in done:
                self.paint(box, d < -depth, inner_tissue, inner_label, where)

    def polyline(
        self,
        points: Sequence[Vec3],
        radii: Sequence[float],
        *,
        smooth: int = 2,
        grow: float = 0.0,
        tissue: int | None = None,
        label: int | None = None,
        where: np.ndarray | None = None,
        inner: Sequence[tuple[float, int | None, int | None]] = (),
    ) -> None:
        """Paint a smooth tube through ``points`` (mm) with radii interpolated from ``radii`` (mm).

        ``smooth`` Chaikin iterations (:func:`smooth_curve`); other arguments as in :meth:`tubes`.
        """
        pr = smooth_curve(np.column_stack([np.asarray(points, float), np.asarray(radii, float)]), smooth)
        segs = np.stack([pr[:-1, :3], pr[1:, :3]], axis=1)
        rad = np.stack([pr[:-1, 3], pr[1:, 3]], axis=1)
        self.tubes(segs, rad, grow=grow, tissue=tissue, label=label, where=where, inner=inner)


def jitter(rng: np.random.Generator, values: Vec3 | float, rel: float) -> np.ndarray:
    """``values * (1 + rel * n)`` with ``n`` standard normal clipped to +-2 (per-structure size jitter)."""
    v = np.asarray(values, dtype=float)
    return v * (1.0 + rel * np.clip(rng.standard_normal(v.shape), -2.0, 2.0))


def shift(rng: np.random.Generator, centre: Vec3, sd_mm: float) -> np.ndarray:
    """``centre`` plus Gaussian noise of ``sd_mm`` (clipped to 2 sd) per coordinate."""
    c = np.asarray(centre, dtype=float)
    return c + sd_mm * np.clip(rng.standard_normal(c.shape), -2.0, 2.0)


def perturb(rng: np.random.Generator, points: Sequence[Vec3], sd_mm: float = 3.0) -> np.ndarray:
    """Polyline vertices ``(N, 3)`` (mm) plus independent Gaussian noise of ``sd_mm`` (clipped to 2 sd)."""
    pts = np.asarray(points, dtype=float)
    return pts + sd_mm * np.clip(rng.standard_normal(pts.shape), -2.0, 2.0)


def smooth_noise(shape: Sequence[int], rng: np.random.Generator, sigma_vox: float) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian-smoothed white noise.

    Large ``sigma_vox`` is computed on a coarser grid and upsampled (linear), which costs much less.

    Returns:
        ``shape`` float32.

    >>> smooth_noise((16, 16, 16), np.random.default_rng(0), 2.0).shape
    (16, 16, 16)
    """
    shape = tuple(int(n) for n in shape)
    if sigma_vox <= 2.0:
        white = rng.standard_normal(shape, dtype=np.float32)
        field = ndimage.gaussian_filter(white, sigma_vox, mode="wrap", truncate=3.0)
    else:
        factor = sigma_vox / 1.5
        small = tuple(max(int(np.ceil(n / factor)) + 1, 2) for n in shape)
        coarse = ndimage.gaussian_filter(rng.standard_normal(small, dtype=np.float32), 1.5, mode="wrap")
        weights = [
            _linear_weights((np.arange(n) + 0.5) * m / n - 0.5, m) for n, m in zip(shape, small, strict=True)
        ]
        field = _separable_apply(coarse, weights)
    field = field - field.mean()
    return (field / max(float(field.std()), 1e-6)).astype(np.float32)


def smooth_field(
    shape: Sequence[int], rng: np.random.Generator, amplitude: float, scale: float = 0.3
) -> np.ndarray:
    """Very smooth zero-mean random field of standard deviation ``amplitude``.

    ``scale`` is the Gaussian sigma as a fraction of the largest edge (0.3 = across-the-body variation).
    Returns ``shape`` float32 (e.g. an additive CT offset in HU).
    """
    return np.float32(amplitude) * smooth_noise(shape, rng, scale * max(shape))


def bias_field(shape: Sequence[int], rng: np.random.Generator, strength: float = 0.1) -> np.ndarray:
    """Smooth multiplicative MRI bias field ``exp(strength * n)``, ``n`` a unit-variance smooth field.

    Returns ``shape`` float32 around 1.

    >>> b = bias_field((16, 16, 16), np.random.default_rng(0))
    >>> 0.5 < float(b.min()) and float(b.max()) < 1.5
    True
    """
    return np.exp(smooth_field(shape, rng, strength)).astype(np.float32)


def _lut(values: Mapping[int, float] | float, size: int) -> np.ndarray:
    if isinstance(values, Mapping):
        out = np.zeros(size, np.float32)
        for k, v in values.items():
            out[k] = v
        return out
    return np.full(size, values, np.float32)


def render_intensity(
    tissue: np.ndarray,
    means: Mapping[int, float],
    rng: np.random.Generator,
    texture_std: Mapping[int, float] | float,
    noise_std: float,
    *,
    mean_jitter: Mapping[int, float] | float = 0.0,
    texture_sigma_vox: float = 1.5,
    blur_sigma_vox: float = 0.7,
    gain: np.ndarray | None = None,
    offset: np.ndarray | None = None,
) -> np.ndarray:
    """Textured intensity image of a tissue-class map.

    ``((blur(mean[t]) + texture_std[t] * n_smooth) * gain + offset) + noise_std * n_white`` where ``mean``
    gets a per-subject jitter (standard deviation ``mean_jitter``, per class), ``blur`` is a Gaussian of
    ``blur_sigma_vox`` (partial volume at boundaries) and ``n_smooth`` is :func:`smooth_noise` with
    ``texture_sigma_vox``. Classes missing from ``means`` have mean 0.

    Args:
        tissue: ``(X, Y, Z)`` integer tissue classes (every value must be a key of ``means`` or 0).
        means: class -> mean intensity.

    Returns:
        ``(X, Y, Z)`` float32.

    >>> t = np.zeros((16, 16, 16), np.uint8); t[4:12, 4:12, 4:12] = 1
    >>> img = render_intensity(t, {0: 0.0, 1: 100.0}, np.random.default_rng(0), 5.0, 1.0)
    >>> 90 < float(img[8, 8, 8]) < 110
    True
    """
    size = max(max(means) + 1, int(tissue.max()) + 1)
    lut = _lut(means, size)
    sd = _lut(mean_jitter, size)
    lut += sd * rng.standard_normal(size).astype(np.float32)
    image = lut[tissue]
    if blur_sigma_vox > 0:
        image = ndimage.gaussian_filter(image, blur_sigma_vox, mode="nearest")
    image += _lut(texture_std, size)[tissue] * smooth_noise(tissue.shape, rng, texture_sigma_vox)
    if gain is not None:
        image *= gain
    if offset is not None:
        image += offset
    image += np.float32(noise_std) * rng.standard_normal(tissue.shape, dtype=np.float32)
    return image


def to_hounsfield(image: np.ndarray) -> np.ndarray:
    """Round and clip a float CT image to int16 HU in [-1024, 3071]."""
    return np.clip(np.rint(image), -1024, 3071).astype(np.int16)


# --- the start and the end of every phantom ------------------------------------------------------------


def warped_canvas(
    shape: Sequence[int],
    rng: np.random.Generator | int | None,
    fov_mm: Vec3,
    amplitude_mm: float,
    length_mm: float,
    origin_mm: Vec3 = (0.0, 0.0, 0.0),
) -> tuple[tuple[int, int, int], np.random.Generator, tuple[float, float, float], Canvas]:
    """How every phantom starts: the checked ``shape``, the generator of ``rng``, the spacing of
    ``fov_mm`` over ``shape``, and a :class:`Canvas` on the voxel grid's coordinates warped by
    :func:`random_warp` (7 % scale jitter) and moved by ``origin_mm`` (the template coordinates of the
    centre of the field of view).

    >>> shape, rng, spacing, cv = warped_canvas((16, 16, 16), 0, (64.0, 64.0, 64.0), 2.0, 40.0)
    >>> shape, spacing, cv.coords.shape
    ((16, 16, 16), (4.0, 4.0, 4.0), (3, 16, 16, 16))
    """
    shape = check_shape(shape)
    rng = as_generator(rng)
    spacing = spacing_for(fov_mm, shape)
    coords = random_warp(voxel_grid(shape, spacing), rng, amplitude_mm, length_mm, scale_jitter=0.07)
    coords += np.asarray(origin_mm, np.float32).reshape(3, 1, 1, 1)
    return shape, rng, spacing, Canvas(coords)


def ct_phantom(
    cv: Canvas,
    hu: Mapping[int, float],
    rng: np.random.Generator,
    texture_hu: Mapping[int, float],
    mean_jitter_hu: Mapping[int, float],
    spacing: Vec3,
    labels: Mapping[int, str],
) -> Phantom:
    """How the CT phantoms end: :func:`render_intensity` of the canvas's tissue classes with mean ``hu``
    and texture ``texture_hu``, the CT settings they share (16 HU white noise, texture correlated over
    1.3 voxels, a smooth 4 HU offset field across the body), rounded to int16 HU."""
    offset = smooth_field(cv.shape, rng, 4.0)
    image = render_intensity(
        cv.tissue,
        hu,
        rng,
        texture_std=texture_hu,
        noise_std=16.0,
        mean_jitter=mean_jitter_hu,
        texture_sigma_vox=1.3,
        offset=offset,
    )
    return Phantom(to_hounsfield(image), cv.label, tuple(spacing), dict(labels))


# --- shared CT structures -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BodyTissues:
    """Tissue ids used by :func:`body_wall`, :func:`spine` and :func:`rib_cage`."""

    fat: int
    muscle: int
    cortical: int
    cancellous: int
    disc: int
    canal: int


def body_wall(
    cv: Canvas, centre_xy: Vec3, radii_xy: Vec3, fat_mm: float, muscle_mm: float, t: BodyTissues
) -> np.ndarray:
    """Paint a body elliptic cylinder (subcutaneous fat, then a muscle layer) along axis 2.

    Returns:
        ``(X, Y, Z)`` bool mask of the cavity inside the muscle wall (tissue 0 there, left to the caller).
    """
    c = (centre_xy[0], centre_xy[1], 0.0)
    d = ellipsoid(cv.coords, c, (radii_xy[0], radii_xy[1], np.inf))
    cv.tissue[d < 0] = t.fat
    cv.tissue[d < -fat_mm] = t.muscle
    cavity = d < -(fat_mm + muscle_mm)
    cv.tissue[cavity] = 0
    return cavity


def spine(
    cv: Canvas,
    rng: np.random.Generator,
    centre_xy: Vec3,
    z_range: tuple[float, float],
    t: BodyTissues,
    body_radii: tuple[float, float] = (22.0, 18.0),
    level_mm: float = 34.0,
) -> None:
    """Paint a vertebral column along axis 2: bodies with a cortical rim, discs, canal, posterior arches.

    ``centre_xy`` is the centre of the vertebral bodies (mm in axes 0, 1); the canal and the spinous
    processes lie posterior (lower axis 1).
    """
    x0, y0 = float(centre_xy[0]), float(centre_xy[1])
    z_lo, z_hi = z_range
    phase = rng.uniform(0, level_mm)
    rx, ry = body_radii
    lo, hi = (x0 - 60, y0 - 75, z_lo), (x0 + 60, y0 + ry + 2, z_hi)
    box = cv.box(lo, hi)
    if box is None:
        return
    p = cv.sub(box)
    inz = (p[2] >= z_lo) & (p[2] <= z_hi)
    level = np.mod(p[2] - z_lo - phase, level_mm)
    disc = level < 0.22 * level_mm
    d_body = ellipsoid(p, (x0, y0, 0.0), (rx, ry, np.inf))
    cv.paint(box, inz & (d_body < 0), t.cortical)
    cv.paint(box, inz & (d_body < -2.5), t.cancellous)
    cv.paint(box, inz & (d_body < 0) & disc, t.disc)
    # posterior arch: pedicles/laminae ring around the canal, spinous and transverse processes
    yc = y0 - ry - 10.0
    d_ring = ellipsoid(p, (x0, yc, 0.0), (17.0, 14.0, np.inf))
    arch = (d_ring < 0) & ~disc
    arch |= (np.abs(p[0] - x0) < 5) & (p[1] < yc) & (p[1] > yc - 38) & (level > 0.3 * level_mm)
    arch |= (np.abs(p[1] - yc - 2) < 5) & (np.abs(p[0] - x0) < 40) & (np.abs(level - 0.55 * level_mm) < 6)
    cv.paint(box, inz & arch & (d_body >= 0), t.cortical)
    cv.paint(box, inz & (ellipsoid(p, (x0, yc, 0.0), (9.0, 8.0, np.inf)) < 0), t.canal)


def rib_cage(
    cv: Canvas,
    rng: np.random.Generator,
    centre_xy: Vec3,
    radii_xy: Vec3,
    z_heads: Sequence[float],
    t: BodyTissues,
    drop_mm: float = 70.0,
    radius_mm: float = 5.5,
    end_angle_deg: float = 140.0,
    where: np.ndarray | None = None,
) -> None:
    """Paint pairs of ribs: curved tubes from the spine round the body wall, descending anteriorly.

    Each rib starts next to the vertebra at height ``z_heads[i]`` (mm), follows the ellipse ``radii_xy`` about
    ``centre_xy`` from the back (0 deg) towards the front (``end_angle_deg``) and drops ``drop_mm``.
    """
    a, b = float(radii_xy[0]), float(radii_xy[1])
    theta = np.deg2rad(np.linspace(12.0, end_angle_deg, 9))
    for z0 in z_heads:
        for side in (-1.0, 1.0):
            th = theta + np.deg2rad(rng.uniform(-4, 4))
            drop = drop_mm * (1 + 0.1 * rng.standard_normal())
            x = centre_xy[0] + side * a * np.sin(th)
            y = centre_xy[1] - b * np.cos(th)
            z = z0 - drop * (1 - np.cos(th)) / 2 + 8 * np.sin(th)
            pts = np.column_stack([x, y, z])
            pts[0] = (centre_xy[0] + side * 18.0, centre_xy[1] - b + 8.0, z0)
            r = np.full(len(pts), radius_mm)
            cv.polyline(pts, r, smooth=1, tissue=t.cortical, where=where, inner=[(2.0, t.cancellous, None)])
