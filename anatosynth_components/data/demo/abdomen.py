"""Procedural portal-venous abdominal CT phantom with the 13 Learn2Reg AbdomenCTCT organs.

Shapes are defined in millimetres about the centre of the field of view (axis 0 to the patient's Right,
axis 1 Anterior, axis 2 Superior) and evaluated at randomly warped coordinates: an elliptic body with
subcutaneous fat and a muscle wall, spine with discs and posterior arches, lower ribs, psoas and paraspinal
muscles, lung bases above the diaphragm domes, the organs (liver right, spleen and stomach left, ...), major
vessels, duodenum, colon with gas and faeces, bladder and iliac bones, and a bowel-like fat/soft-tissue
filler elsewhere.

>>> ph = abdomen_phantom((48, 40, 64), np.random.default_rng(0))
>>> ph.image.dtype, ph.label.dtype, ph.spacing
(dtype('int16'), dtype('uint8'), (8.0, 8.0, 8.0))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from anatosynth_components.data.demo import anatomy
from anatosynth_components.data.label_tables import ABDOMENCTCT_LABELS

#: Field of view (mm) along axes 0 (R), 1 (A), 2 (S) and the default shape.
ABDOMEN_FOV: tuple[float, float, float] = (384.0, 320.0, 512.0)
ABDOMEN_SHAPE: tuple[int, int, int] = (96, 80, 128)

SPLEEN, R_KIDNEY, L_KIDNEY, GALLBLADDER, ESOPHAGUS, LIVER, STOMACH = 1, 2, 3, 4, 5, 6, 7
AORTA, IVC, PORTAL, PANCREAS, R_ADRENAL, L_ADRENAL = 8, 9, 10, 11, 12, 13

# tissue classes (intensity model)
AIR, FAT, MUSCLE, CORTICAL, CANCELLOUS, DISC, CANAL, LUNG = 0, 1, 2, 3, 4, 5, 6, 7
T_LIVER, T_SPLEEN, K_CORTEX, K_MEDULLA, ARTERY, T_IVC, T_PORTAL, T_PANCREAS = 8, 9, 10, 11, 12, 13, 14, 15
BILE, GUT_WALL, GAS, FLUID, T_ADRENAL, BOWEL, VISCERAL_FAT, FAECES, HEART = 16, 17, 18, 19, 20, 21, 22, 23, 24

#: portal-venous phase mean HU per tissue class
HU = {AIR: -1000, FAT: -100, MUSCLE: 50, CORTICAL: 850, CANCELLOUS: 380, DISC: 90, CANAL: 15, LUNG: -850}
HU |= {T_LIVER: 110, T_SPLEEN: 120, K_CORTEX: 180, K_MEDULLA: 130, ARTERY: 170, T_IVC: 140, T_PORTAL: 160}
HU |= {T_PANCREAS: 100, BILE: 10, GUT_WALL: 40, GAS: -900, FLUID: 15, T_ADRENAL: 40, BOWEL: 35}
HU |= {VISCERAL_FAT: -95, FAECES: -250, HEART: 120}
#: texture standard deviation (HU) per class (spatially correlated)
TEXTURE = {k: 15.0 for k in HU} | {AIR: 3.0, LUNG: 25.0, CORTICAL: 60.0, CANCELLOUS: 50.0, GAS: 15.0}
TEXTURE |= {FAECES: 150.0, FAT: 10.0, VISCERAL_FAT: 12.0}

#: template height (mm) of the centre of the field of view (the template's z = 0 is near the iliac crests)
_Z_OFFSET = 55.0

_BODY = anatomy.BodyTissues(
    fat=FAT, muscle=MUSCLE, cortical=CORTICAL, cancellous=CANCELLOUS, disc=DISC, canal=CANAL
)


def _diaphragm(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Height (mm) of the diaphragm at each (x, y): two domes, the right one higher, lower at the back."""
    zr, zl = 172 + rng.normal(0, 6), 160 + rng.normal(0, 6)
    right = zr + 28 * np.exp(-(((p[0] - 65) / 70) ** 2) - (p[1] / 80) ** 2)
    left = zl + 25 * np.exp(-(((p[0] + 65) / 65) ** 2) - (p[1] / 80) ** 2)
    return np.maximum(right, left) - 30 * np.clip(-(p[1] + 30) / 80, 0, 1) - 10


