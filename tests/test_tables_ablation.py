"""The AnatoMaskGAN ablation end to end at the smallest size: two of the four variants (SPADE and
+ GNN-SIF; the full grid is the same code with two more cells) for two seeds, trained for one epoch
and evaluated twice (non-overlapping stacks, blended volume) through the bundle's own workflows
(``python -m monai.bundle run`` subprocesses), on tiny brain phantoms; then a rerun that must
compute nothing."""

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
        seeds=[0, 1],
        epochs=1,
        val_interval=1,
        network=TINY_NET,
        train=TINY_TRAIN,
    )
    doc = ablation.run(config, root / "out", progress=False)
    return config, root / "out", doc


CELLS = ["spade-seed0", "gnn_sif-seed0", "spade-seed1", "gnn_sif-seed1"]


def test_ablation_table_plot_and_numbers(tiny_run):
    config, out, doc = tiny_run
    assert doc["this_run"]["computed"] == CELLS
    for variant in ("spade", "gnn_sif"):
        for view, sub in (("blended", "eval"), ("stacks", "eval_stacks")):
            seed_means = []
            for seed in (0, 1):
                metrics = json.loads(
                    (out / "variants" / variant / f"seed{seed}" / sub / "metrics.json").read_text()
                )
                values = [v["psnr_slice"] for v in metrics["per_subject"].values()]
                assert len(values) == 2  # the 2 test subjects of a 10-subject split
                seed_means.append(np.mean(values))
                base = metrics["baselines"]["label_mean"]["per_subject"]
                assert set(base) == set(metrics["per_subject"]) and "st_lpips" in next(iter(base.values()))
            summary = doc["summary"][view][variant]["psnr_slice"]
            assert summary["mean"] == pytest.approx(np.mean(seed_means))  # across seeds, not subjects
            assert summary["std"] == pytest.approx(np.std(seed_means))
        root = out / "variants" / variant / "seed1"
        log = (root / "train.log").read_text()
        switch = "true" if variant == "gnn_sif" else "false"
        assert f"--use_gnn_sif {switch} --use_noise3d false" in log and "--use_gtc false" in log
        assert "--use_encoder true" in log and "--seed 1" in log and "--val_interval 1" in log
        assert "--train#trainer#max_epochs 1" in log and f"--split_file {out / 'split.json'}" in log
        assert "--validate#inferer#stride 4" in (root / "evaluate_stacks.log").read_text()
        assert "--validate#inferer#stride" not in (root / "evaluate_blended.log").read_text()
    # without GNN-SIF, overlapping stacks predict a shared slice identically: the two views agree
    views = doc["summary"]
    spade_stacks, spade_blended = (views[v]["spade"]["psnr_slice"]["mean"] for v in ("stacks", "blended"))
    assert spade_stacks == pytest.approx(spade_blended, abs=1e-3)
    table = (out / "table.md").read_text()
    assert (
        "| SPADE (baseline) |" in table
        and "| + GNN-SIF |" in table
        and "| label-mean image (floor) |" in table
    )
    assert "## Non-overlapping stacks" in table and "## Blended whole volume" in table
    assert "across 2 seeds" in table and "ST-LPIPS" in table
    s = doc["summary"]["blended"]["gnn_sif"]["ssim"]
    assert f"{s['mean']:.4f} ± {s['std']:.4f}" in table
    b = doc["summary"]["baseline"]["psnr_slice"]
    assert f"{b['mean']:.2f} ± {b['std']:.2f}" in table
    if "lpips" in doc["unavailable"]:  # no AlexNet weights offline: said, never a number
        assert "unavailable (a)" in table and "LPIPS unavailable:" in table
    assert "Paper, Table II (L2R-OASIS" in table and "26.22" in table
    assert (out / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((out / "results.json").read_text())
    assert saved["cells"]["spade-seed0"]["views"] == doc["cells"]["spade-seed0"]["views"]
    assert json.loads((out / "config.json").read_text())["config"]["variants"] == ["spade", "gnn_sif"]


def test_verdict_follows_the_readme_rule():
    ref = {"psnr_slice": {"mean": 20.0}, "ssim": {"mean": 0.70}, "st_lpips": {"mean": 0.20}}
    better_blurrier = {"psnr_slice": {"mean": 21.0}, "ssim": {"mean": 0.72}, "st_lpips": {"mean": 0.25}}
    assert ablation.verdict(better_blurrier, ref) == "higher fidelity, worse realism than SPADE"
    assert ablation.verdict({**better_blurrier, "st_lpips": {"mean": 0.20}}, ref) == "beats SPADE"
    assert ablation.verdict({**ref, "st_lpips": {"mean": 0.3}}, ref) == "worse than SPADE"
    assert (
        ablation.verdict({**ref, "st_lpips": {"mean": 0.1}}, ref)
        == "lower fidelity, better realism than SPADE"
    )


def test_ablation_rerun_computes_nothing_and_refuses_another_config(tiny_run):
    config, out, _ = tiny_run
    cells = {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}
    logs = {p: p.read_text() for p in (out / "variants").rglob("*.log")}
    doc = ablation.run(config, out, progress=False)
    assert doc["this_run"]["computed"] == [] and doc["this_run"]["skipped"] == CELLS
    assert {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")} == cells
    assert {p: p.read_text() for p in logs} == logs  # no bundle ran
    with pytest.raises(ConfigError, match="epochs: 1 there, 2 now"):
        ablation.run({**config, "epochs": 2}, out, progress=False)
    with pytest.raises(ConfigError, match="set by the experiment itself"):
        ablation.run({**config, "train": {"use_gtc": True}}, out, progress=False)
    with pytest.raises(ConfigError, match="set by the experiment itself"):
        ablation.run({**config, "network": {"use_encoder": False}}, out, progress=False)
    with pytest.raises(ConfigError, match="stride is set by the experiment"):
        ablation.run({**config, "evaluate": {"validate#inferer#stride": 2}}, out, progress=False)
    with pytest.raises(ConfigError, match="seeds must be a non-empty list of distinct integers"):
        ablation.run({**config, "seeds": [0, 0]}, out, progress=False)
