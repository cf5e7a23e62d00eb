"""The AnatoMaskGAN ablation end to end at the smallest size: two of the four variants (SPADE and
+ GNN-SIF; the full grid is the same code with two more cells) trained for one epoch and evaluated
through the bundle's own workflows (``python -m monai.bundle run`` subprocesses), on tiny brain
phantoms; then a rerun that must compute nothing."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from anatosynth_components.data.demo.generate import generate_demo
from anatosynth_components.errors import ConfigError
from anatosynth_components.experiments import ablation

TINY_NET = {
    "spatial_size": [32, 32],
    "num_slices": 4,
    "base_channels": 8,
    "channel_mults": [4, 2, 1],
    "stack_batch_size": 8,
}
TINY_TRAIN = {"disc_channels": 8, "disc_layers": 2, "lambda_vgg": 0, "batch_size": 2, "stacks_per_volume": 2}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablation")
    data = generate_demo("brain", root / "data", subjects=10, shape=(40, 48, 20), progress=False)
    config = copy.deepcopy(ablation.SCALES["demo"])
    config.update(
        scale="test",
        dataset_dir=str(data),
        variants=["spade", "gnn_sif"],
        epochs=1,
        network=TINY_NET,
        train=TINY_TRAIN,
    )
    doc = ablation.run(config, root / "out", progress=False)
    return config, root / "out", doc


def test_ablation_table_plot_and_numbers(tiny_run):
    config, out, doc = tiny_run
    assert doc["this_run"]["computed"] == ["spade", "gnn_sif"]
    for variant in ("spade", "gnn_sif"):
        metrics = json.loads((out / "variants" / variant / "eval" / "metrics.json").read_text())
        psnr = [v["psnr"] for v in metrics["per_subject"].values()]
        assert len(psnr) == 2  # the 2 test subjects of a 10-subject split
        assert doc["summary"][variant]["psnr"]["mean"] == pytest.approx(np.mean(psnr))
        assert doc["summary"][variant]["psnr"]["std"] == pytest.approx(np.std(psnr))
        log = (out / "variants" / variant / "train.log").read_text()
        switch = "true" if variant == "gnn_sif" else "false"
        assert f"--use_gnn_sif {switch} --use_noise3d false" in log and "--use_gtc false" in log
        assert "--train#trainer#max_epochs 1" in log and f"--split_file {out / 'split.json'}" in log
    table = (out / "table.md").read_text()
    assert "| SPADE (baseline) |" in table and "| + GNN-SIF |" in table
    s = doc["summary"]["gnn_sif"]["ssim"]
    assert f"{s['mean']:.4f} ± {s['std']:.4f}" in table
    if "lpips" in doc["unavailable"]:  # no AlexNet weights offline: said, never a number
        assert "unavailable (a)" in table and "LPIPS unavailable:" in table
    assert "Paper, Table II (L2R-OASIS" in table and "26.22" in table
    assert (out / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((out / "results.json").read_text())
    assert saved["cells"]["spade"]["per_subject"] == doc["cells"]["spade"]["per_subject"]
    assert json.loads((out / "config.json").read_text())["config"]["variants"] == ["spade", "gnn_sif"]


def test_ablation_rerun_computes_nothing_and_refuses_another_config(tiny_run):
    config, out, _ = tiny_run
    cells = {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}
    logs = {v: (out / "variants" / v / "train.log").read_text() for v in ("spade", "gnn_sif")}
    doc = ablation.run(config, out, progress=False)
    assert doc["this_run"]["computed"] == [] and doc["this_run"]["skipped"] == ["spade", "gnn_sif"]
    assert {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")} == cells
    assert {v: (out / "variants" / v / "train.log").read_text() for v in logs} == logs  # no bundle ran
    with pytest.raises(ConfigError, match="epochs: 1 there, 2 now"):
        ablation.run({**config, "epochs": 2}, out, progress=False)
    with pytest.raises(ConfigError, match="set by the experiment itself"):
        ablation.run({**config, "train": {"use_gtc": True}}, out, progress=False)
