"""The downstream experiments driving the real ACIS bundles (``bundles/acis_tlobes``, ``bundles/acis_penet``):
for each real training subset the hook trains the bundle on exactly those volumes (``python -m
monai.bundle run training``), samples pairs with ``configs/inference.json``, and the experiment trains
on real + sampled data.  Tiny sizes (32-voxel grids, one epoch per ACIS phase, two iterations per cell).

Checks: the bundle's own split holds every real volume of the subset in ``training`` (none of the
experiment's test volumes), the sampled datalist has ``num_samples`` pairs that the cell counts, and a
rerun, or the recomputation of one lost cell, runs no ACIS workflow again."""

from __future__ import annotations

import copy
import json
import os

import pytest
import torch

from anatosynth_components.experiments import reconstruction, segmentation

ACIS_NET = {
    "latent_channels": 4,
    "pm_channels": [16, 8],
    "annotation_channels": [8, 16],
    "image_channels": [8, 16],
    "num_res_units": 1,
}
ACIS_TRAIN = {
    "critic_channels": 8,
    "critic_layers": 2,
    "disc_channels": 8,
    "disc_layers": 2,
    "num_points": 64,
    "epoch_length": 1,
    "phase1_iterations": 1,
    "phase2_iterations": 1,
    "val_interval": 1,
    "n_critic": 1,
}
ACIS_REFINE = {
    "registration_channels": [8, 8, 8, 8],
    "registration_final_channels": [8],
    "registration_iterations": 1,
    "refine_iterations": 1,
    "num_passes": 2,
    "report_samples": 2,
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread here and in the bundle subprocesses (tiny networks run faster so on 2 cores)."""
    old_env, old_threads = os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads()
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old_threads)
    if old_env is None:
        os.environ.pop("OMP_NUM_THREADS")
    else:
        os.environ["OMP_NUM_THREADS"] = old_env


def _logs(folder):
    return {p.name: p.read_bytes() for p in folder.rglob("acis_*.log")}


@pytest.fixture(scope="module")
def seg_run(tmp_path_factory):
    config = copy.deepcopy(segmentation.SCALES["demo"])
    config.update(
        scale="test",
        spatial_size=[32, 32, 32],
        test_subjects=2,
        n_train=[2],
        iterations=2,
        models=["unet"],
        arms=["baseline", "acis_minus", "acis"],
        synthetic={
            "acis_bundle": "acis_tlobes",
            "num_samples": 2,
            "train_overrides": {**ACIS_NET, **ACIS_TRAIN, "spatial_size": [32, 32, 32]},
            "refine_overrides": ACIS_REFINE,
            "inference_overrides": {**ACIS_NET, "spatial_size": [32, 32, 32]},
        },
    )
    config["demo"].update(subjects=5, shape=[32, 32, 32])
    out = tmp_path_factory.mktemp("seg_acis") / "out"
    return config, out, segmentation.run(config, out, progress=False)


def test_segmentation_trains_acis_on_the_subset_and_uses_its_samples(seg_run):
    config, out, doc = seg_run
    split = doc["split"]
    work = out / "synthetic" / "n2"
    bundle_split = json.loads((work / "bundle" / "runs" / "split.json").read_text())["subjects"]
    assert sorted(bundle_split["training"]) == sorted(split["pool"][:2])  # all n real volumes, only those
    assert bundle_split["test"] == [] and not set(bundle_split["validation"]) & set(split["test"])
    log = (work / "acis_train.log").read_text()
    assert "bundles/acis_tlobes/configs/train.json" in log and "--phase1_iterations 1" in log
    assert "inference.json --bundle_root" in (work / "acis_sample.log").read_text()
    # acis_minus samples model.pt, acis the refined generators, after registration + refinement
    refine_log = (work / "acis_refine.log").read_text()
    assert "configs/refine.json" in refine_log and "--registration_iterations 1" in refine_log
    assert (work / "bundle" / "models" / "model_refined.pt").is_file()
    assert json.loads((work / "bundle" / "models" / "refinement_report.json").read_text())
    for arm, folder, model in (
        ("acis_minus", "samples", "model.pt"),
        ("acis", "samples_refined", "model_refined.pt"),
    ):
        datalist = json.loads((work / folder / "datalist.json").read_text())
        assert len(datalist["training"]) == 2 and all("label" in s for s in datalist["training"])
        # provenance: the generator saw exactly the n real training volumes, none of the test subjects
        assert datalist["provenance"]["trained_on"] == sorted(split["pool"][:2])
        assert datalist["provenance"]["model_file"].endswith(f"models/{model}")
        assert datalist["provenance"]["refined"] is (arm == "acis")
        cell = doc["cells"][f"n2-unet-{arm}"]
        assert (cell["n_real"], cell["n_synthetic"]) == (2, 2)
        assert cell["synthetic_source"]["datalist"] == str(work / folder / "datalist.json")
        assert cell["synthetic_source"]["trained_outside_subset"] == []
    assert doc["cells"]["n2-unet-baseline"]["n_synthetic"] == 0
    assert doc["config"]["synthetic_source"]["num_samples"] == 2
    assert "Synthetic pairs per cell: [2]" in (out / "table.md").read_text()


def test_segmentation_rerun_and_lost_cell_run_no_acis_workflow(seg_run):
    config, out, _ = seg_run
    logs = _logs(out)
    doc = segmentation.run(config, out, progress=False)
    assert doc["this_run"]["computed"] == []
    (out / "cells" / "n2-unet-acis.json").unlink()  # as if interrupted after sampling
    doc = segmentation.run(config, out, progress=False)
    assert doc["this_run"]["computed"] == ["n2-unet-acis"]
    assert doc["cells"]["n2-unet-acis"]["n_synthetic"] == 2
    assert _logs(out) == logs  # the ACIS model and its samples were reused


def test_reconstruction_trains_acis_penet_on_the_baseline_scans(tmp_path):
    config = copy.deepcopy(reconstruction.SCALES["demo"])
    config.update(
        scale="test",
        tasks=["sr2"],
        networks=["redcnn"],
        arms=["baseline", "acis_minus"],
        iterations=2,
        batch_size=4,
        slice_stride=4,
        baseline_scans=2,
        demo={"kind": "penet", "subjects": 6, "seed": 0, "shape": [32, 32, 16]},
        network_sizes={"redcnn": {"features": 8}},
        synthetic={
            "acis_bundle": "acis_penet",
            "num_samples": 3,
            "train_overrides": {
                **ACIS_NET,
                **ACIS_TRAIN,
                "spatial_size": [32, 32],
                "batch_size": 2,
                "slices_per_volume": 2,
                "eval_slices": 2,
            },
            "inference_overrides": {**ACIS_NET, "spatial_size": [32, 32]},
        },
    )
    doc = reconstruction.run(config, tmp_path / "out", progress=False)
    work = tmp_path / "out" / "synthetic" / "baseline"
    bundle_split = json.loads((work / "bundle" / "runs" / "split.json").read_text())["subjects"]
    assert sorted(bundle_split["training"]) == doc["split"]["baseline"]  # the 2 baseline scans
    # the PENet studies were exported to NIfTI for the bundle's datalist
    assert len(list((work / "real" / "image").glob("*.nii.gz"))) == 2
    cells = doc["cells"]
    assert cells["sr2-redcnn-acis_minus"]["n_synthetic_slices"] == 3  # 3 sampled 2-D slices
    assert cells["sr2-redcnn-acis_minus"]["n_train_slices"] == cells["sr2-redcnn-baseline"]["n_train_slices"]
