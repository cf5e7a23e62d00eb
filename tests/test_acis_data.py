"""ACIS data parts: the PENet threshold annotation on a real CT, slices that keep their place in space,
fixed-seed pseudo-masks, the data grid, writing sampled pairs, realism statistics."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import CacheDataset, MetaTensor

from anatosynth_components.acis import (
    ChestThresholdLabelsd,
    RandSlicesd,
    SavePaird,
    SeededPseudoMaskd,
    Slicesd,
    chest_threshold_labels,
    read_data_grid,
    realism_statistics,
)
from anatosynth_components.acis.pseudomask import RandPseudoMaskd
from anatosynth_components.atomic import write_json, write_nifti
from anatosynth_components.data.demo.chest import chest_phantom
from anatosynth_components.errors import ConfigError, DataError


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_threshold_annotation_finds_the_lungs_of_a_real_ct(real_ct):
    """TotalSegmentator's lobes (10, 11, 13, 14 here) against the derived 'lungs and airways' class; the
    crop's colon gas (label 20) must not be taken for lung."""
    labels = chest_threshold_labels(real_ct["image"].astype(np.float32))
    seg = real_ct["label"]
    lungs = np.isin(seg, [10, 11, 12, 13, 14])
    assert dice(labels == 2, lungs) > 0.8
    assert (labels[seg == 20] == 2).mean() < 0.05  # colon gas is not lung
    assert (labels[seg == 5] == 1).mean() > 0.95  # liver: soft tissue
    assert (labels[seg > 0] > 0).all()  # every labelled organ lies in the body


def test_threshold_annotation_matches_the_phantom_anatomy_and_names_bad_input():
    ph = chest_phantom((48, 48, 32), np.random.default_rng(4), contrast=True)
    out = ChestThresholdLabelsd()({"image": MetaTensor(torch.from_numpy(ph.image[None].astype(np.float32)))})
    labels = out["label"][0].numpy()
    assert dice(labels == 2, (ph.label >= 1) & (ph.label <= 5)) > 0.9
    image = MetaTensor(torch.zeros(1, 8, 8), meta={"filename_or_obj": "flat.nii.gz"})
    with pytest.raises(DataError, match=r"flat.nii.gz: expected a \(1, X, Y, Z\) CT volume in HU"):
        ChestThresholdLabelsd()({"image": image})


def test_threshold_settings_are_one_checked_set():
    ph = chest_phantom((32, 32, 24), np.random.default_rng(1))
    hu = ph.image.astype(np.float32)
    settings = {"axis": 1, "lung_hu": -450.0, "gas_hu": -960.0}
    out = ChestThresholdLabelsd(**settings)({"image": torch.from_numpy(hu[None])})["label"]
    np.testing.assert_array_equal(out[0].numpy(), chest_threshold_labels(hu, **settings))
    assert not np.array_equal(chest_threshold_labels(hu, lung_hu=-700.0), chest_threshold_labels(hu))
    with pytest.raises(ConfigError, match=r"unknown chest threshold settings \['lung'\]"):
        ChestThresholdLabelsd(lung=-400.0)
    with pytest.raises(ConfigError, match=r"body_hu \(400.0\) and lung_hu \(-400.0\) < dense_hu \(300.0\)"):
        chest_threshold_labels(hu, body_hu=400.0)
    with pytest.raises(ConfigError, match="axis must be a spatial axis 0, 1 or 2"):
        ChestThresholdLabelsd(axis=3)


