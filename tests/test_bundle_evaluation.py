"""The anatomask evaluation workflow as users run it (``run evaluating`` over ``train.json`` +
``evaluate.json``): the paper's protocol (psnr_slice on foreground slices), ST-LPIPS, the label-mean
baseline computed from the training subjects, and the volumes written for checking outside."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_runs import BUNDLES, config, run_bundle
from monai.bundle import ConfigParser
from monai.transforms import Compose
from test_bundle_anatomask import NET_KEYS
from test_bundle_anatomask import TINY as BUNDLE_TINY

from anatosynth_components.data.demo.generate import generate_demo
from anatosynth_components.metrics import SlicePSNRMetric, STLPIPSMetric

# the tiny bundle of test_bundle_anatomask, with two volumes (4 stacks) per step
TINY = BUNDLE_TINY | {"batch_size": "4"}
METRICS = ("psnr", "ssim", "coherence", "psnr_slice", "st_lpips")


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> tuple[Path, Path, dict, str]:
    """One epoch of training on 10 small brain phantoms, then the evaluation with save_volumes."""
    data = generate_demo("brain", tmp_path_factory.mktemp("data") / "oasis", subjects=10, shape=(40, 48, 20),
                         progress=False)  # fmt: skip
    root = tmp_path_factory.mktemp("bundle")
    run_bundle(root, config("anatomask_oasis", "train"), "training", root, dataset_dir=str(data), **TINY)
    net = {k: TINY[k] for k in NET_KEYS}
    proc = run_bundle(root, config("anatomask_oasis", "train", "evaluate"), "evaluating", root,
                      dataset_dir=str(data), save_volumes="true", **net)  # fmt: skip
    report = json.loads((root / "eval" / "metrics.json").read_text())
    return root, Path(data), report, proc.stdout + proc.stderr


def test_evaluation_reports_the_model_and_the_label_mean_baseline(evaluated):
    root, _, report, log = evaluated
    test_subjects = json.loads((root / "runs" / "split.json").read_text())["subjects"]["test"]
    baseline = report["baselines"]["label_mean"]
    for table in (report, baseline):
        assert sorted(table["per_subject"]) == sorted(test_subjects)
        for metric in METRICS:  # the same metric names for the model and the baseline
            values = [table["per_subject"][s][metric] for s in test_subjects]
            assert all(np.isfinite(values)), metric
            assert table["summary"][metric]["mean"] == pytest.approx(np.mean(values), rel=1e-5)
    assert set(report["summary"]) == set(baseline["summary"])
    assert "foreground slice" in report["definitions"]["psnr_slice"]
    assert "foreground slices" in report["definitions"]["st_lpips"]
    assert (root / "eval" / "metrics_label_mean.csv").is_file()
    assert (root / "eval" / "montage.png").stat().st_size > 1000
    # the table at the end of the log: model and baseline side by side
    assert "model mean ± std" in log and "label-mean baseline mean ± std" in log
    assert "PSNR-SLICE" in log and "ST-LPIPS" in log


def test_saved_volumes_reproduce_the_reported_numbers(evaluated):
    root, _, report, _ = evaluated
    psnr_slice, st_lpips = SlicePSNRMetric(slice_axis=2), STLPIPSMetric(slice_axis=2)
    for subject, row in report["per_subject"].items():
        load = {k: nib.load(str(root / "eval" / "volumes" / f"{subject}_{k}.nii.gz"))
                for k in ("labels", "real", "synthetic", "label_mean")}  # fmt: skip
        volumes = {
            k: torch.from_numpy(np.asarray(v.dataobj, dtype=np.float32))[None, None] for k, v in load.items()
        }
        assert volumes["real"].shape[2:4] == (32, 32)  # the network's resolution
        assert np.allclose(load["real"].affine, load["label_mean"].affine)
        for source, pred, table in (("synthetic", volumes["synthetic"], row),
                                    ("label_mean", volumes["label_mean"], report["baselines"]["label_mean"]
                                     ["per_subject"][subject])):  # fmt: skip
            got = float(psnr_slice(pred, volumes["real"], label_map=volumes["labels"]))
            assert got == pytest.approx(table["psnr_slice"], rel=1e-4), source
            got = float(st_lpips(pred, volumes["real"], label_map=volumes["labels"]))
            assert got == pytest.approx(table["st_lpips"], rel=1e-3, abs=1e-5), source


def test_the_baseline_is_the_training_subjects_label_means(evaluated):
    """Brute force: the training subjects (not the test ones) through the bundle's volume transforms."""
    root, data, report, _ = evaluated
    configs = BUNDLES / "anatomask_oasis" / "configs"
    parser = ConfigParser()
    parser.read_config([str(configs / "train.json"), str(configs / "evaluate.json")])
    parser.update(
        {"bundle_root": str(root), "dataset_dir": str(data), **{k: json.loads(TINY[k]) for k in NET_KEYS}}
    )
    split = parser.get_parsed_content("split")
    transforms = Compose(parser.get_parsed_content("volume_transforms"))
    sums, counts = np.zeros(64), np.zeros(64)
    for item in split["training"]:
        d = transforms(dict(item))
        ids = np.rint(d["label"].numpy()).astype(int).ravel()
        sums += np.bincount(ids, weights=d["image"].numpy().astype(np.float64).ravel(), minlength=64)
        counts += np.bincount(ids, minlength=64)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), sums.sum() / counts.sum())
    for subject in report["per_subject"]:
        labels = np.asarray(nib.load(str(root / "eval" / "volumes" / f"{subject}_labels.nii.gz")).dataobj)
        baseline = nib.load(str(root / "eval" / "volumes" / f"{subject}_label_mean.nii.gz")).get_fdata()
        np.testing.assert_allclose(baseline, means[labels.astype(int)], rtol=1e-5, atol=1e-6)