def _organs(cv: anatomy.Canvas, rng: np.random.Generator, abdomen: np.ndarray) -> None:
    """Solid organs, vessels and hollow viscera, painted inside the abdominal cavity."""
    p = cv.coords
    # liver: right lobe, left lobe, caudate; only below the diaphragm
    liver = anatomy.ellipsoid(p, anatomy.shift(rng, (70, 8, 128), 4), anatomy.jitter(rng, (78, 80, 64), 0.05))
    liver = np.minimum(
        liver,
        anatomy.ellipsoid(p, anatomy.shift(rng, (-8, 38, 135), 4), anatomy.jitter(rng, (68, 48, 34), 0.06)),
    )
    liver = np.minimum(
        liver,
        anatomy.ellipsoid(p, anatomy.shift(rng, (20, -18, 120), 3), anatomy.jitter(rng, (26, 26, 30), 0.06)),
    )
    mask = (liver < 0) & abdomen
    cv.tissue[mask], cv.label[mask] = T_LIVER, LIVER
    # stomach (J-shaped tube) with a gas cap anteriorly and fluid behind a wall
    st_pts = anatomy.perturb(
        rng, [(-60, -8, 172), (-66, 14, 140), (-46, 36, 110), (-10, 46, 94), (20, 32, 92)]
    )
    st_r = anatomy.jitter(rng, [34, 38, 30, 22, 13], 0.06)
    cv.polyline(st_pts, st_r, tissue=GUT_WALL, label=STOMACH, where=abdomen, inner=[(4.0, FLUID, None)])
    gas_level = float(rng.uniform(10, 30))
    cv.paint((slice(None),) * 3, (cv.tissue == FLUID) & (p[1] > gas_level), GAS)
    # spleen posterior-left, rotated along the ribs
    rot = anatomy.rotation_matrix((0, 0, rng.uniform(25, 45)))
    cv.ellipsoid(
        anatomy.shift(rng, (-92, -38, 128), 4),
        anatomy.jitter(rng, (24, 52, 44), 0.07),
        rot,
        tissue=T_SPLEEN,
        label=SPLEEN,
        where=abdomen,
    )
    # gall bladder under the liver, fundus anterior-inferior
    rot = anatomy.rotation_matrix((rng.uniform(20, 35), rng.uniform(-10, 10), 0))
    cv.ellipsoid(
        anatomy.shift(rng, (58, 44, 78), 4),
        anatomy.jitter(rng, (15, 16, 32), 0.08),
        rot,
        tissue=BILE,
        label=GALLBLADDER,
        where=abdomen,
    )
    _kidneys(cv, rng, abdomen)
    _vessels(cv, rng)
    # pancreas along the splenic vein, head in the duodenal curve
    pa_pts = anatomy.perturb(
        rng, [(32, 16, 66), (10, 22, 80), (-25, 14, 92), (-62, -8, 106), (-80, -20, 116)]
    )
    cv.polyline(
        pa_pts,
        anatomy.jitter(rng, [15, 11, 10, 9, 7], 0.06),
        tissue=T_PANCREAS,
        label=PANCREAS,
        where=abdomen,
    )
    _portal(cv, rng)
    # adrenal glands: thin plates above and medial to the kidneys
    for side, lab in ((1.0, R_ADRENAL), (-1.0, L_ADRENAL)):
        rot = anatomy.rotation_matrix((rng.uniform(-15, 15), 0, side * rng.uniform(20, 40)))
        cv.ellipsoid(
            anatomy.shift(rng, (side * 44, -34, 150 - 4 * (side < 0)), 2),
            anatomy.jitter(rng, (6.5, 14, 18), 0.06),
            rot,
            tissue=T_ADRENAL,
            label=lab,
        )
    # esophagus from the top of the field of view to the cardia
    es_pts = anatomy.perturb(rng, [(2, -12, 330), (0, -8, 215), (-18, -2, 188), (-42, -4, 172)], 2.0)
    cv.polyline(es_pts, anatomy.jitter(rng, [8.5, 8.5, 8.5, 9.5], 0.05), tissue=GUT_WALL, label=ESOPHAGUS)


def _kidneys(cv: anatomy.Canvas, rng: np.random.Generator, abdomen: np.ndarray) -> None:
    """Kidneys with cortex, medulla and a medial hilum of sinus fat (unlabelled)."""
    for side, lab, z in ((1.0, R_KIDNEY, 68.0), (-1.0, L_KIDNEY, 84.0)):
        rot = anatomy.rotation_matrix(
            (rng.uniform(-20, -10), side * rng.uniform(10, 20), side * rng.uniform(20, 35))
        )
        centre = anatomy.shift(rng, (side * 72, -46, z), 4)
        radii = anatomy.jitter(rng, (24, 28, 52), 0.06)
        got = cv.ellipsoid_sdf(centre, radii, rot)
        if got is None:
            continue
        box, d = got
        cv.paint(box, d < 0, K_CORTEX, lab, abdomen)
        cv.paint(box, d < -6.5, K_MEDULLA, None, abdomen)
        hilum = centre - side * rot[:, 0] * radii[0] * 0.75
        cv.ellipsoid(hilum, (9, 12, 24), rot, tissue=FAT, label=0, where=cv.label == lab)


