"""Procedural T1-weighted brain MRI phantom with the 35 Learn2Reg OASIS ``seg35`` labels.

Skull-stripped, intensities in [0, 1], exactly 0 outside the brain; unlabelled CSF inside the brain
envelope (sulci, interhemispheric fissure) keeps a dark CSF signal, as in real skull-stripped T1 (in
VoxelMorph's example brain scan, an OASIS subject: ~0.17 there vs ~0.40 in white matter).

Shapes are defined in millimetres in an MNI-like template space (origin near the anterior commissure)
and evaluated at randomly warped coordinates: a cerebrum with a folded cortex (sulci are the zero set of
a random sum of plane waves on the sphere of directions), an interhemispheric fissure above the corpus
callosum, white matter inside, deep grey nuclei, curved lateral ventricles with temporal horns, midline
3rd and 4th ventricles, brain stem, and a cerebellum with folia and an arbor vitae.

>>> ph = brain_phantom((40, 48, 36), np.random.default_rng(0))
>>> ph.image.dtype, ph.label.shape, ph.spacing
(dtype('float32'), (40, 48, 36), (4.0, 4.666666666666667, 5.333333333333333))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from anatosynth_components.data.demo import anatomy
from anatosynth_components.data.label_tables import OASIS35_LABELS

#: Field of view (mm) along axes 0 (R), 1 (A), 2 (S) and the default shape.
BRAIN_FOV: tuple[float, float, float] = (160.0, 224.0, 192.0)
BRAIN_SHAPE: tuple[int, int, int] = (80, 112, 96)

#: template (MNI-like) coordinates of the centre of the field of view
_FOV_CENTRE = np.array([0.0, -17.0, 3.0], np.float32)

#: Left label id -> Right label id (unpaired: 11, 12, 13)
_RIGHT = {1: 20, 2: 21, 3: 22, 4: 23, 5: 24, 6: 25, 7: 26, 8: 27, 9: 28, 10: 29}
_RIGHT.update({14: 30, 15: 31, 16: 32, 17: 33, 18: 34, 19: 35})

#: T1 mean intensity of each Left/unpaired label (Right labels copy their Left counterpart).
_T1 = {1: 0.75, 2: 0.5, 3: 0.15, 4: 0.18, 5: 0.72, 6: 0.52, 7: 0.63, 8: 0.58, 9: 0.6, 10: 0.66, 11: 0.15}
_T1.update({12: 0.15, 13: 0.7, 14: 0.53, 15: 0.54, 16: 0.57, 17: 0.67, 18: 0.92, 19: 0.42})

#: tissue class of the unlabelled CSF inside the brain envelope (not a label id)
CSF = 255
_T1[CSF] = 0.16

WM, CORTEX, LAT_VENT, INF_LAT_VENT, CB_WM, CB_CORTEX = 1, 2, 3, 4, 5, 6
THALAMUS, CAUDATE, PUTAMEN, PALLIDUM, VENT3, VENT4, STEM = 7, 8, 9, 10, 11, 12, 13
HIPPOCAMPUS, AMYGDALA, ACCUMBENS, VENTRAL_DC, VESSEL, CHOROID = 14, 15, 16, 17, 18, 19


def _sided(label: int, x: np.ndarray) -> np.ndarray:
    """Left id where x < 0 (patient left), the Right id elsewhere."""
    return np.where(x < 0, label, _RIGHT[label]).astype(np.uint8)


def _wave_sum(
    u: np.ndarray, rng: np.random.Generator, n_waves: int, freq: tuple[float, float]
) -> tuple[np.ndarray, float]:
    """Random sum of plane waves ``cos(w n.u + phi)`` evaluated at unit directions ``u`` ``(3, N)``.

    Returns the unit-variance field ``(N,)`` and its RMS gradient per unit of ``u`` (tangential).
    """
    normals = rng.standard_normal((n_waves, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    w = rng.uniform(*freq, n_waves)
    amp = rng.uniform(0.5, 1.0, n_waves)
    phase = rng.uniform(0, 2 * np.pi, n_waves)
    field = np.zeros(u.shape[1], np.float32)
    for k in range(n_waves):
        field += np.float32(amp[k]) * np.cos(
            np.float32(w[k]) * (normals[k].astype(np.float32) @ u) + phase[k]
        )
    rms = float(np.sqrt((amp**2).sum() / 2))
    grad = float(np.sqrt((amp**2 * w**2).sum() / 2 * 2 / 3)) / rms
    return field / rms, grad


def _cerebrum(cv: anatomy.Canvas, rng: np.random.Generator, d_cb: np.ndarray) -> None:
    """Cerebral white matter and folded cortex, split into hemispheres at x = 0."""
    p = cv.coords
    centre = anatomy.shift(rng, (0.0, -17.0, 14.0), 2.0)
    a, b, c_sup = anatomy.jitter(rng, (67.0, 85.0, 60.0), 0.04)
    c_inf = 44.0 * (1 + 0.04 * rng.standard_normal())
    zs = np.where(p[2] < centre[2], np.float32(c_sup / c_inf), np.float32(1.0))
    squashed = np.stack([p[0], p[1], centre[2] + (p[2] - centre[2]) * zs])
    d = anatomy.ellipsoid(squashed, centre, (a, b, c_sup))
    for side in (-1.0, 1.0):  # temporal lobes
        tc = anatomy.shift(rng, (side * 44.0, -12.0, -16.0), 2.0)
        d = np.minimum(d, anatomy.ellipsoid(p, tc, anatomy.jitter(rng, (24.0, 42.0, 20.0), 0.05)))
    d = np.maximum(d, 3.0 - d_cb)  # tentorium: keep 3 mm off the cerebellum
    inside = d < 0
    thick = float(rng.uniform(3.4, 4.0))  # cortical thickness (mm)
    width = float(
        rng.uniform(1.4, 1.9)
    )  # half width of the sulcal CSF (mm; OASIS subjects are often atrophic)
    depth_lo, depth_hi = float(rng.uniform(8, 11)), float(rng.uniform(18, 24))
    shell = inside & (d > -(depth_hi + thick + width))
    rel = (p[:, shell] - centre.astype(np.float32)[:, None]) / np.array([a, b, c_sup], np.float32)[:, None]
    u = rel / np.maximum(np.linalg.norm(rel, axis=0), 1e-6)
    ds = d[shell]
    # sulci wiggle along the surface and bend with depth: warp the directions by a smooth random field
    bend = np.stack([_wave_sum(u, rng, 5, (2.0, 5.0))[0] for _ in range(3)])
    u = u + (0.05 + 0.05 * np.clip(-ds, 0, None) / 10.0) * bend
    fold, grad = _wave_sum(u, rng, 14, (9.0, 15.0))
    depth_field, _ = _wave_sum(u, rng, 6, (2.0, 5.0))
    dist = np.abs(fold) * np.float32(np.mean([a, b, c_sup]) / grad)  # mm to the sulcus mid-plane
    depth = depth_lo + (depth_hi - depth_lo) * (0.5 + 0.5 * np.tanh(depth_field))
    sulcus = np.zeros(cv.shape, bool)
    sulcus[shell] = (dist < width) & (ds > -depth)
    near = np.zeros(cv.shape, bool)
    near[shell] = (dist < width + thick) & (ds > -depth - thick)
    # interhemispheric fissure everywhere but in a half-ellipse under the arch of the corpus callosum
    half_length, top = 36.0 * (1 + 0.05 * rng.standard_normal()), 26.0 + 2.0 * rng.standard_normal()
    above = ((p[1] + 4.0) / half_length) ** 2 + ((p[2] - 2.0) / (top - 2.0)) ** 2 > 1.0
    gap = float(rng.uniform(1.0, 1.6))
    fissure = inside & above & (np.abs(p[0]) < gap)
    medial = inside & above & (np.abs(p[0]) < gap + thick)
    cortex = inside & ((d > -thick) | near | medial)
    brain = inside & ~sulcus & ~fissure
    cv.label[brain] = _sided(WM, p[0][brain])
    cm = brain & cortex
    cv.label[cm] = _sided(CORTEX, p[0][cm])


def _cerebellum_sdf(cv: anatomy.Canvas, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance (mm) of the cerebellum and its centre."""
    centre = anatomy.shift(rng, (0.0, -58.0, -34.0), 2.0)
    d = anatomy.ellipsoid(
        cv.coords, centre + (0, 1, 4), anatomy.jitter(rng, (12.0, 28.0, 22.0), 0.05)
    )  # vermis
    for side in (-1.0, 1.0):
        hc = centre + (side * 24.0, 0.0, 0.0) + rng.normal(0, 1.5, 3)
        d = np.minimum(d, anatomy.ellipsoid(cv.coords, hc, anatomy.jitter(rng, (29.0, 30.0, 21.0), 0.05)))
    return d, centre


