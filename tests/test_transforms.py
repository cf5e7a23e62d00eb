"""Transforms: label remapping on the real label maps, HU window, percentiles, resizing, slice stacks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import ScaleIntensityRanged, ScaleIntensityRangePercentilesd

from anatosynth_components.data import (
    RandSliceStackd,
    RemapLabelsd,
    ResizeSlicesd,
    SliceStackd,
    stack_starts,
)
from anatosynth_components.data.label_tables import (
    ASEG_TO_OASIS35,
    LABEL_TABLES,
    TOTALSEG_TO_ABDOMENCTCT,
    get_label_table,
)
from anatosynth_components.data.remap_labels import remap_labels
from anatosynth_components.errors import ConfigError, DataError


def test_tables_target_the_declared_label_sets():
    for table in LABEL_TABLES.values():
        targets = {v for v in table.mapping.values() if v}
        assert targets == set(table.target), table.name  # every target class reachable, none extra


def test_aseg_to_oasis35_on_real_brain(real_brain):
    seg = real_brain["seg"][::2, ::2, ::2]
    out = remap_labels(seg, ASEG_TO_OASIS35)
    assert set(np.unique(out).tolist()) == set(range(36))  # all 35 classes present in a real brain
    for src, dst in [(2, 1), (3, 2), (17, 14), (41, 20), (16, 13), (63, 35), (24, 0), (0, 0)]:
        assert np.all(out[seg == src] == dst), (src, dst)
    # corpus callosum and WM hypointensities become the left or right cerebral white matter,
    # whichever is nearer: both sides occur, split at the midline
    cc = np.isin(seg, [251, 252, 253, 254, 255, 77])
    assert set(np.unique(out[cc]).tolist()) == {1, 20}
    left_wm_x = np.argwhere(seg == 2)[:, 0].mean()
    right_wm_x = np.argwhere(seg == 41)[:, 0].mean()
    xs = np.argwhere(cc)[:, 0]
    assert np.mean((out[cc] == 1) == (np.abs(xs - left_wm_x) < np.abs(xs - right_wm_x))) > 0.8


def test_fill_matches_brute_force_nearest():
    rng = np.random.default_rng(0)
    seg = rng.choice([2, 41, 0, 17], size=(9, 8, 7)).astype(np.int16)
    seg[rng.random(seg.shape) < 0.2] = 251
    out = remap_labels(seg, ASEG_TO_OASIS35)
    src = np.argwhere(np.isin(seg, [2, 41]))  # donors of 251: the cerebral white matter only
    lut = {2: 1, 41: 20}
    for p in np.argwhere(seg == 251):
        d = ((src - p) ** 2).sum(1)
        nearest = {lut[int(seg[tuple(q)])] for q in src[d == d.min()]}
        assert out[tuple(p)] in nearest


def test_totalseg_to_abdomen_on_real_ct(real_ct):
    seg = real_ct["label"]
    out = remap_labels(seg, TOTALSEG_TO_ABDOMENCTCT)
    for src, dst in [
        (1, 1),
        (2, 2),
        (3, 3),
        (4, 4),
        (5, 6),
        (6, 7),
        (7, 11),
        (52, 8),
        (63, 9),
        (64, 10),
        (8, 12),
    ]:
        assert np.all(out[seg == src] == dst)
    assert np.all(out[np.isin(seg, [10, 11, 18, 20, 79, 117])] == 0)  # lungs, bowel, cord, cartilage
    assert set(np.unique(out).tolist()) == set(range(14)) - {5}  # no esophagus in the crop


def test_totalseg_to_lobes_on_real_ct(real_ct):
    out = remap_labels(real_ct["label"], get_label_table("totalseg_to_lobes_heart"))
    assert np.all(out[real_ct["label"] == 14] == 5) and np.all(out[real_ct["label"] == 10] == 1)
    assert set(np.unique(out).tolist()) == {0, 1, 2, 4, 5}


def test_remapd_keeps_metadata_and_rejects_unknown_ids():
    label = MetaTensor(torch.tensor([[[[2, 41], [0, 3]]]]), meta={"filename_or_obj": "/d/seg.nii.gz"})
    out = RemapLabelsd("label", "aseg_to_oasis35")({"label": label})["label"]
    assert isinstance(out, MetaTensor) and out.meta["filename_or_obj"] == "/d/seg.nii.gz"
    assert out.flatten().tolist() == [1, 20, 0, 2]
    bad = MetaTensor(torch.tensor([[[[2, 999]]]]), meta={"filename_or_obj": "/d/bad.nii.gz"})
    with pytest.raises(DataError, match=r"/d/bad.nii.gz: label ids \[999\] are not in label table"):
        RemapLabelsd("label", "aseg_to_oasis35")({"label": bad})


def test_config_table_and_errors():
    table = get_label_table({"mapping": {"5": 1, "6": 2, "0": 0}, "fill": ["7"]})
    assert remap_labels(np.array([[5, 7, 0, 0, 6]]), table).tolist() == [[1, 1, 0, 0, 2]]
    only_two = get_label_table({"mapping": {"5": 1, "6": 2, "0": 0}, "fill": {"7": [2]}})
    assert remap_labels(np.array([[5, 7, 0, 0, 6]]), only_two).tolist() == [[1, 2, 0, 0, 2]]
    with pytest.raises(ConfigError, match="unknown label table 'nope'"):
        get_label_table("nope")
    with pytest.raises(ConfigError, match="both mapped and filled"):
        get_label_table({"mapping": {"1": 1}, "fill": [1]})


def test_hu_window_values():
    chest = ScaleIntensityRanged("image", a_min=-1000, a_max=600, b_min=0, b_max=1, clip=True)
    x = torch.tensor([[-2000.0, -1000.0, -200.0, 600.0, 3000.0]])
    np.testing.assert_allclose(chest({"image": x})["image"].numpy(), [[0.0, 0.0, 0.5, 1.0, 1.0]], atol=1e-6)


def test_percentile_scale_on_real_brain(real_brain):
    vol = torch.from_numpy(real_brain["vol"][None, ::2, ::2, ::2] * 300.0)  # arbitrary scanner units
    scale = ScaleIntensityRangePercentilesd("image", lower=1, upper=99, b_min=0, b_max=1, clip=True)
    out = scale({"image": vol})["image"].numpy()
    assert out.min() == 0.0 and out.max() == 1.0
    assert abs(np.mean(out >= 1.0) - 0.01) < 0.005  # the top 1 % saturates


def test_resize_slices_keeps_slice_axis():
    image = torch.rand(1, 20, 30, 7)
    label = torch.randint(0, 4, (1, 20, 30, 7)).float()
    out = ResizeSlicesd(["image", "label"], (40, 60), axis=2)({"image": image, "label": label})
    assert out["image"].shape == (1, 40, 60, 7) and out["label"].shape == (1, 40, 60, 7)
    assert set(torch.unique(out["label"]).tolist()) <= {0.0, 1.0, 2.0, 3.0}  # nearest: no new values
    # exact 2x nearest upsampling repeats every label voxel
    np.testing.assert_array_equal(out["label"][0, ::2, ::2].numpy(), label[0].numpy())
    padded = ResizeSlicesd(["image"], (24, 24), axis=0, method="pad")({"image": image})["image"]
    assert padded.shape == (1, 20, 24, 24)
    np.testing.assert_array_equal(
        padded[0, :, :, 8:15].numpy(), image[0, :, 3:27, :].numpy()
    )  # crop 30->24, pad 7->24
    with pytest.raises(ConfigError, match="spatial_size"):
        ResizeSlicesd(["image"], (0, 5))


def test_stack_starts():
    assert stack_starts(10, 4, 3) == [0, 3, 6]
    assert stack_starts(10, 4, 4) == [0, 4, 6]
    assert stack_starts(4, 4) == [0]
    with pytest.raises(DataError, match="3 slices, fewer than num_slices=4"):
        stack_starts(3, 4)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_slice_stacks_match_brute_force(axis):
    vol = torch.arange(2 * 6 * 7 * 8).reshape(2, 6, 7, 8).float()
    item = {"image": vol, "label": vol[:1].long(), "subject": "s1"}
    stacks = SliceStackd(["image", "label"], num_slices=3, axis=axis, stride=2)(item)
    depth = vol.shape[axis + 1]
    assert [int(s["z_index"][0]) for s in stacks] == stack_starts(depth, 3, 2)
    covered = set()
    for s in stacks:
        z = s["z_index"].tolist()
        assert z == list(range(z[0], z[0] + 3)) and s["depth"] == depth and s["subject"] == "s1"
        covered |= set(z)
        for j, zi in enumerate(z):
            np.testing.assert_array_equal(s["image"][:, j].numpy(), vol.select(axis + 1, zi).numpy())
            np.testing.assert_array_equal(s["label"][0, j].numpy(), vol[0].select(axis, zi).long().numpy())
    assert covered == set(range(depth))


def test_rand_slice_stacks_respect_foreground_and_seed():
    label = torch.zeros(1, 4, 4, 30)
    label[..., 20:26] = 1  # labelled slices 20..25 only
    item = {"image": torch.rand(1, 4, 4, 30), "label": label, "subject": "s"}
    t = RandSliceStackd(["image", "label"], num_slices=3, num_samples=50, min_foreground=0.5)
    t.set_random_state(0)
    starts = [int(s["z_index"][0]) for s in t(item)]
    assert set(starts) <= set(range(19, 25))  # at least 2 of 3 slices labelled
    assert len(set(starts)) > 2
    t2 = RandSliceStackd(["image", "label"], num_slices=3, num_samples=50, min_foreground=0.5)
    t2.set_random_state(0)
    assert [int(s["z_index"][0]) for s in t2(item)] == starts
    anywhere = RandSliceStackd(["image", "label"], num_slices=3, num_samples=200)
    anywhere.set_random_state(1)
    assert min(int(s["z_index"][0]) for s in anywhere(item)) < 15
