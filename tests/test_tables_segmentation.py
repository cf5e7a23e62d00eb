"""The ACIS few-shot segmentation experiment end to end at the smallest size (32 x 16 x 16 volumes, two
iterations per cell), then a rerun that must compute nothing.

Plumbing test, not a claim about ACIS: the "synthetic" pairs of the ``acis`` arm here are extra demo
chest phantoms of another seed (``anatosynth demo-data --kind chest --seed 99``), written as the
datalist of image-annotation pairs that the ACIS sampling workflow writes, with a provenance that
names no real subject; they stand in for ACIS samples."""

from __future__ import annotations

import copy
import json
import re

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
    datalist = json.loads((stand_in / "dataset.json").read_text())
    datalist["provenance"] = {"trained_on": []}  # phantoms of another seed: no real subject
    (stand_in / "synthetic.json").write_text(json.dumps(datalist))
    config = copy.deepcopy(segmentation.SCALES["demo"])
    config.update(
        scale="test",
        spatial_size=[32, 16, 16],
        test_subjects=2,
        n_train=[2, 16, 80],
        iterations=2,
        arms=["baseline", "augment", "acis"],
        synthetic={"datalist": str(stand_in / "synthetic.json")},
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
    assert cells["n2-unet-acis"]["n_synthetic"] == 2 and cells["n2-unet-baseline"]["n_synthetic"] == 0
    assert cells["n2-unet-acis"]["synthetic_source"]["trained_on"] == []
    quality = cells["n2-unet-acis"]["synthetic_quality"]  # scored by the row's kept baseline network
    assert len(quality["label_agreement"]["per_pair"]) == 2 and 0 <= quality["intensity_gap"] <= 1
    assert (out / "models" / "n2-unet-baseline.pt").is_file()
    assert cells["n3-mednext-augment"]["n_real"] == 3
    base, syn = cells["n3-unet-baseline"]["per_subject"], cells["n3-unet-acis"]["per_subject"]
    assert sorted(base) == doc["split"]["test"] and len(base) == 2
    for scores in base.values():
        assert 0 <= scores["dice"] <= 100 and len(scores["dice_per_class"]) == 6
        assert scores["msd"] >= 0 or (np.isnan(scores["msd"]) and scores["missed"] > 0)
    diff = np.array([syn[s]["dice"] - base[s]["dice"] for s in sorted(base)])
    p = doc["summary"]["n3-unet-acis"]["p_dice"]["vs_baseline"]["p"]
    if np.any(diff != 0):
        assert p == pytest.approx(wilcoxon(diff, alternative="greater").pvalue)
    assert doc["summary"]["n3-unet-acis"]["p_dice"]["vs_best_other"]["arm"] in ("baseline", "augment")
    missed = sum(cells["n3-unet-acis"]["per_subject"][s]["missed"] for s in base)
    assert doc["summary"]["n3-unet-acis"]["missed"] == missed
    table = (out / "table.md").read_text()
    assert (
        "| n=3 | MedNeXt-S |" in table
        and "+ ACIS DCS (%) ↑" in table
        and "Augmentation MSD (mm) ↓" in table
        and "+ ACIS missed" in table
        and "label agreement DCS (%)" in table
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
    small = {**config, "models": ["unet"], "n_train": [2], "arms": ["baseline", "acis"]}
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
    with pytest.raises(ConfigError, match=r"gives no datalist for the arms \['acis_minus'\]"):
        segmentation.run({**small, "arms": ["baseline", "acis_minus"]}, tmp_path / "minus", progress=False)
    for bad in ([20, 32, 16], [16, 16, 16]):
        with pytest.raises(ConfigError, match="divisible by 16, one of them at least 32"):
            segmentation.run({**small, "spatial_size": bad}, tmp_path / "size", progress=False)


def test_segmentation_refuses_synthetic_pairs_that_saw_its_test_subjects(tiny, tmp_path):
    config, root, doc = tiny
    small = {**config, "models": ["unet"], "n_train": [2], "arms": ["baseline", "acis"]}
    datalist = json.loads((root / "stand_in" / "synthetic.json").read_text())
    test_subject = doc["split"]["test"][0]
    leak = rf"trained on 1 of this experiment's test subjects \(\['{test_subject}'\]\)"
    for name, provenance, message in (
        ("leaky", {"trained_on": ["someone", test_subject]}, leak),
        ("unknown", None, "does not record which real subjects trained its generator"),
    ):
        path = root / "stand_in" / f"{name}.json"
        path.write_text(json.dumps({**datalist, "provenance": provenance}))
        with pytest.raises(Exception) as err:
            segmentation.run({**small, "synthetic": {"datalist": str(path)}}, tmp_path / name, progress=False)
        cause = find_cause(err.value, DataError)
        assert cause is not None and str(path) in str(cause)
        assert re.search(message, str(cause)), str(cause)


def test_augment_arm_refuses_left_right_flips_of_lobe_maps():
    config = copy.deepcopy(segmentation.SCALES["demo"])
    names = [type(t).__name__ for t in segmentation.augmentations(config).transforms]
    assert names[:2] == ["RequireRASd", "RandFlipd"]  # flips only after the volumes are RAS
    with pytest.raises(ConfigError, match="lateral_pairs"):
        segmentation.augmentations({**config, "flip_axes": [0, 1]})
    loading = [type(t).__name__ for t in segmentation.volume_transforms(config, "chest").transforms]
    assert loading.index("OrientToRASd") < loading.index("Resized")