def test_slices_keep_their_place_in_space():
    rotation = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    affine = torch.eye(4, dtype=torch.float64)
    affine[:3, :3] = rotation @ torch.diag(torch.tensor([0.8, 1.5, 2.5], dtype=torch.float64))
    affine[:3, 3] = torch.tensor([-10.0, 4.0, 30.0])
    volume = MetaTensor(torch.rand(1, 6, 7, 5), affine=affine)
    label = MetaTensor((torch.rand(1, 6, 7, 5) > 0.5).float(), affine=affine)
    for axis in (0, 1, 2):
        items = Slicesd(["image", "label"], axis=axis)({"image": volume, "label": label, "subject": "s"})
        assert len(items) == volume.shape[axis + 1] and items[2]["subject"] == "s"
        item = items[3]
        image = item["image"]
        assert torch.equal(image.as_tensor(), torch.select(volume.as_tensor(), axis + 1, 3))
        i, j = 2, 4  # in-plane voxel (i, j) of slice 3 is volume voxel with index 3 on `axis`
        index = [i, j]
        index.insert(axis, 3)
        world_slice = image.affine @ torch.tensor([i, j, 0.0, 1.0], dtype=torch.float64)
        world_volume = affine @ torch.tensor([*map(float, index), 1.0], dtype=torch.float64)
        assert torch.allclose(world_slice, world_volume)


def test_random_slices_respect_the_foreground_and_the_seed():
    label = torch.zeros(1, 4, 4, 10)
    label[..., 6:8] = 1
    data = {"image": MetaTensor(torch.rand(1, 4, 4, 10)), "label": MetaTensor(label)}
    t = RandSlicesd(["image", "label"], num_samples=20, min_foreground=0.5)
    t.set_random_state(seed=1)
    picks = [it["slice_index"] for it in t(data)]
    assert set(picks) <= {6, 7} and len(set(picks)) == 2
    t.set_random_state(seed=1)
    assert [it["slice_index"] for it in t(data)] == picks
    with pytest.raises(DataError, match="expected 3-D volumes"):
        Slicesd("image")({"image": torch.rand(1, 4, 4)})


def test_seeded_pseudo_mask_is_cached_and_reproducible(real_ct):
    hu = real_ct["image"][None, :, :, 15].astype(np.float32)
    image = MetaTensor(torch.from_numpy((np.clip(hu, -1000, 600) + 1000) / 1600), affine=torch.eye(4) * 3)
    seeded = SeededPseudoMaskd("image", num_points=200, seed=7)
    reference = RandPseudoMaskd("image", num_points=200)
    reference.set_random_state(seed=7)
    expected = reference({"image": image})["pseudo_mask"]
    ds = CacheDataset([{"image": image}] * 2, seeded, progress=False)
    for item in (ds[0], ds[1], seeded({"image": image})):
        assert torch.equal(item["pseudo_mask"], expected)
    assert len(torch.unique(expected)) > 20  # a real Voronoi mosaic, not a constant


def grid(tmp_path, size=(6, 5)):
    affine = np.diag([0.7, 0.7, 2.0, 1.0])
    affine[:3, 3] = [5.0, -3.0, 12.0]
    doc = {
        "spatial_dims": len(size),
        "spatial_size": list(size),
        "affine": affine.tolist(),
        "spacing": [0.7, 0.7],
        "label_names": {"1": "lung", "2": "heart"},
        "hu_window": [-1000, 600],
    }
    write_json(tmp_path / "data_grid.json", doc)
    return read_data_grid(tmp_path / "data_grid.json"), affine


