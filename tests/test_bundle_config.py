"""Bundle configs: the data layer wired by a config (``monai.bundle.ConfigParser``), and the rules that keep
the bundles' config files free of copies (evaluate.json an overlay, inference.json equal where it repeats)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, write_learn2reg_tree
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
            {
                "_target_": "ScaleIntensityRangePercentilesd",
                "keys": "image",
                "lower": 0.5,
                "upper": 99.5,
                "b_min": 0.0,
                "b_max": 1.0,
                "clip": True,
            },
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


BUNDLE_NAMES = ("anatomask_oasis", "anatomask_abdomen", "acis_tlobes", "acis_penet")
#: keys inference.json may define differently from train.json: its own output folder, run section and
#: closing message (everything else it shares, e.g. the network sizes, must be train.json's, or
#: model.pt would not load)
WORKFLOW_KEYS = {"output_dir", "run", "finalize"}


def bundle_config(bundle: str, name: str) -> dict:
    return json.loads((REPO / "bundles" / bundle / "configs" / f"{name}.json").read_text())


def differing_shared_keys(train: dict, other: dict) -> list[str]:
    return sorted(k for k in other if k in train and k not in WORKFLOW_KEYS and other[k] != train[k])


@pytest.mark.parametrize("bundle", BUNDLE_NAMES)
def test_inference_repeats_train_settings_exactly(bundle):
    """inference.json stays self-contained (the zoo CI and MONAI Label read it alone), so it repeats
    the network and data keys of train.json: every key both define must be the same."""
    train, inference = bundle_config(bundle, "train"), bundle_config(bundle, "inference")
    shared = {k for k in inference if k in train}
    assert {"network_def", "network", "num_classes", "spatial_size", "device", "bundle_root"} <= shared
    assert differing_shared_keys(train, inference) == []
    changed = copy.deepcopy(inference)  # the check catches a changed network size
    first = next(k for k in changed["network_def"] if k != "_target_")
    changed["network_def"][first] = "@other"
    assert differing_shared_keys(train, changed) == ["network_def"]


@pytest.mark.parametrize("bundle", BUNDLE_NAMES)
def test_evaluate_is_an_overlay_of_train(bundle):
    """evaluate.json defines no network or data of its own: merged over train.json it evaluates the
    validation workflow of training on the test split."""
    train, evaluate = bundle_config(bundle, "train"), bundle_config(bundle, "evaluate")
    assert not {"network_def", "network", "spatial_size", "num_classes", "volume_transforms"} & set(evaluate)
    parser = ConfigParser()
    parser.read_config(
        [str(REPO / "bundles" / bundle / "configs" / f"{n}.json") for n in ("train", "evaluate")]
    )
    assert parser["network_def"] == train["network_def"]
    assert parser["validate#dataset#data"] == "$@split['test']"
    assert parser["run"] == parser["evaluating"] == ["$@validate#evaluator.run()"]


def test_refine_overlay_run_alone_names_the_command(tmp_path):
    """refine.json adds workflows to train.json; run alone it says how to run it (before MONAI would stop
    at the first reference to a train.json key)."""
    refine = REPO / "bundles" / "acis_penet" / "configs" / "refine.json"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "registration", "--config_file", str(refine),
           "--bundle_root", str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode != 0
    expected = (
        "configs/refine.json is an overlay of configs/train.json (it reuses its network, data and validation"
        " settings): run both, base first: --config_file \"['configs/train.json','configs/refine.json']\""
    )
    assert expected in proc.stderr


@pytest.mark.parametrize("bundle", ["acis_tlobes", "acis_penet"])
def test_acis_sampling_selects_the_refined_generators_by_config(bundle, tmp_path):
    """inference.json's ``refined`` key chooses models/model_refined.pt (the paper's ACIS) over
    models/model.pt (ACIS-), records it in the datalist's provenance, and a missing refined model says
    what makes it."""
    paths = {}
    for refined in (False, "true"):
        parser = ConfigParser()
        parser.read_config(str(REPO / "bundles" / bundle / "configs" / "inference.json"))
        parser.update({"bundle_root": str(tmp_path), "refined": refined})
        paths[refined] = parser.get_parsed_content("ckpt_path")
        writer = next(h for h in parser.get("handlers") if h["_target_"].endswith("PairDatalistWriter"))
        assert writer["model_file"] == "@ckpt_path" and "@refined" in writer["refined"]
        with pytest.raises(Exception) as err:
            parser.get_parsed_content("handlers#0")  # the CheckpointLoader needs the file
        expected = "refine the bundle first (configs/refine.json)" if refined else "train the bundle first"
        cause = str(err.value.__cause__)  # MONAI wraps the expression's error
        assert expected in cause and paths[refined] in cause, cause
    assert paths[False] == f"{tmp_path}/models/model.pt"
    assert paths["true"] == f"{tmp_path}/models/model_refined.pt"
