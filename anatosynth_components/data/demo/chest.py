"""Procedural chest CT phantom with five lung lobes and the heart (ACIS TLobes label set).

Shapes are defined in millimetres about the centre of the field of view (axis 0 to the patient's Right,
axis 1 Anterior, axis 2 Superior) and evaluated at randomly warped coordinates: a thorax with subcutaneous
fat, muscle, ribs, sternum, scapulae, clavicles and spine; two lungs above diaphragm domes, split into lobes
by oblique (and, on the right, horizontal) fissures; a heart between the lungs, anterior and to the left;
great vessels; an airway tree (trachea, main, lobar and a few generations of random bronchi) and random
pulmonary vessel trees from each hilum. The lobe labels cover the whole parenchyma including the vessels
and airways in it. ``contrast=True`` renders a CT pulmonary angiogram (vessels, heart chambers and great
vessels bright).

>>> ph = chest_phantom((48, 48, 40), np.random.default_rng(0))
>>> ph.image.dtype, sorted(ph.labels)
(dtype('int16'), [1, 2, 3, 4, 5, 6])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from anatosynth_components.data.demo import anatomy
from anatosynth_components.data.label_tables import LOBES_HEART_LABELS

#: Field of view (mm) along axes 0 (R), 1 (A), 2 (S) and the default shape.
CHEST_FOV: tuple[float, float, float] = (360.0, 360.0, 320.0)
CHEST_SHAPE: tuple[int, int, int] = (96, 96, 80)

LUL, LLL, RUL, RML, RLL, HEART = 1, 2, 3, 4, 5, 6

# tissue classes (intensity model)
AIR, FAT, MUSCLE, CORTICAL, CANCELLOUS, DISC, CANAL, LUNG, FISSURE = 0, 1, 2, 3, 4, 5, 6, 7, 8
VESSEL, VESSEL_PV, AIRWAY_WALL, AIRWAY_LUMEN, MYOCARDIUM, BLOOD, GREAT_VESSEL = 9, 10, 11, 12, 13, 14, 15
MEDIASTINUM, LIVER, ABDOMEN, GAS = 16, 17, 18, 19

_BODY = anatomy.BodyTissues(
    fat=FAT, muscle=MUSCLE, cortical=CORTICAL, cancellous=CANCELLOUS, disc=DISC, canal=CANAL
)


def _hu(contrast: bool) -> dict[int, float]:
    """Mean HU per tissue class; with contrast the blood is +300 HU."""
    blood = 300.0 if contrast else 40.0
    hu = {AIR: -1000, FAT: -100, MUSCLE: 45, CORTICAL: 750, CANCELLOUS: 300, DISC: 90, CANAL: 15, LUNG: -850}
    hu |= {FISSURE: -700, VESSEL: blood, VESSEL_PV: (blood - 850) / 2, AIRWAY_WALL: -100, AIRWAY_LUMEN: -950}
    hu |= {MYOCARDIUM: 100 if contrast else 40, BLOOD: blood, GREAT_VESSEL: blood, MEDIASTINUM: -85}
    return hu | {LIVER: 60, ABDOMEN: 40, GAS: -900}


#: texture standard deviation (HU) per class (spatially correlated)
TEXTURE = {k: 15.0 for k in range(GAS + 1)} | {AIR: 3.0, LUNG: 25.0, CORTICAL: 60.0, CANCELLOUS: 50.0}
TEXTURE |= {FAT: 10.0, MEDIASTINUM: 25.0, AIRWAY_LUMEN: 10.0, GAS: 15.0}


def _dome(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Height (mm) of the diaphragm: a dome under each lung (right higher), lower at the sides and back."""
    zr, zl = -100 + rng.normal(0, 5), -110 + rng.normal(0, 5)
    right = zr + 55 * np.exp(-(((p[0] - 62) / 58) ** 2) - ((p[1] - 5) / 75) ** 2)
    left = zl + 50 * np.exp(-(((p[0] + 62) / 58) ** 2) - ((p[1] - 5) / 75) ** 2)
    return np.maximum(right, left) - 25 * np.clip(-(p[1] + 30) / 70, 0, 1)