def _cerebellum(cv: anatomy.Canvas, rng: np.random.Generator, d: np.ndarray, centre: np.ndarray) -> None:
    """Cerebellar cortex with folia (radial fissures in the sagittal plane) and white matter (arbor vitae)."""
    p = cv.coords
    inside = d < 0
    theta = np.arctan2(p[2][inside] - centre[2], p[1][inside] - centre[1])
    n = float(rng.uniform(11, 15))
    wobble = 0.25 * np.sin(p[0][inside] / 9.0 + rng.uniform(0, 2 * np.pi))
    s = np.cos(n * theta + rng.uniform(0, 2 * np.pi) + wobble)
    di = d[inside]
    keep = ~((s > 0.8) & (di > -7.0))
    wm = (di < -13.0) | ((di < -4.5) & (s < -0.55))
    lab = np.where(wm, CB_WM, CB_CORTEX)
    x = p[0][inside]
    lab = np.where(x < 0, lab, np.where(wm, _RIGHT[CB_WM], _RIGHT[CB_CORTEX]))
    flat = cv.label[inside]
    flat[keep] = lab[keep]
    flat[~keep] = 0
    cv.label[inside] = flat


def _brainstem(cv: anatomy.Canvas, rng: np.random.Generator) -> None:
    """Midbrain, pons and medulla along a tube down to the bottom of the field of view."""
    pts = np.array([(0, -19, 4), (0, -23, -10), (0, -26, -27), (0, -34, -46), (0, -40, -68), (0, -43, -110)])
    pts = pts + np.r_[0, 1, 1] * rng.normal(0, 1.5, (6, 3))
    cv.polyline(pts, anatomy.jitter(rng, [9.0, 10.5, 12.0, 9.0, 7.5, 6.5], 0.05), label=STEM)
    cv.ellipsoid(
        anatomy.shift(rng, (0, -21, -27), 1.5), anatomy.jitter(rng, (14.0, 12.0, 12.0), 0.05), label=STEM
    )


