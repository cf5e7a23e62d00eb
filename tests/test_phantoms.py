"""Procedural demo phantoms: contract, determinism, labels, laterality, continuity, intensities, texture."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from scipy import ndimage

from anatosynth_components.data.demo.abdomen import ABDOMEN_FOV, ABDOMEN_SHAPE, abdomen_phantom
from anatosynth_components.data.demo.anatomy import (
    Canvas,
    Phantom,
    branching_tree,
    ellipsoid,
    random_warp,
    smooth_noise,
    voxel_grid,
)
from anatosynth_components.data.demo.brain import BRAIN_FOV, BRAIN_SHAPE, brain_phantom
from anatosynth_components.data.demo.chest import CHEST_FOV, CHEST_SHAPE, chest_phantom
from anatosynth_components.data.label_tables import (
    ABDOMENCTCT_LABELS,
    LOBES_HEART_LABELS,
    OASIS35_LABELS,
)
from anatosynth_components.errors import ConfigError

KINDS = {
    "brain": (brain_phantom, BRAIN_SHAPE, BRAIN_FOV, OASIS35_LABELS, np.float32),
    "abdomen": (abdomen_phantom, ABDOMEN_SHAPE, ABDOMEN_FOV, ABDOMENCTCT_LABELS, np.int16),
    "chest": (chest_phantom, CHEST_SHAPE, CHEST_FOV, LOBES_HEART_LABELS, np.int16),
}
SMALL = (40, 48, 36)
#: labels that must survive at the small shape (large structures)
LARGE = {
    "brain": [1, 2, 3, 5, 6, 7, 13, 20, 21, 22, 24, 25, 26],
    "abdomen": [1, 2, 3, 6, 7, 8, 9],
    "chest": [1, 2, 3, 4, 5, 6],
}


@cache
def make(
    kind: str, seed: int = 0, shape: tuple[int, int, int] | None = None, contrast: bool = False
) -> Phantom:
    fn, default, *_ = KINDS[kind]
    kwargs = {"contrast": True} if contrast else {}
    return fn(shape or default, np.random.default_rng(seed), **kwargs)


def centroid(ph: Phantom, label: int) -> np.ndarray:
    """Centroid (voxel index) of one label."""
    return np.array(ndimage.center_of_mass(ph.label == label))


def slice_dice(mask: np.ndarray, axis: int) -> float:
    """Dice between each slice and the next along ``axis``, pooled over the volume."""
    m = np.moveaxis(mask, axis, 0)
    return 2.0 * float((m[1:] & m[:-1]).sum()) / max(float(m[1:].sum() + m[:-1].sum()), 1.0)


def neighbour_correlation(image: np.ndarray, mask: np.ndarray) -> float:
    """Correlation between the residuals (image minus its mean in ``mask``) of voxel pairs along axis 0."""
    res = image.astype(np.float64) - image[mask].mean()
    pair = mask[1:] & mask[:-1]
    a, b = res[1:][pair], res[:-1][pair]
    return float(np.corrcoef(a, b)[0, 1])


# --- contract -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_contract(kind: str) -> None:
    _, shape, fov, names, dtype = KINDS[kind]
    ph = make(kind)
    assert ph.image.shape == ph.label.shape == shape
    assert ph.image.dtype == dtype and ph.label.dtype == np.uint8
    assert ph.spacing == pytest.approx(tuple(f / n for f, n in zip(fov, shape, strict=True)))
    assert all(isinstance(s, float) for s in ph.spacing)
    assert ph.labels == names


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic_and_subjects_differ(kind: str) -> None:
    a, b, c = make(kind, 0, SMALL), make.__wrapped__(kind, 0, SMALL), make(kind, 1, SMALL)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label)
    fg = (a.label > 0) | (c.label > 0)
    assert np.mean(a.label[fg] != c.label[fg]) > 0.1
    assert not np.array_equal(a.image, c.image)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_all_labels_present(kind: str, seed: int) -> None:
    ph = make(kind, seed)
    counts = np.bincount(ph.label.ravel(), minlength=256)
    present = set(np.flatnonzero(counts)) - {0}
    assert present == set(ph.labels)
    assert min(counts[k] for k in ph.labels) >= 20, {k: int(counts[k]) for k in ph.labels}


@pytest.mark.parametrize("kind", KINDS)
def test_other_shape_keeps_large_structures(kind: str) -> None:
    _, _, fov, _, dtype = KINDS[kind]
    ph = make(kind, 3, SMALL)
    assert ph.image.shape == ph.label.shape == SMALL and ph.image.dtype == dtype
    assert ph.spacing == pytest.approx(tuple(f / n for f, n in zip(fov, SMALL, strict=True)))
    assert set(LARGE[kind]) <= set(np.unique(ph.label))
    tiny = KINDS[kind][0]((16, 17, 18), np.random.default_rng(0))
    assert tiny.label.shape == (16, 17, 18) and tiny.label.max() > 0


@pytest.mark.parametrize("kind", KINDS)
def test_rejects_too_small_shape(kind: str) -> None:
    with pytest.raises(ConfigError):
        KINDS[kind][0]((15, 32, 32), np.random.default_rng(0))


# --- anatomy ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_continuous_across_slices(kind: str, axis: int) -> None:
    ph = make(kind)
    assert slice_dice(ph.label > 0, axis) > 0.85
    # the largest structures are continuous too
    counts = np.bincount(ph.label.ravel())
    big = [k for k in ph.labels if counts[k] > 0.05 * (ph.label > 0).sum()]
    assert big and all(slice_dice(ph.label == k, axis) > 0.6 for k in big)


def test_brain_laterality_and_layout() -> None:
    ph = make("brain")
    for left, name in OASIS35_LABELS.items():
        if name.startswith("Left-"):
            right = next(k for k, n in OASIS35_LABELS.items() if n == "Right-" + name[5:])
            assert centroid(ph, left)[0] < centroid(ph, right)[0], name
    mid = ph.label.shape[0] / 2
    for unpaired in (11, 12, 13):  # 3rd/4th ventricle, brain stem on the midline
        assert abs(centroid(ph, unpaired)[0] - mid) < 0.05 * ph.label.shape[0]
    cerebrum, cerebellum = centroid(ph, 1), centroid(ph, 6)
    assert cerebellum[1] < cerebrum[1] and cerebellum[2] < cerebrum[2]  # posterior, inferior
    assert centroid(ph, 13)[2] < centroid(ph, 7)[2]  # brain stem below the thalamus
    assert centroid(ph, 12)[1] > cerebellum[1]  # 4th ventricle in front of the cerebellum


def test_abdomen_laterality_and_layout() -> None:
    ph = make("abdomen")
    c = {k: centroid(ph, k) for k in ph.labels}
    assert c[6][0] > c[1][0]  # liver right of spleen (patient right = high axis 0)
    assert c[2][0] > c[3][0] and c[12][0] > c[13][0]  # kidneys, adrenals
    assert c[9][0] > c[8][0]  # IVC right of the aorta
    assert c[4][0] > c[7][0]  # gall bladder right of the stomach
    assert c[6][2] > c[2][2] and c[12][2] > c[2][2]  # liver, adrenal above the right kidney
    assert c[2][1] < c[6][1] and c[8][1] < c[11][1]  # kidneys posterior, aorta behind the pancreas


def test_chest_laterality_and_layout() -> None:
    ph = make("chest")
    c = {k: centroid(ph, k) for k in ph.labels}
    assert max(c[1][0], c[2][0]) < min(c[3][0], c[4][0], c[5][0])  # left lobes at low axis 0
    assert c[1][2] > c[2][2] and c[3][2] > c[5][2] and c[3][2] > c[4][2]  # upper lobes above
    assert c[4][1] > c[5][1]  # middle lobe anterior to the lower lobe
    lungs = np.array(ndimage.center_of_mass((ph.label > 0) & (ph.label < 6)))
    assert c[6][0] < lungs[0] and c[6][1] > lungs[1]  # heart to the left and anterior


# --- intensities --------------------------------------------------------------------------------------


def test_brain_intensities() -> None:
    ph = make("brain")
    img, lab = ph.image, ph.label
    assert 0.0 <= img.min() and img.max() <= 1.0
    assert img[lab > 0].min() >= 0.0
    mean = {
        k: img[np.isin(lab, ks)].mean() for k, ks in {"wm": [1, 20], "gm": [2, 21], "csf": [3, 22]}.items()
    }
    assert mean["wm"] > mean["gm"] + 0.1 and mean["gm"] > mean["csf"] + 0.1
    # skull-stripped: exactly 0 well outside the brain; unlabelled sulcal CSF inside it is dark, not 0
    from scipy import ndimage

    far = ~ndimage.binary_dilation(lab > 0, iterations=4)
    assert np.all(img[far] == 0.0)
    sulcal = (lab == 0) & ndimage.binary_erosion(ndimage.binary_closing(lab > 0, iterations=2), iterations=1)
    assert sulcal.sum() > 50 and 0.05 < np.median(img[sulcal]) < mean["gm"] - 0.1
    assert img[np.isin(lab, [18, 34])].mean() > mean["gm"]  # vessels bright


def test_abdomen_intensities() -> None:
    ph = make("abdomen")
    img, lab = ph.image.astype(np.float64), ph.label
    mean = {k: img[lab == k].mean() for k in ph.labels}
    assert mean[8] > mean[6] > mean[4]  # aorta > liver > gall bladder
    assert 60 < mean[6] < 160 and mean[1] > 60
    # subcutaneous fat: just inside the body outline on the left-right line through the centre
    ny, nz = img.shape[1] // 2, img.shape[2] // 2
    fat = []
    for z in range(nz - 10, nz + 10):
        row = img[:, ny, z]
        first = int(np.argmax(row > -500))
        fat.append(row[first + 1 : first + 3].mean())
    assert -170 < np.median(fat) < -30 and np.median(fat) < mean[6] - 100
    top = img[:, :, -img.shape[2] // 8 :]
    assert np.mean((top > -950) & (top < -750)) > 0.05  # lung bases at the superior end
    assert np.percentile(img, 99.9) > 300  # bone


def test_chest_intensities_and_contrast() -> None:
    plain, cta = make("chest"), make("chest", contrast=True)
    assert np.array_equal(plain.label, cta.label)
    lungs = (plain.label > 0) & (plain.label < 6)
    assert -900 < np.median(plain.image[lungs]) < -700
    assert plain.image[lungs].mean() > np.median(plain.image[lungs])  # vessels/airways/fissures inside
    diff = cta.image.astype(np.float64) - plain.image
    assert diff[lungs].mean() > 0 and diff[lungs].max() > 200  # the vessels inside the lungs are brighter
    assert np.mean(diff[lungs] > 100) > 0.005
    heart = plain.label == 6
    assert -20 < plain.image[heart].mean() < 100 and cta.image[heart].mean() > plain.image[heart].mean() + 100


@pytest.mark.parametrize(("kind", "labels"), [("brain", [1, 20]), ("abdomen", [6]), ("chest", [6])])
def test_texture_is_spatially_correlated(kind: str, labels: list[int]) -> None:
    ph = make(kind)
    mask = ndimage.binary_erosion(np.isin(ph.label, labels), iterations=2)
    assert mask.sum() > 500
    assert ph.image[mask].std() > 0
    assert neighbour_correlation(ph.image, mask) > 0.2


# --- building blocks ----------------------------------------------------------------------------------


def test_building_blocks() -> None:
    rng = np.random.default_rng(0)
    grid = voxel_grid((16, 20, 24), (2.0, 2.0, 2.0))
    assert grid.shape == (3, 16, 20, 24) and np.allclose(grid.reshape(3, -1).mean(axis=1), 0)
    warped = random_warp(grid, rng, amplitude_mm=3.0, scale_jitter=0.0, rotation_deg=0.0)
    assert 0.5 < np.abs(warped - grid).max() < 15
    d = ellipsoid(grid, (0, 0, 0), (10, 8, 6))
    assert d[8, 10, 12] < 0 < d[0, 0, 0]
    noise = smooth_noise((20, 20, 20), rng, 2.0)
    assert abs(noise.std() - 1) < 1e-3 and np.corrcoef(noise[1:].ravel(), noise[:-1].ravel())[0, 1] > 0.8
    segs, radii = branching_tree(rng, (0, 0, 0), (0, 0, 1), 10.0, 3.0, 4, centre=(0, 0, -20))
    assert segs.shape == (15, 2, 3) and radii.shape == (15, 2) and np.all(radii[:, 1] < radii[:, 0])
    cv = Canvas(grid)
    cv.tubes(segs, radii, tissue=1, label=2)
    assert cv.label.max() == 2 and cv.tissue[cv.label == 2].min() == 1
