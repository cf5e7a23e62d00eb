"""Demo datasets: written in each real layout, read back by the real readers, anatomically continuous."""

from __future__ import annotations

import numpy as np
import pytest

from anatosynth_components.data import LoadVolumed, ValidateVolumed, read_dataset, split_subjects
from anatosynth_components.data.demo import DEMO_KINDS, generate_demo
from anatosynth_components.data.demo.abdomen import ABDOMEN_FOV
from anatosynth_components.data.demo.brain import BRAIN_FOV
from anatosynth_components.data.demo.chest import CHEST_FOV
from anatosynth_components.data.label_tables import ABDOMENCTCT_LABELS, LOBES_HEART_LABELS, OASIS35_LABELS

SMALL = {"brain": (40, 56, 48), "abdomen": (48, 40, 64), "chest": (48, 48, 40), "penet": (64, 64, 24)}
EXPECTED = {
    "brain": ("learn2reg", "OASIS", OASIS35_LABELS),
    "abdomen": ("learn2reg", "AbdomenCTCT", ABDOMENCTCT_LABELS),
    "chest": ("datalist", "chest demo", LOBES_HEART_LABELS),
    "penet": ("penet", "PENet", {}),
}


def adjacent_dice(label: np.ndarray, axis: int) -> float:
    """Mean Dice of the foreground between neighbouring slices along ``axis`` (slices with foreground)."""
    fg = np.moveaxis(label > 0, axis, 0)
    scores = [
        2 * (a & b).sum() / (a.sum() + b.sum())
        for a, b in zip(fg[:-1], fg[1:], strict=True)
        if a.sum() + b.sum() > 0
    ]
    return float(np.mean(scores))


@pytest.fixture(scope="module", params=sorted(DEMO_KINDS))
def demo(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param) / "data"
    generate_demo(request.param, out, subjects=3, seed=7, shape=SMALL[request.param], progress=False)
    return request.param, out


def load_all(index):
    keys = ["image", "label"] if "label" in index.items[0] else ["image"]
    check = ValidateVolumed("image", "label" if "label" in keys else None, index.labels or None)
    return [check(LoadVolumed(keys)(item)) for item in index.items]


def test_demo_is_read_by_the_real_reader(demo):
    kind, out = demo
    layout, name, labels = EXPECTED[kind]
    index = read_dataset(out)
    assert (index.layout, index.name, index.labels) == (layout, name, labels)
    assert len(index.subjects) == 3
    volumes = load_all(index)  # validation: shapes, affines, label ids in the set
    for d in volumes:
        assert d["image"].shape == (1, *SMALL[kind])
    if kind == "penet":
        assert {it["split"] for it in index.items} == {"training", "validation", "test"}
        parts = split_subjects(index.items, out.parent / "split.json")
        assert [len(parts[k]) for k in ("training", "validation", "test")] == [1, 1, 1]
        return
    spacing = np.diag(volumes[0]["image"].affine.numpy())[:3]
    fov = {"brain": BRAIN_FOV, "abdomen": ABDOMEN_FOV, "chest": CHEST_FOV}[kind]
    np.testing.assert_allclose(spacing, np.array(fov) / np.array(SMALL[kind]), rtol=1e-5)
    labels_0 = volumes[0]["label"][0].numpy()
    assert len(np.unique(labels_0)) > 3
    for axis in range(3):  # anatomy continues from slice to slice (real brain at 4 mm: ~0.62)
        assert adjacent_dice(labels_0, axis) > 0.6, axis
    # subjects differ (deformation and size changes), not copies
    assert np.mean(volumes[0]["label"].numpy() != volumes[1]["label"].numpy()) > 0.01


def test_brain_continuity_matches_real_anatomy(real_brain):
    """At the demo's 2 mm voxels, the phantom's slice-to-slice label agreement is close to that of
    a real OASIS brain (FreeSurfer labels remapped to the 35 classes) subsampled to 2 mm."""
    from anatosynth_components.data.demo.brain import brain_phantom
    from anatosynth_components.data.label_tables import get_label_table
    from anatosynth_components.data.remap_labels import remap_labels

    real = remap_labels(real_brain["seg"][::2, ::2, ::2], get_label_table("aseg_to_oasis35"))
    phantom = brain_phantom(DEMO_KINDS["brain"].shape, np.random.default_rng([0, 0])).label
    for axis in range(3):
        assert adjacent_dice(phantom, axis) > 0.9 * adjacent_dice(real, axis), axis


def test_intensity_conventions(demo):
    kind, out = demo
    d = load_all(read_dataset(out))[0]
    image = d["image"].numpy()
    if kind == "brain":
        assert image.min() == 0.0 and image.max() <= 1.0
        assert np.mean(image[d["label"].numpy() == 0] == 0) > 0.8  # skull-stripped: background is 0
    else:  # CT in Hounsfield units: air outside the body, soft tissue and bone inside
        assert image.min() <= -900 and image.max() >= 200


def test_deterministic_per_seed(tmp_path):
    a = generate_demo("chest", tmp_path / "a", subjects=2, seed=1, shape=(32, 32, 32), progress=False)
    b = generate_demo("chest", tmp_path / "b", subjects=2, seed=1, shape=(32, 32, 32), progress=False)
    c = generate_demo("chest", tmp_path / "c", subjects=2, seed=2, shape=(32, 32, 32), progress=False)
    va, vb, vc = (load_all(read_dataset(p)) for p in (a, b, c))
    for x, y in zip(va, vb, strict=True):
        np.testing.assert_array_equal(x["image"].numpy(), y["image"].numpy())
        np.testing.assert_array_equal(x["label"].numpy(), y["label"].numpy())
    assert not np.array_equal(va[0]["image"].numpy(), vc[0]["image"].numpy())


def test_reuse_refuse_overwrite_and_crash(tmp_path, monkeypatch):
    out = tmp_path / "d"
    generate_demo("brain", out, subjects=1, seed=0, shape=(24, 24, 24), progress=False)
    stamp = (out / "OASIS_dataset.json").stat().st_mtime_ns
    generate_demo("brain", out, subjects=1, seed=0, shape=(24, 24, 24), progress=False)  # same: reused
    assert (out / "OASIS_dataset.json").stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match="exists and is not empty"):
        generate_demo("brain", out, subjects=2, seed=0, shape=(24, 24, 24), progress=False)
    generate_demo("brain", out, subjects=2, seed=0, shape=(24, 24, 24), overwrite=True, progress=False)
    assert len(read_dataset(out).items) == 2

    import anatosynth_components.data.demo.generate as gen

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    spec = gen.DEMO_KINDS["abdomen"]
    monkeypatch.setitem(gen.DEMO_KINDS, "abdomen", gen.DemoKind(spec.make, spec.shape, spec.layout, crash))
    with pytest.raises(RuntimeError, match="disk full"):
        generate_demo("abdomen", tmp_path / "crashed", subjects=1, shape=(24, 24, 24), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # nothing half-written left behind