def _vessels(cv: anatomy.Canvas, rng: np.random.Generator) -> None:
    """Aorta with common iliac arteries, inferior vena cava, heart at the top."""
    ao = anatomy.perturb(rng, [(-18, -32, 330), (-16, -22, 150), (-10, -14, 20), (-8, -14, -88)], 2.5)
    cv.polyline(ao, anatomy.jitter(rng, [12.5, 12, 10.5, 9.5], 0.05), tissue=ARTERY, label=AORTA)
    for side in (-1.0, 1.0):
        il = anatomy.perturb(rng, [ao[-1] + (0, 0, 6), (side * 30, -14, -130), (side * 55, -8, -185)], 2.5)
        cv.polyline(il, [7.5, 7, 6.5], tissue=ARTERY)
    ivc = anatomy.perturb(
        rng, [(24, -16, -95), (26, -16, 60), (30, -24, 140), (18, -12, 200), (8, 2, 228)], 2.5
    )
    cv.polyline(ivc, anatomy.jitter(rng, [11, 11.5, 12, 13, 13], 0.05), tissue=T_IVC, label=IVC)
    cv.ellipsoid(
        anatomy.shift(rng, (-25, 45, 290), 5),
        (70, 55, 60),
        anatomy.rotation_matrix((0, -20, 30)),
        tissue=HEART,
        label=0,
    )


def _portal(cv: anatomy.Canvas, rng: np.random.Generator) -> None:
    """Portal vein (confluence to the liver hilum) and splenic vein; superior mesenteric vein unlabelled."""
    conf = anatomy.shift(rng, (10, 8, 84), 3)
    pv = anatomy.perturb(rng, [conf, (35, 10, 104), (55, 12, 118), (72, 6, 124)], 2.0)
    cv.polyline(pv, anatomy.jitter(rng, [8, 7.5, 6.5, 5], 0.06), tissue=T_PORTAL, label=PORTAL)
    cv.polyline(
        anatomy.perturb(rng, [pv[2], (30, 30, 132), (5, 40, 136)], 2.0),
        [4.5, 4, 3.5],
        tissue=T_PORTAL,
        label=PORTAL,
    )
    sv = anatomy.perturb(rng, [conf, (-28, 2, 96), (-66, -18, 110), (-84, -30, 120)], 2.0)
    cv.polyline(sv, anatomy.jitter(rng, [6, 5.5, 5, 4.5], 0.06), tissue=T_PORTAL, label=PORTAL)
    smv = anatomy.perturb(rng, [conf, (14, 22, 40), (18, 30, -20)], 2.0)
    cv.polyline(smv, [5.5, 5, 4], tissue=T_PORTAL)


def _bowel(cv: anatomy.Canvas, rng: np.random.Generator, abdomen: np.ndarray) -> None:
    """Duodenum, colon (gas and faeces) and small-bowel-like filler in the rest of the cavity."""
    free = abdomen & (cv.label == 0) & (cv.tissue == 0)
    duo = anatomy.perturb(rng, [(20, 32, 92), (44, 14, 86), (48, 6, 56), (22, 12, 40), (-22, 8, 46)], 2.0)
    cv.polyline(duo, [12, 12, 12, 11, 10], tissue=GUT_WALL, where=free, inner=[(4.0, FLUID, None)])
    colon = anatomy.perturb(
        rng,
        [
            (-10, -40, -215),
            (-45, 20, -160),
            (-100, -8, -100),
            (-104, -8, 20),
            (-88, 18, 104),
            (0, 58, 46),
            (84, 28, 64),
            (102, -4, 20),
            (100, -10, -80),
            (85, 10, -120),
        ],
        5.0,
    )
    radii = anatomy.jitter(rng, [18, 18, 20, 22, 24, 24, 26, 28, 28, 30], 0.08)
    free = abdomen & (cv.label == 0) & (cv.tissue == 0)
    cv.polyline(colon, radii, tissue=GUT_WALL, where=free, inner=[(4.0, FAECES, None)])
    lumen = cv.tissue == FAECES
    cv.paint((slice(None),) * 3, lumen & (anatomy.smooth_noise(cv.shape, rng, 1.2) > 0.3), GAS)
    # small bowel loops and mesenteric fat
    rest = abdomen & (cv.tissue == 0)
    loops = anatomy.smooth_noise(cv.shape, rng, 2.0)
    cv.tissue[rest] = VISCERAL_FAT
    cv.tissue[rest & (np.abs(loops) < 0.45)] = BOWEL
    cv.tissue[rest & (np.abs(loops) < 0.12) & (anatomy.smooth_noise(cv.shape, rng, 1.5) > 1.2)] = GAS