def test_data_grid_and_saved_pairs(tmp_path):
    g, affine = grid(tmp_path)
    with pytest.raises(ConfigError, match="missing.json: file not found; train the bundle first"):
        read_data_grid(tmp_path / "missing.json")
    write_json(
        tmp_path / "bad.json",
        {**json.loads((tmp_path / "data_grid.json").read_text()), "affine": [[1, 0], [0, 1]]},
    )
    with pytest.raises(DataError, match="bad.json: 'affine' must be a finite, invertible 4x4 matrix"):
        read_data_grid(tmp_path / "bad.json")

    save = SavePaird("pred", tmp_path / "out", g, output_range=[-1000, 600], prefix="p")
    pred = torch.zeros(2, 6, 5)
    pred[0] = torch.linspace(0, 1, 30).reshape(6, 5)
    pred[1, 2:4] = 2.0
    item = save({"pred": pred, "sample": 3})
    image, label = nib.load(item["image_file"]), nib.load(item["label_file"])
    assert item["image_file"].endswith("imagesTr/p_0003.nii.gz") and np.allclose(image.affine, affine)
    assert np.allclose(np.asarray(image.dataobj), -1000 + 1600 * pred[0].numpy(), atol=1e-3)
    assert np.array_equal(np.asarray(label.dataobj), pred[1].numpy().astype(np.uint8)) and np.allclose(
        label.affine, affine
    )
    bad = pred.clone()
    bad[1, 0, 0] = 5
    with pytest.raises(DataError, match=r"ids \[5\] outside the trained set \[0, 1, 2\]"):
        save({"pred": bad, "sample": 4})
    with pytest.raises(ConfigError, match="does not match the training grid"):
        save({"pred": torch.zeros(2, 8, 8), "sample": 5})
    assert not (tmp_path / "out" / "imagesTr" / "p_0004.nii.gz").exists()
    with pytest.raises(ConfigError, match="output_range must be"):
        SavePaird("pred", tmp_path, g, output_range=[600, -1000])
    (tmp_path / "a_file").write_text("")
    with pytest.raises(DataError, match="a_file: is a file, not a folder; outputs cannot be written into it"):
        SavePaird("pred", tmp_path / "a_file", g)  # refused when built, before any sampling


def test_realism_statistics_compare_fractions_and_intensities():
    real = [
        (torch.full((1, 4, 4), 0.2), torch.tensor([[[1, 1, 0, 0]] * 4])),
        (torch.full((1, 4, 4), 0.4), torch.ones(1, 4, 4)),
    ]
    synth = [
        (torch.full((1, 4, 4), 0.3), torch.zeros(1, 4, 4)),
        (torch.full((1, 4, 4), 0.5), torch.zeros(1, 4, 4)),
    ]
    stats = realism_statistics(real, synth, {1: "lung", 2: "heart"})
    lung = stats["classes"]["1"]
    assert lung["real_fraction_mean"] == pytest.approx(0.75) and lung["real_fraction_std"] == pytest.approx(
        0.25
    )
    assert lung["synthetic_fraction_mean"] == 0.0 and lung["fraction_abs_diff"] == pytest.approx(0.75)
    assert lung["real_intensity_mean"] == pytest.approx(0.3) and lung["synthetic_intensity_mean"] is None
    assert stats["diversity_mean_abs_diff"] == pytest.approx(0.2) and stats["distinct_annotations"] == 1


def test_header_check_names_the_pair_with_different_affines(tmp_path):
    from anatosynth_components.acis import check_headers
    from anatosynth_components.data import read_datalist

    write_nifti(tmp_path / "imagesTr" / "a.nii.gz", np.zeros((4, 4, 3), np.int16), np.eye(4))
    write_nifti(
        tmp_path / "labelsTr" / "a.nii.gz", np.zeros((4, 4, 3), np.uint8), np.diag([2.0, 1.0, 1.0, 1.0])
    )
    write_json(
        tmp_path / "dataset.json",
        {"training": [{"image": "imagesTr/a.nii.gz", "label": "labelsTr/a.nii.gz"}]},
    )
    with pytest.raises(
        DataError, match=r"imagesTr/a.nii.gz and label .*labelsTr/a.nii.gz have different affines"
    ):
        check_headers(read_datalist(tmp_path))


@pytest.mark.parametrize("size", [(12, 10), (12, 10, 6)])
def test_training_grid_image_shows_every_present_column(size):
    from anatosynth_components.acis import grid_image

    output = {
        "image": torch.rand(3, 1, *size),
        "pseudo_mask": torch.rand(3, 1, *size),
        "label": torch.randint(0, 4, (3, 1, *size)),
        "pred": torch.rand(3, 1, *size),
    }
    grid = grid_image(output, num_classes=4, max_items=2)
    assert grid.shape == (3, 2 * 12, 4 * (10 + 2)) and 0 <= grid.min() and grid.max() <= 1
