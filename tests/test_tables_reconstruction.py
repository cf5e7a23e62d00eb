"""The ACIS reconstruction experiment end to end at the smallest size, through the command line
(``anatosynth tables reconstruction``): three tasks (one per kind), the three networks (ESRT for
super-resolution only), the three arms, two iterations per cell; then a rerun that must compute
nothing.

Plumbing test, not a claim about ACIS: the "synthetic" images are slices and a volume of demo
chest phantoms of another seed (``anatosynth demo-data --kind chest --seed 99``), listed in the
datalist format the ACIS sampling workflow writes (2-D slices and a 3-D volume, to cover both)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from anatosynth_components import cli
from anatosynth_components.atomic import write_json, write_nifti
from anatosynth_components.data.demo.generate import generate_demo
from anatosynth_components.errors import DataError, find_cause
from anatosynth_components.experiments import reconstruction, training

SETTINGS = {
    "tasks": ["sr2", "blur2", "noise0.2"],
    "iterations": 2,
    "batch_size": 4,
    "slice_stride": 4,
    "demo": {"kind": "penet", "subjects": 6, "seed": 0, "shape": [32, 32, 16]},
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
    return write_json(root / "datalist.json", {"training": entries})


def _args(out, datalist, *extra):
    sets = [f"{k}={json.dumps(v)}" for k, v in SETTINGS.items()]
    return [
        "tables",
        "reconstruction",
        "--out",
        str(out),
        "--no-progress",
        "--synthetic-datalist",
        str(datalist),
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
    # input floors + (3 tasks x ResNet, RED) + ESRT for SR only, each with 3 arms
    assert len(cells) == 3 + (3 * 2 + 1) * 3
    assert "blur2-esrt-baseline" not in cells and "sr2-esrt-synthetic" in cells
    split = doc["split"]
    n_test = len(split["test"]) * 4  # 16 slices, every 4th
    assert all(len(c["per_slice"]["psnr"]) == n_test for c in cells.values())
    baseline = cells["sr2-resnet-baseline"]["n_train_slices"]
    assert baseline == len(split["baseline"]) * 4
    assert cells["sr2-resnet-synthetic"]["n_train_slices"] == baseline + 4 + 2  # volume: 4 slices, + 2 slices
    assert cells["sr2-resnet-upper_bound"]["n_train_slices"] == len(split["training"]) * 4
    # the noisy input's PSNR is that of sigma 0.2 noise, a bit higher after clipping to [0, 1]
    assert 20 * np.log10(1 / 0.2) - 0.1 < doc["summary"]["noise0.2-input"]["psnr"]["mean"] < 17.0
    table = (out / "table.md").read_text()
    assert (
        "| SR x2 | ESRT |" in table and "| deblur sigma=2 | RED |" in table and "denoise sigma=0.2" in table
    )
    assert "Upper bound PSNR (dB) ↑" in table and "p (PSNR)" in table


def test_reconstruction_rerun_computes_nothing(tiny, stand_in, capsys, monkeypatch):
    out, _ = tiny
    monkeypatch.setattr(training, "train_fixed_iterations", lambda *a, **k: pytest.fail("retrained a cell"))
    assert cli.main(_args(out, stand_in)) == 0
    assert "0 cell(s) computed, 24 reused" in capsys.readouterr().out
    assert cli.main(_args(out, stand_in, "--set", "iterations=3")) == 2  # another configuration, same folder
    assert "iterations: 2 there, 3 now" in capsys.readouterr().err


def test_reconstruction_rejects_hu_images_declared_unit(tiny, stand_in, tmp_path):
    config = {
        **reconstruction.SCALES["demo"],
        **SETTINGS,
        "scale": "test",
        "tasks": ["noise0.1"],
        "networks": ["redcnn"],
        "synthetic": {"datalist": str(stand_in)},
        "synthetic_intensity": "unit",
    }
    with pytest.raises(Exception) as err:
        reconstruction.run(config, tmp_path / "out", progress=False)
    cause = find_cause(err.value, DataError)
    assert cause is not None and "chest_001.nii.gz: synthetic image values span" in str(cause)