def _lungs(
    cv: anatomy.Canvas, rng: np.random.Generator, cavity: np.ndarray, heart_d: np.ndarray, fissure_mm: float
) -> np.ndarray:
    """Paint lobe labels and tissue LUNG (fissures ``2 * fissure_mm`` thick); return the lung mask."""
    p = cv.coords
    medi = anatomy.ellipsoid(p, (0.0, 12.0, 0.0), (anatomy.jitter(rng, 26.0, 0.08), 100.0, np.inf)) < 0
    spine_block = (np.abs(p[0]) < 30) & (p[1] < -32)
    above = p[2] > _dome(p, rng) + 4.0
    lungs = np.zeros(cv.shape, bool)
    for side in (-1.0, 1.0):  # ellipsoids narrowing towards the apex
        c = anatomy.shift(rng, (side * 74, -12, -2), 3)
        radii = anatomy.jitter(rng, (72, 94, 160), 0.04)
        taper = 1.0 - 0.3 * np.clip((p[2] - c[2]) / radii[2], 0.0, 1.0) ** 1.5
        q = np.stack([c[0] + (p[0] - c[0]) / taper, c[1] + (p[1] - c[1]) / taper, p[2]])
        lungs |= anatomy.ellipsoid(q, c, radii) < 0
    lungs &= cavity & above & ~medi & ~spine_block & (heart_d > 4.0)
    x, y, z = (p[k][lungs] for k in range(3))
    obl = np.empty(x.shape, np.float32)
    for side in (-1.0, 1.0):  # oblique fissures: anterior-superior side is the upper (and middle) lobe
        tilt = np.deg2rad(rng.uniform(52, 60))
        p0 = anatomy.shift(rng, (side * 70, 5, -5), 5)
        bow = rng.uniform(0.002, 0.005)
        f = np.sin(tilt) * (y - p0[1]) + np.cos(tilt) * (z - p0[2]) - bow * (x - p0[0]) ** 2
        obl = np.where((x < 0) == (side < 0), f, obl)
    z_h = rng.uniform(5, 20)
    horiz = z - (z_h + rng.uniform(-0.15, 0.15) * y)
    lab = np.where(x < 0, np.where(obl > 0, LUL, LLL), np.where(obl > 0, np.where(horiz > 0, RUL, RML), RLL))
    cv.label[lungs] = lab
    fissure = (np.abs(obl) < fissure_mm) | ((x > 0) & (obl > 0) & (np.abs(horiz) < fissure_mm))
    cv.tissue[lungs] = np.where(fissure, FISSURE, LUNG)
    return lungs


def _heart(cv: anatomy.Canvas, rng: np.random.Generator) -> np.ndarray:
    """Signed distance (mm) of the heart; paints myocardium, blood pool with a septum, label HEART."""
    centre = anatomy.shift(rng, (-18, 36, -52), 4)
    axis = np.array([-0.8, 0.55, -0.4]) + 0.1 * rng.standard_normal(3)
    rot = anatomy.axis_frame(axis, rng.uniform(-20, 20))
    radii = anatomy.jitter(rng, (64, 50, 46), 0.05)
    d = anatomy.ellipsoid(cv.coords, centre, radii, rot)
    heart = d < 0
    cv.tissue[heart], cv.label[heart] = MYOCARDIUM, HEART
    septum = np.abs(np.tensordot(rot[:, 1], cv.coords - centre.reshape(3, 1, 1, 1), axes=1)) < 4.0
    cv.tissue[(d < -8.0) & ~septum] = BLOOD
    return d


