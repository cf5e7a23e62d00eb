"""The ACIS few-shot segmentation experiment end to end at the smallest size (32 x 16 x 16 volumes, two
iterations per cell), then a rerun that must compute nothing.

Plumbing test, not a claim about ACIS: the "synthetic" pairs here are extra demo chest phantoms of
another seed (``anatosynth demo-data --kind chest --seed 99``), written as the datalist of
image-annotation pairs that the ACIS sampling workflow writes; they stand in for ACIS samples."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from scipy.stats import wilcoxon

from anatosynth_components.data.demo.generate import generate_demo
from anatosynth_components.errors import ConfigError, DataError, find_cause
from anatosynth_components.experiments import segmentation, training


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("segmentation")
    stand_in = generate_demo(
        "chest", root / "stand_in", subjects=2, seed=99, shape=(32, 16, 16), progress=False
    )
    config = copy.deepcopy(segmentation.SCALES["demo"])
    config.update(
        scale="test",
        spatial_size=[32, 16, 16],
        test_subjects=2,
        n_train=[2, 16, 80],
        iterations=2,
        arms=["baseline", "augment", "synthetic"],
        synthetic={"datalist": str(stand_in / "dataset.json")},
        synthetic_intensity="chest",
    )
    config["demo"].update(subjects=5, shape=[32, 16, 16])
    doc = segmentation.run(config, root / "out", progress=False)
    return config, root, doc


def test_segmentation_grid_table_and_p_values(tiny):
    config, root, doc = tiny
    out = root / "out"
    assert doc["split"]["n"] == {"2": [2], "3": [16, 80]}  # capped by the 3 training volumes left
    assert len(doc["this_run"]["computed"]) == 2 * 2 * 3  # n x model x arm
    cells = doc["cells"]
    assert cells["n2-unet-synthetic"]["n_synthetic"] == 2 and cells["n2-unet-baseline"]["n_synthetic"] == 0
    assert cells["n3-mednext-augment"]["n_real"] == 3
    base, syn = cells["n3-unet-baseline"]["per_subject"], cells["n3-unet-synthetic"]["per_subject"]
    assert sorted(base) == doc["split"]["test"] and len(base) == 2
    for scores in base.values():
        assert 0 <= scores["dice"] <= 100 and scores["msd"] >= 0 and len(scores["dice_per_class"]) == 6
    diff = np.array([syn[s]["dice"] - base[s]["dice"] for s in sorted(base)])
    p = doc["summary"]["n3-unet-synthetic"]["p_dice"]["p"]
    if np.any(diff != 0):
        assert p == pytest.approx(wilcoxon(diff, alternative="greater").pvalue)
    table = (out / "table.md").read_text()
    assert (
        "| n=3 | MedNeXt-S |" in table
        and "+ Synthetic DCS (%) ↑" in table
        and "Augmentation MSD (mm) ↓" in table
    )
    assert "n = [16, 80] requested, 3 real training volumes available, so n = 3" in table
    assert (out / "segmentation.png").read_bytes()[:4] == b"\x89PNG"
    split = json.loads((out / "split.json").read_text())
    assert not set(split["test"]) & set(split["pool"])  # held-out test subjects


def test_segmentation_rerun_computes_nothing(tiny, monkeypatch):
    config, root, _ = tiny
    mtimes = {p.name: p.stat().st_mtime_ns for p in (root / "out" / "cells").glob("*.json")}

    def no_training(*args, **kwargs):
        raise AssertionError("a finished cell was trained again")

    monkeypatch.setattr(training, "train_fixed_iterations", no_training)
    doc = segmentation.run(config, root / "out", progress=False)
    assert doc["this_run"]["computed"] == [] and len(doc["this_run"]["skipped"]) == 12
    assert {p.name: p.stat().st_mtime_ns for p in (root / "out" / "cells").glob("*.json")} == mtimes


def test_segmentation_bad_synthetic_input(tiny, tmp_path):
    config, root, _ = tiny
    small = {**config, "models": ["unet"], "n_train": [2], "arms": ["baseline", "synthetic"]}
    # HU images declared to be in [0, 1]: an error naming the file, never a silent clip
    with pytest.raises(Exception) as err:
        segmentation.run({**small, "synthetic_intensity": "unit"}, tmp_path / "unit", progress=False)
    cause = find_cause(err.value, DataError)
    assert (
        cause is not None and "stand_in/imagesTr/chest_001.nii.gz" in str(cause) and "'chest'" in str(cause)
    )
    with pytest.raises(ConfigError, match=r"acis_bundle .*acis_none.: no such folder"):
        segmentation.run(
            {**small, "synthetic": {"acis_bundle": str(tmp_path / "acis_none"), "num_samples": 2}},
            tmp_path / "acis",
            progress=False,
        )
    assert not (tmp_path / "acis").exists()  # refused before anything was written
    for bad in ([20, 32, 16], [16, 16, 16]):
        with pytest.raises(ConfigError, match="divisible by 16, one of them at least 32"):
            segmentation.run({**small, "spatial_size": bad}, tmp_path / "size", progress=False)