def _skeleton(
    cv: anatomy.Canvas, rng: np.random.Generator, cavity: np.ndarray, rib_radii: np.ndarray
) -> None:
    """Spine, lower ribs, psoas and paraspinal muscles, iliac wings and sacrum, bladder."""
    p = cv.coords
    y_spine = -52.0 + rng.normal(0, 3)
    anatomy.spine(
        cv, rng, (0.0, y_spine), (-140.0, 330.0), _BODY, body_radii=tuple(anatomy.jitter(rng, (23, 18), 0.05))
    )
    for side in (-1.0, 1.0):
        cv.polyline(
            anatomy.perturb(rng, [(side * 28, -42, 110), (side * 44, -34, 0), (side * 62, -18, -150)], 2.0),
            [9, 20, 22],
            tissue=MUSCLE,
        )
        cv.polyline(
            anatomy.perturb(rng, [(side * 36, -96, 330), (side * 38, -98, 0), (side * 30, -92, -150)], 2.0),
            [22, 26, 20],
            tissue=MUSCLE,
        )
        wing = anatomy.ellipsoid(
            p, anatomy.shift(rng, (side * 30, -20, -95), 3), anatomy.jitter(rng, (105, 62, 85), 0.04)
        )
        iliac = (np.abs(wing) < 4.5) & (side * p[0] > 45) & (p[2] < -95) & (p[2] > -200) & (p[1] < 35)
        cv.tissue[iliac & (wing < -2)] = CANCELLOUS
        cv.tissue[iliac & (wing >= -2)] = CORTICAL
    cv.ellipsoid(
        anatomy.shift(rng, (0, -72, -185), 3),
        (42, 14, 55),
        anatomy.rotation_matrix((-30, 0, 0)),
        tissue=CORTICAL,
    )
    cv.ellipsoid(
        anatomy.shift(rng, (0, -72, -185), 3),
        (38, 10, 51),
        anatomy.rotation_matrix((-30, 0, 0)),
        tissue=CANCELLOUS,
    )
    cv.ellipsoid(
        anatomy.shift(rng, (0, 42, -222), 6),
        anatomy.jitter(rng, (45, 34, 36), 0.1),
        tissue=FLUID,
        where=cavity,
    )
    heads = np.arange(350.0, 60.0, -28.0) + rng.normal(0, 3)
    anatomy.rib_cage(
        cv, rng, (0.0, -6.0), rib_radii, heads, _BODY, drop_mm=85.0, radius_mm=6.0, end_angle_deg=125.0
    )


def abdomen_phantom(
    shape: Sequence[int] = ABDOMEN_SHAPE, rng: np.random.Generator | int | None = None
) -> anatomy.Phantom:
    """One procedural portal-venous abdominal CT (AbdomenCTCT labels), deterministic per ``rng``.

    Args:
        shape: ``(X, Y, Z)`` volume shape (each >= 16) over the fixed field of view :data:`ABDOMEN_FOV`.
        rng: random generator (or a seed).

    Returns:
        :class:`Phantom` with ``image`` int16 HU ``(X, Y, Z)``, ``label`` uint8 with ids 1..13 of
        :data:`ABDOMENCTCT_LABELS`, ``spacing = ABDOMEN_FOV / shape``.

    >>> ph = abdomen_phantom((48, 40, 64), 3)
    >>> int(ph.image.min()) >= -1024
    True
    """
    shape, rng, spacing, cv = anatomy.warped_canvas(
        shape, rng, ABDOMEN_FOV, 4.0, 60.0, origin_mm=(0.0, 0.0, _Z_OFFSET)
    )
    coords = cv.coords
    radii = anatomy.jitter(rng, (158.0, 112.0), 0.05)
    wall = rng.uniform(12, 28) + rng.uniform(9, 14)  # subcutaneous fat + muscle (mm)
    cavity = anatomy.body_wall(cv, (0.0, -6.0), radii, wall - 11.0, 11.0, _BODY)
    _skeleton(cv, rng, cavity, radii - wall + 3.0)
    z_d = _diaphragm(coords, rng)
    cavity &= cv.tissue == 0
    abdomen = cavity & (coords[2] < z_d)
    thorax = cavity & (coords[2] > z_d + 5.0)
    cv.tissue[cavity & ~abdomen & ~thorax] = MUSCLE  # diaphragm
    cv.tissue[thorax] = LUNG
    _organs(cv, rng, abdomen)
    mediastinum = thorax & (np.abs(coords[0] + 5) < 32) & (coords[1] > -70)
    cv.tissue[mediastinum & (cv.tissue == LUNG)] = VISCERAL_FAT
    _bowel(cv, rng, abdomen)
    mean_jitter = {k: 8.0 for k in HU if k not in (AIR, GAS)}
    return anatomy.ct_phantom(cv, HU, rng, TEXTURE, mean_jitter, spacing, ABDOMENCTCT_LABELS)