def _great_vessels(
    cv: anatomy.Canvas, rng: np.random.Generator, inside: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Aorta, pulmonary trunk and arteries, superior vena cava, esophagus; returns the two hila (mm)."""
    aorta = anatomy.perturb(
        rng, [(-4, 28, -25), (6, 26, 40), (-4, 6, 78), (-24, -28, 68), (-28, -44, 30), (-24, -46, -180)]
    )
    cv.polyline(
        aorta, anatomy.jitter(rng, [15, 15, 14, 13, 12, 11.5], 0.05), tissue=GREAT_VESSEL, where=inside
    )
    hilum_l, hilum_r = anatomy.shift(rng, (-48, -2, 14), 3), anatomy.shift(rng, (46, -2, 6), 3)
    trunk = anatomy.perturb(rng, [(-22, 58, -18), (-18, 36, 20), (-8, 14, 30)])
    cv.polyline(trunk, [14, 13, 12], tissue=GREAT_VESSEL, where=inside)
    cv.polyline([trunk[-1], hilum_l], [10.5, 9], smooth=0, tissue=GREAT_VESSEL, where=inside)
    cv.polyline([trunk[-1], (8, 8, 22), hilum_r], [10.5, 10, 9], smooth=1, tissue=GREAT_VESSEL, where=inside)
    cv.polyline(
        anatomy.perturb(rng, [(26, 22, 170), (26, 20, 60), (22, 22, 5)]),
        [10, 10.5, 11],
        tissue=GREAT_VESSEL,
        where=inside,
    )
    cv.polyline(
        anatomy.perturb(rng, [(-4, -30, 180), (-8, -32, 40), (-16, -30, -120)]),
        [8, 8, 8],
        tissue=MUSCLE,
        where=inside,
        inner=[(6.0, GAS, None)],
    )
    return hilum_l, hilum_r


def _airways(cv: anatomy.Canvas, rng: np.random.Generator, inside: np.ndarray, min_r: float) -> None:
    """Trachea, main and lobar bronchi, then random bronchial trees (lumen air inside a thin wall)."""
    carina = anatomy.shift(rng, (0, 6, 48), 3)
    main = [
        ([(0, 20, 190), (0, 14, 110), carina], [9.5, 9, 8.5]),
        ([carina, (28, 2, 28)], [7, 6.5]),
        ([(28, 2, 28), (42, -2, 4)], [5.5, 5]),
        ([carina, (-26, 3, 34), (-44, 0, 18)], [6.5, 6.5, 6]),
    ]
    lobar = [  # start, direction, radius
        ((28, 2, 28), (0.6, 0.0, 0.8), 4.5),
        ((42, -2, 4), (0.4, 0.9, -0.4), 3.5),
        ((42, -2, 4), (0.4, -0.5, -0.8), 4.5),
        ((-44, 0, 18), (-0.5, 0.4, 0.8), 4.5),
        ((-44, 0, 18), (-0.4, 0.8, -0.5), 3.5),
        ((-44, 0, 18), (-0.4, -0.5, -0.8), 4.5),
    ]
    segs, radii = [], []
    for pts, r in main:
        pts = np.asarray(pts, float)
        segs += [np.stack([pts[:-1], pts[1:]], axis=1)]
        radii += [np.stack([r[:-1], r[1:]], axis=1)]
    for start, direction, r in lobar:
        centre = (np.sign(start[0]) * 74, -12, -2)
        d = np.asarray(direction) + 0.15 * rng.standard_normal(3)
        s, rr = anatomy.branching_tree(
            rng, start, d, 26.0, r, 3, centre, spread_deg=30, outward=0.4, radius_ratio=0.75
        )
        segs.append(s)
        radii.append(rr)
    segs_all, radii_all = np.concatenate(segs), np.concatenate(radii)
    keep = radii_all[:, 1] >= min_r
    wall = np.maximum(1.5, 0.2 * radii_all[keep])
    cv.tubes(
        segs_all[keep],
        radii_all[keep],
        tissue=AIRWAY_WALL,
        where=inside,
        inner=[(float(np.min(wall)), AIRWAY_LUMEN, None)],
    )


def _vessel_trees(
    cv: anatomy.Canvas, rng: np.random.Generator, hila: Sequence[np.ndarray], lungs: np.ndarray, min_r: float
) -> None:
    """Pulmonary arteries (four trees per hilum) and veins (three per side, from below the hilum).

    Random binary trees of 5-6 generations; tubes thinner than ``min_r`` are drawn at ``min_r`` as partial
    volume (half the contrast).
    """
    segs, radii = [], []
    arteries = ((0.4, 0.2, 1.0), (0.5, 1.0, -0.3), (0.4, -0.6, -1.0), (1.0, -0.2, -0.1))
    veins = ((0.6, 0.7, 0.4), (0.8, 0.1, -0.6), (0.5, -0.7, -0.5))
    for hilum in hila:
        side = np.sign(hilum[0])
        centre = (side * 74, -12, -2)
        for directions, root, gens, r0 in ((arteries, hilum, 6, 6.0), (veins, hilum + (0, 4, -22), 6, 5.0)):
            for direction in directions:
                d = np.array([side * direction[0], direction[1], direction[2]]) + 0.2 * rng.standard_normal(3)
                s, r = anatomy.branching_tree(
                    rng, root, d, 38.0, r0, gens, centre, spread_deg=34, outward=0.5
                )
                segs.append(s)
                radii.append(r)
    segs_all, radii_all = np.concatenate(segs), np.concatenate(radii)
    thin = radii_all.max(axis=1) < min_r
    cv.tubes(segs_all[thin], radii_all[thin], min_radius=min_r, tissue=VESSEL_PV, where=lungs)
    cv.tubes(segs_all[~thin], radii_all[~thin], tissue=VESSEL, where=lungs)


def _chest_wall(
    cv: anatomy.Canvas, rng: np.random.Generator, cavity: np.ndarray, rib_radii: np.ndarray
) -> None:
    """Spine, ribs, sternum, scapulae, clavicles, paraspinal muscles."""
    anatomy.spine(
        cv,
        rng,
        (0.0, -58.0 + rng.normal(0, 3)),
        (-200.0, 200.0),
        _BODY,
        body_radii=(20.0, 16.0),
        level_mm=28.0,
    )
    heads = np.arange(150.0, -200.0, -25.0) + rng.normal(0, 3)
    anatomy.rib_cage(
        cv, rng, (0.0, -6.0), rib_radii, heads, _BODY, drop_mm=75.0, radius_mm=5.5, end_angle_deg=135.0
    )
    wall = ~cavity
    ant = float(rib_radii[1]) - 6.0
    cv.ellipsoid(anatomy.shift(rng, (0, ant, 10), 3), (16, 7, 95), tissue=CORTICAL, where=wall)
    cv.ellipsoid(anatomy.shift(rng, (0, ant, 10), 3), (13, 4.5, 92), tissue=CANCELLOUS, where=wall)
    for side in (-1.0, 1.0):
        rot = anatomy.rotation_matrix((0, 0, side * rng.uniform(25, 40)))
        cv.ellipsoid(
            anatomy.shift(rng, (side * 95, -rib_radii[1] + 5, 80), 4),
            (48, 5, 55),
            rot,
            tissue=CORTICAL,
            where=wall,
        )
        cv.polyline(
            [(side * 12, ant, 150), (side * 70, ant - 10, 158), (side * 125, ant - 40, 162)],
            [7, 6.5, 6],
            tissue=CORTICAL,
            inner=[(2.0, CANCELLOUS, None)],
            where=wall,
        )
        cv.polyline([(side * 32, -90, 200), (side * 34, -92, -200)], [20, 22], tissue=MUSCLE, where=wall)


def chest_phantom(
    shape: Sequence[int] = CHEST_SHAPE, rng: np.random.Generator | int | None = None, contrast: bool = False
) -> anatomy.Phantom:
    """One procedural chest CT (lobes + heart), deterministic per ``rng``.

    Args:
        shape: ``(X, Y, Z)`` volume shape (each >= 16) over the fixed field of view :data:`CHEST_FOV`.
        rng: random generator (or a seed).
        contrast: CT pulmonary angiography (vessels, heart chambers, great vessels +300 HU); the anatomy and
            the noise are the same as without contrast for the same ``rng`` state.

    Returns:
        :class:`Phantom` with ``image`` int16 HU ``(X, Y, Z)``, ``label`` uint8 with ids 1..6 of
        :data:`LOBES_HEART_LABELS`, ``spacing = CHEST_FOV / shape``.

    >>> ph = chest_phantom((48, 48, 40), 2, contrast=True)
    >>> int(ph.label.max())
    6
    """
    shape, rng, spacing, cv = anatomy.warped_canvas(shape, rng, CHEST_FOV, 4.0, 60.0)
    coords = cv.coords
    radii = anatomy.jitter(rng, (150.0, 106.0), 0.05)
    wall = rng.uniform(16, 28)
    cavity = anatomy.body_wall(cv, (0.0, -6.0), radii, wall - 12.0, 12.0, _BODY)
    _chest_wall(cv, rng, cavity, radii - wall + 3.0)
    cavity &= cv.tissue == 0
    heart_d = _heart(cv, rng)
    hila = _great_vessels(cv, rng, cavity)
    min_r = 0.5 * float(np.mean(spacing))  # thinner tubes are drawn at this radius, as partial volume
    lungs = _lungs(cv, rng, cavity & (cv.tissue == 0), heart_d, 0.9 * min_r)  # fissures about one voxel thick
    below = cavity & (coords[2] < _dome(coords, rng)) & (cv.label == 0)
    cv.tissue[below] = np.where(coords[0][below] > -15, LIVER, ABDOMEN)
    gas = below & (coords[0] < -15) & (coords[1] > 0) & (anatomy.smooth_noise(shape, rng, 2.0) > 0.8)
    cv.tissue[gas] = GAS
    cv.tissue[cavity & (cv.tissue == 0)] = MEDIASTINUM
    _airways(cv, rng, cavity, 0.6 * min_r)
    _vessel_trees(cv, rng, hila, lungs, min_r)
    mean_jitter = {k: (25.0 if k in (VESSEL, BLOOD, GREAT_VESSEL) and contrast else 8.0) for k in TEXTURE}
    return anatomy.ct_phantom(cv, _hu(contrast), rng, TEXTURE, mean_jitter, spacing, LOBES_HEART_LABELS)