def _mirror(points: Sequence[Sequence[float]], side: float) -> np.ndarray:
    pts = np.asarray(points, dtype=float).copy()
    pts[:, 0] *= side
    return pts


def _deep(cv: anatomy.Canvas, rng: np.random.Generator, side: float) -> None:
    """Deep nuclei, hippocampus, amygdala, lateral ventricle, choroid plexus and vessel of one side."""

    def lab(i: int) -> int:
        return i if side < 0 else _RIGHT[i]

    def ell(i: int, c: Sequence[float], r: Sequence[float], rot: Sequence[float] = (0, 0, 0)) -> None:
        centre = anatomy.shift(rng, (side * c[0], c[1], c[2]), 1.2)
        angles = (rot[0], side * rot[1], side * rot[2])
        cv.ellipsoid(centre, anatomy.jitter(rng, r, 0.07), anatomy.rotation_matrix(angles), label=lab(i))

    def tube(i: int, pts: Sequence[Sequence[float]], radii: Sequence[float]) -> None:
        p = _mirror(pts, side) + rng.normal(0, 1.0, (len(pts), 3))
        cv.polyline(p, anatomy.jitter(rng, radii, 0.05), label=lab(i))

    ell(VENTRAL_DC, (12, -16, -8), (6, 9, 5))
    ell(THALAMUS, (11, -17, 7), (8, 15, 9), (0, 0, -12))
    ell(PUTAMEN, (25, 3, 2), (6, 15, 10), (0, 0, 8))
    ell(PALLIDUM, (18, -3, 0), (4, 8, 5), (0, 0, 8))
    tube(CAUDATE, [(13, 16, 8), (15, 2, 16), (18, -14, 20), (23, -28, 17)], [6.5, 5, 3.5, 2.5])
    ell(ACCUMBENS, (10, 11, -7), (5, 6, 4.5))
    tube(HIPPOCAMPUS, [(23, -9, -20), (27, -22, -13), (23, -35, -2), (18, -40, 4)], [6, 5, 4, 3])
    ell(AMYGDALA, (23, -1, -19), (7, 7, 6))
    tube(
        LAT_VENT, [(7, 26, 8), (8, 10, 16), (10, -10, 18), (18, -30, 15), (20, -50, 9)], [4.5, 5.0, 4.5, 6, 3]
    )
    tube(INF_LAT_VENT, [(22, -34, 10), (29, -29, -2), (31, -16, -12), (29, -6, -17)], [3.5, 3.2, 3.0, 2.8])
    ell(CHOROID, (21, -31, 16), (4.5, 7.5, 4.5))
    tube(VESSEL, [(9, 5, -14), (20, 7, -13), (33, 6, -8)], [2.6, 2.6, 2.4])


