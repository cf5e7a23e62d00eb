"""The data pipeline as a bundle wires it: reader, split, cached volume transforms, random slice stacks."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from conftest import write_learn2reg_tree
from monai.data import CacheDataset, DataLoader, Dataset, list_data_collate
from monai.transforms import Compose, ScaleIntensityRangePercentilesd

from anatosynth_components.data import (
    LoadVolumed,
    RandSliceStackd,
    RemapLabelsd,
    ResizeSlicesd,
    SliceStackd,
    ValidateVolumed,
    read_dataset,
    split_subjects,
)
from anatosynth_components.data.label_tables import OASIS35_LABELS


@pytest.fixture
def raw_aseg_tree(tmp_path, real_brain):
    """A Learn2Reg OASIS tree whose label maps are the raw FreeSurfer aseg of the real brain."""
    vol, seg = real_brain["vol"][::4, ::4, ::4], real_brain["seg"][::4, ::4, ::4]
    pairs = [(np.roll(vol, k, axis=0), np.roll(seg, k, axis=0)) for k in range(5)]
    write_learn2reg_tree(tmp_path / "OASIS", "OASIS", pairs, np.diag([4.0, 4.0, 4.0, 1.0]), OASIS35_LABELS)
    return tmp_path


def volume_transforms(spatial_size=(32, 32)):
    keys = ["image", "label"]
    return [
        LoadVolumed(keys),
        RemapLabelsd("label", "aseg_to_oasis35"),
        ValidateVolumed(label_ids=range(1, 36)),
        ScaleIntensityRangePercentilesd("image", lower=0.5, upper=99.5, b_min=0, b_max=1, clip=True),
        ResizeSlicesd(keys, spatial_size, axis=2),
    ]


def test_cached_pipeline_does_not_reread_files(raw_aseg_tree):
    index = read_dataset(raw_aseg_tree / "OASIS")
    parts = split_subjects(
        index.items, raw_aseg_tree / "run" / "split.json", fractions=(0.6, 0.2, 0.2), seed=0
    )
    assert len(parts["training"]) == 3
    stacks = RandSliceStackd(["image", "label"], num_slices=3, num_samples=2, min_foreground=0.2)
    ds = CacheDataset(parts["training"], Compose([*volume_transforms(), stacks]), progress=False)
    loader = DataLoader(ds, batch_size=3, collate_fn=list_data_collate, num_workers=0)
    batches = [b for b in loader]
    assert sum(b["image"].shape[0] for b in batches) == 6  # 3 volumes x 2 stacks
    batch = batches[0]
    assert batch["image"].shape[1:] == (1, 3, 32, 32) and batch["label"].shape[1:] == (1, 3, 32, 32)
    assert batch["z_index"].shape[1:] == (3,) and torch.all(
        batch["z_index"][:, 1] == batch["z_index"][:, 0] + 1
    )
    assert batch["image"].min() >= 0 and batch["image"].max() <= 1
    assert set(torch.unique(batch["label"]).tolist()) <= set(range(36)) and batch["label"].max() > 0
    # the volumes live in the cache: the files are no longer needed for the next epoch
    shutil.rmtree(raw_aseg_tree / "OASIS")
    assert sum(b["image"].shape[0] for b in loader) == 6
    with pytest.raises(Exception, match="applying transform"):  # ... whereas an uncached dataset must re-read
        Dataset(parts["training"], Compose(volume_transforms()))[0]


def test_whole_volume_stacks_cover_every_slice(raw_aseg_tree):
    index = read_dataset(raw_aseg_tree / "OASIS")
    volume = Compose(volume_transforms())(index.items[0])
    stacks = SliceStackd(["image", "label"], num_slices=5, axis=2, stride=4)(volume)
    depth = volume["image"].shape[3]
    assert {int(z) for s in stacks for z in s["z_index"]} == set(range(depth))
    for s in stacks:
        assert s["subject"] == "OASIS_0001" and s["depth"] == depth
        np.testing.assert_array_equal(
            s["image"][0].numpy(), volume["image"][0].numpy()[..., s["z_index"].numpy()].transpose(2, 0, 1)
        )
