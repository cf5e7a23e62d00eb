"""The ACIS reconstruction experiment end to end at the smallest size, through the command line
(``anatosynth tables reconstruction``): three tasks (one per kind), the three networks (ESRT for
super-resolution only), the five arms, two iterations per cell; then a rerun that must compute
nothing and read no pixel.

Plumbing test, not a claim about ACIS: the "synthetic" images of both ACIS arms are slices and a
volume of demo chest phantoms of another seed (``anatosynth demo-data --kind chest --seed 99``),
listed in the datalist format the ACIS sampling workflow writes (2-D slices and a 3-D volume, to
cover both), with a provenance that names no real scan."""

from __future__ import annotations

import json

import numpy as np
import pytest

from anatosynth_components import cli
from anatosynth_components.atomic import write_json, write_nifti
from anatosynth_components.data.demo.generate import generate_demo
from anatosynth_components.errors import DataError, find_cause
from anatosynth_components.experiments import reconstruction, training
from anatosynth_components.experiments.slice_stream import SliceStore

ARMS = ["baseline", "augment", "acis_minus", "acis", "upper_bound"]
SETTINGS = {
    "tasks": ["sr2", "blur2", "noise0.2"],
    "arms": ARMS,
    "iterations": 2,
    "batch_size": 4,
    "slice_stride": 4,
    "baseline_scans": 2,
    "upper_bound_scans": 80,
    "eval_batch_size": 3,
    "demo": {"kind": "penet", "subjects": 10, "seed": 0, "shape": [32, 32, 16]},
    "network_sizes": {
        "resnet": {"features": 8, "num_blocks": 1},
        "redcnn": {"features": 8},
        "esrt": {"channels": 8, "num_hpb": 1, "num_heads": 2, "low_repeats": 1},
    },
}


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    root = tmp_path_factory.mktemp("stand_in")
    chest = generate_demo("chest", root / "chest", subjects=1, seed=99, shape=(32, 32, 16), progress=False)
    volume = chest / "imagesTr" / "chest_001.nii.gz"
    import nibabel as nib

    data = np.asarray(nib.load(str(volume)).dataobj)
    entries = [{"image": str(volume)}]  # a 3-D volume: its slices are used
    for z in (4, 8):
        path = write_nifti(root / "slices" / f"slice_{z}.nii.gz", data[:, :, z].astype(np.float32), np.eye(4))
        entries.append({"image": str(path)})  # 2-D slices
    # phantoms of another seed: no real scan trained them
    return write_json(root / "datalist.json", {"training": entries, "provenance": {"trained_on": []}})


def _args(out, datalist, *extra):
    sets = [f"{k}={json.dumps(v)}" for k, v in SETTINGS.items()]
    return [
        "tables",
        "reconstruction",
        "--out",
        str(out),
        "--no-progress",
        "--synthetic-datalist",
        f"acis={datalist}",
        "--synthetic-datalist",
        f"acis_minus={datalist}",
        "--synthetic-intensity",
        "chest",
        *[a for s in sets for a in ("--set", s)],
        *extra,
    ]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, stand_in):
    out = tmp_path_factory.mktemp("reconstruction") / "out"
    assert cli.main(_args(out, stand_in)) == 0
    return out, json.loads((out / "results.json").read_text())