def _envelope(brain: np.ndarray, spacing: Sequence[float], radius_mm: float = 5.0) -> np.ndarray:
    """The brain with its sulci and fissures closed: a morphological closing by a ``radius_mm`` ball."""
    r = np.maximum(np.round(radius_mm / np.asarray(spacing)), 1).astype(int)
    grid = np.ogrid[tuple(slice(-k, k + 1) for k in r)]
    ball = sum((g / k) ** 2 for g, k in zip(grid, r, strict=True)) <= 1.0
    padded = np.pad(brain, [(k, k) for k in r])
    closed = ndimage.binary_erosion(ndimage.binary_dilation(padded, ball), ball)
    return closed[tuple(slice(k, -k) for k in r)] | brain


def brain_phantom(
    shape: Sequence[int] = BRAIN_SHAPE, rng: np.random.Generator | int | None = None
) -> anatomy.Phantom:
    """One procedural T1 brain (OASIS ``seg35`` labels), deterministic per ``rng``.

    Args:
        shape: ``(X, Y, Z)`` volume shape (each >= 16) over the fixed field of view :data:`BRAIN_FOV`.
        rng: random generator (or a seed).

    Returns:
        :class:`Phantom` with ``image`` float32 ``(X, Y, Z)`` in [0, 1] (0 outside the brain envelope,
        dark CSF in unlabelled sulci), ``label`` uint8
        with ids 1..35 of :data:`OASIS35_LABELS`, ``spacing = BRAIN_FOV / shape``.

    >>> ph = brain_phantom((40, 48, 36), 1)
    >>> ph.labels[1], bool(ph.image[ph.label == 0].min() == 0), bool(ph.image[ph.label == 0].max() > 0)
    ('Left-Cerebral-White-Matter', True, True)
    """
    shape, rng, spacing, cv = anatomy.warped_canvas(shape, rng, BRAIN_FOV, 2.5, 45.0, origin_mm=_FOV_CENTRE)
    d_cb, cb_centre = _cerebellum_sdf(cv, rng)
    _cerebrum(cv, rng, d_cb)
    _cerebellum(cv, rng, d_cb, cb_centre)
    _brainstem(cv, rng)
    for side in (-1.0, 1.0):
        _deep(cv, rng, side)
    # midline: 3rd ventricle between the thalami, 4th ventricle between pons and cerebellum
    cv.ellipsoid(
        anatomy.shift(rng, (0, -13, 4), 1.0), anatomy.jitter(rng, (2.6, 13.0, 9.0), 0.06), label=VENT3
    )
    tilt = anatomy.rotation_matrix((rng.uniform(20, 35), 0, 0))
    cv.ellipsoid(
        anatomy.shift(rng, (0, -41, -32), 1.0), anatomy.jitter(rng, (7.0, 3.6, 9.0), 0.06), tilt, label=VENT4
    )
    means = {k: v for k, v in _T1.items()} | {_RIGHT[k]: _T1[k] for k in _RIGHT}
    envelope = _envelope(cv.label > 0, spacing)
    tissue = np.where(envelope & (cv.label == 0), np.uint8(CSF), cv.label)
    image = anatomy.render_intensity(
        tissue,
        means | {0: 0.0},
        rng,
        texture_std=0.03,
        noise_std=0.018,
        mean_jitter=0.025,
        texture_sigma_vox=1.5,
        gain=anatomy.bias_field(shape, rng, 0.08),
    )
    image = np.clip(image, 0.0, 1.0)
    image[~envelope] = 0.0
    return anatomy.Phantom(image.astype(np.float32), cv.label, spacing, dict(OASIS35_LABELS))
