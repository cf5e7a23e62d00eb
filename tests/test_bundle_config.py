"""The data layer wired by a MONAI bundle config (``monai.bundle.ConfigParser``), as bundles use it."""

from __future__ import annotations

import numpy as np
from conftest import write_learn2reg_tree
from monai.bundle import ConfigParser

from anatosynth_components.data.label_tables import OASIS35_LABELS


def test_config_builds_the_training_dataset(tmp_path, real_brain):
    vol, seg = real_brain["vol"][::4, ::4, ::4], real_brain["seg"][::4, ::4, ::4]
    pairs = [(np.roll(vol, k, axis=1), np.roll(seg, k, axis=1)) for k in range(4)]
    write_learn2reg_tree(tmp_path / "data", "OASIS", pairs, np.diag([4.0, 4.0, 4.0, 1.0]), OASIS35_LABELS)
    config = {
        "imports": ["$import anatosynth_components"],
        "dataset_dir": str(tmp_path / "data"),
        "output_dir": str(tmp_path / "run"),
        "num_slices": 3,
        "spatial_size": [24, 24],
        "index": "$anatosynth_components.data.read_dataset(@dataset_dir)",
        "split_file": "$@output_dir + '/split.json'",
        "split": "$anatosynth_components.data.split_subjects(@index.items, @split_file, seed=0)",
        "volume_transforms": [
            {"_target_": "anatosynth_components.data.LoadVolumed", "keys": ["image", "label"]},
            {
                "_target_": "anatosynth_components.data.RemapLabelsd",
                "keys": "label",
                "table": "aseg_to_oasis35",
            },
            {"_target_": "anatosynth_components.data.ValidateVolumed", "label_ids": "$range(1, 36)"},
            {"_target_": "anatosynth_components.data.PercentileScaled", "keys": "image"},
            {
                "_target_": "anatosynth_components.data.ResizeSlicesd",
                "keys": ["image", "label"],
                "spatial_size": "@spatial_size",
                "axis": 2,
            },
        ],  # fmt: skip
        "stacks": {
            "_target_": "anatosynth_components.data.RandSliceStackd",
            "keys": ["image", "label"],
            "num_slices": "@num_slices",
            "num_samples": 2,
        },
        "dataset": {
            "_target_": "CacheDataset",
            "data": "$@split['training']",
            "transform": {"_target_": "Compose", "transforms": "$@volume_transforms + [@stacks]"},
            "progress": False,
        },
    }
    parser = ConfigParser(config)
    dataset = parser.get_parsed_content("dataset")
    assert len(dataset) == 2  # 4 subjects -> 2 / 1 / 1
    stacks = dataset[0]
    assert len(stacks) == 2 and stacks[0]["image"].shape == (1, 3, 24, 24)
    assert stacks[0]["volume"].startswith("OASIS_") and stacks[0]["depth"] == vol.shape[2]
    assert (tmp_path / "run" / "split.json").is_file()