def test_reconstruction_grid_and_table(tiny):
    out, doc = tiny
    cells = doc["cells"]
    # input floors + (3 tasks x ResNet, RED) + ESRT for SR only, each with 5 arms
    assert len(cells) == 3 + (3 * 2 + 1) * 5
    assert "blur2-esrt-baseline" not in cells and "sr2-esrt-acis_minus" in cells
    split = doc["split"]
    assert len(split["test"]) == 2 and len(split["baseline"]) == 2
    assert split["upper_bound"] == split["training"] and set(split["baseline"]) <= set(split["upper_bound"])
    n_test = len(split["test"]) * 4  # 16 slices, every 4th
    assert doc["test_slices"] == {"scan": split["test"], "slices": [[0, 4, 8, 12]] * 2}
    for cell in cells.values():
        assert len(cell["per_slice"]["psnr"]) == len(cell["per_slice"]["ssim"]) == n_test
        assert cell["per_scan"]["scan"] == split["test"] and cell["per_scan"]["n_slices"] == [4, 4]
        np.testing.assert_allclose(
            cell["per_scan"]["psnr"], np.reshape(cell["per_slice"]["psnr"], (2, 4)).mean(axis=1)
        )
    baseline = cells["sr2-resnet-baseline"]["n_train_slices"]
    assert baseline == len(split["baseline"]) * 4 == cells["sr2-resnet-augment"]["n_train_slices"]
    for arm in ("acis_minus", "acis"):
        assert cells[f"sr2-resnet-{arm}"]["n_train_slices"] == baseline
        assert cells[f"sr2-resnet-{arm}"]["n_synthetic_slices"] == 4 + 2  # volume: 4 slices, + 2 slices
        assert cells[f"sr2-resnet-{arm}"]["synthetic_source"]["trained_on"] == []
    assert cells["sr2-resnet-baseline"]["n_synthetic_slices"] == 0
    assert cells["sr2-resnet-upper_bound"]["n_train_slices"] == len(split["training"]) * 4
    # the noisy input's PSNR is that of sigma 0.2 noise, a bit higher after clipping to [0, 1]
    assert 20 * np.log10(1 / 0.2) - 0.1 < doc["summary"]["noise0.2-input"]["psnr"]["mean"] < 17.0
    summary = doc["summary"]["sr2-redcnn-acis"]
    assert summary["psnr"]["n"] == 2 and summary["psnr_slices"]["n"] == n_test
    assert summary["p_psnr"]["vs_baseline"]["n"] == 2  # paired by test scan
    assert summary["p_ssim"]["vs_best_other"]["arm"] in ("baseline", "augment", "acis_minus")
    assert "p_psnr" not in doc["summary"]["sr2-redcnn-baseline"]
    table = (out / "table.md").read_text()
    assert (
        "| SR x2 | ESRT |" in table and "| deblur sigma=2 | RED |" in table and "denoise sigma=0.2" in table
    )
    for label in ("Baseline", "Augmentation", "+ ACIS-", "+ ACIS", "Upper bound"):
        assert f"{label} PSNR (dB) ↑" in table
    assert "paired by test scan" in table and "| sr2-resnet-acis | p = " in table
    assert (
        f"upper_bound_scans = 80 requested, {len(split['training'])} real training scans available" in table
    )


def test_reconstruction_rerun_computes_nothing(tiny, stand_in, capsys, monkeypatch):
    out, _ = tiny
    monkeypatch.setattr(training, "train_fixed_iterations", lambda *a, **k: pytest.fail("retrained a cell"))
    monkeypatch.setattr(SliceStore, "get", lambda *a, **k: pytest.fail("read a slice"))
    assert cli.main(_args(out, stand_in)) == 0
    assert "0 cell(s) computed, 38 reused" in capsys.readouterr().out
    assert cli.main(_args(out, stand_in, "--set", "iterations=3")) == 2  # another configuration, same folder
    assert "iterations: 2 there, 3 now" in capsys.readouterr().err


def test_reconstruction_rejects_hu_images_declared_unit(tiny, stand_in, tmp_path):
    config = {
        **reconstruction.SCALES["demo"],
        **SETTINGS,
        "scale": "test",
        "tasks": ["noise0.1"],
        "networks": ["redcnn"],
        "arms": ["baseline", "acis"],
        "synthetic": {"datalist": str(stand_in)},
        "synthetic_intensity": "unit",
    }
    with pytest.raises(Exception) as err:
        reconstruction.run(config, tmp_path / "out", progress=False)
    cause = find_cause(err.value, DataError)
    assert cause is not None and "chest_001.nii.gz: synthetic image values span" in str(cause)
