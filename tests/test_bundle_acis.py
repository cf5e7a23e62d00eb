"""The ACIS bundles end to end, as users run them: ``python -m monai.bundle run`` in a subprocess whose
working directory is outside the repository, with tiny overrides (CPU, 32-pixel images, narrow nets)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_runs import BUNDLES, PYTHON, config, run_bundle, state

from anatosynth_components.acis import AcisPairGenerator, read_data_grid, sample_pairs
from anatosynth_components.atomic import write_nifti
from anatosynth_components.data import read_datalist
from anatosynth_components.data.demo.generate import generate_demo

NET = {
    "latent_channels": "4",
    "pm_channels": "[16,8]",
    "annotation_channels": "[8,16]",
    "image_channels": "[8,16]",
    "num_res_units": "1",
}
TRAIN = {
    "critic_channels": "8",
    "critic_layers": "2",
    "disc_channels": "8",
    "disc_layers": "2",
    "num_points": "64",
    "epoch_length": "2",
    "phase1_iterations": "2",
    "phase2_iterations": "2",
    "val_interval": "1",
    "n_critic": "1",
}
SIZE = {"acis_penet": {"spatial_size": "[32,32]"}, "acis_tlobes": {"spatial_size": "[32,32,32]"}}
DATA = {
    "acis_penet": {"batch_size": "2", "slices_per_volume": "2", "eval_slices": "2"},
    "acis_tlobes": {"batch_size": "2"},
}


def train_args(bundle: str, **extra: str) -> dict[str, str]:
    return NET | TRAIN | SIZE[bundle] | DATA[bundle] | extra


def net_args(bundle: str, **extra: str) -> dict[str, str]:
    return NET | SIZE[bundle] | extra


@pytest.fixture(scope="module")
def penet_data(tmp_path_factory) -> Path:
    """5 small CTPA phantoms in the PENet layout (series_list.pkl: 3 train, 1 val, 1 test)."""
    return generate_demo(
        "penet", tmp_path_factory.mktemp("data") / "penet", subjects=5, shape=(48, 48, 20), progress=False
    )


@pytest.fixture(scope="module")
def chest_data(tmp_path_factory) -> Path:
    """10 small chest phantoms (lobes + heart) in the datalist layout (7 / 2 / 1... by the 70/15/15 split)."""
    return generate_demo(
        "chest", tmp_path_factory.mktemp("data") / "chest", subjects=10, shape=(32, 32, 32), progress=False
    )


@pytest.fixture(scope="module")
def penet_trained(tmp_path_factory, penet_data) -> Path:
    root = tmp_path_factory.mktemp("penet_trained")
    run_bundle(
        root,
        config("acis_penet", "train"),
        "training",
        root,
        dataset_dir=str(penet_data),
        **train_args("acis_penet"),
    )
    return root


def test_penet_trains_both_phases_and_resume_continues(penet_trained, penet_data, tmp_path):
    models = penet_trained / "models"
    for phase in (1, 2):
        ckpt = state(models / f"phase{phase}" / "latest_checkpoint_epoch=1.pt")
        assert (
            ckpt["trainer"]["iteration"] == ckpt["trainer"]["epoch_length"] == 2
        )  # epoch_length 2: 2 batches of 2 volumes (x 2 slices) drawn from 3
        assert {"network", "critic", "discriminator", "opt_g", "opt_d", "trainer"} <= set(ckpt)
    assert "opt_pm" in state(models / "phase1" / "latest_checkpoint_epoch=1.pt")
    model = state(models / "model.pt")
    assert {k.split(".")[0] for k in model} == {
        "pseudo_mask_generator",
        "annotation_generator",
        "image_generator",
    }
    # model.pt is the phase-2 network: the fine-tuned image generator differs from phase 1's
    p1 = state(models / "phase1" / "latest_checkpoint_epoch=1.pt")["network"]
    assert torch.equal(
        model["pseudo_mask_generator.head.conv.weight"], p1["pseudo_mask_generator.head.conv.weight"]
    )
    assert not all(torch.equal(model[k], p1[k]) for k in model if k.startswith("image_generator"))
    grid = read_data_grid(models / "data_grid.json")
    assert grid["spatial_size"] == [32, 32] and grid["label_names"][2] == "lungs and airways"
    assert grid["spacing"] == pytest.approx([1.5, 1.5])  # 48 px of 1 mm resized to 32
    for run in ("phase1", "phase2", "validation"):
        assert list((penet_trained / "runs" / run).glob("events.out.tfevents.*")), run

    root = tmp_path / "resumed"
    shutil.copytree(penet_trained, root)
    proc = run_bundle(
        tmp_path,
        config("acis_penet", "train"),
        "training",
        root,
        dataset_dir=str(penet_data),
        resume="true",
        **train_args("acis_penet", phase1_iterations="4", phase2_iterations="4"),
    )
    log = proc.stdout + proc.stderr
    assert "phase 1: resuming from" in log and "phase 2: resuming from" in log
    for phase in (1, 2):
        two = state(root / "models" / f"phase{phase}" / "latest_checkpoint_epoch=2.pt")
        assert two["trainer"]["iteration"] == 4
        assert (root / "models" / f"phase{phase}" / "latest_checkpoint_epoch=1.pt").exists()  # previous kept
        assert {float(s["step"]) for s in two["opt_g"]["state"].values()} == {4.0}  # Adam continued
    # phase-2 validation continues phase 1's epoch axis (epochs 3, 4 after phase 1's 1, 2)
    assert "Epoch[4] Metrics -- val_dice" in log


def test_penet_sampling_writes_pairs_on_the_training_grid(penet_trained, tmp_path):
    out = tmp_path / "synth"
    run_bundle(
        tmp_path,
        config("acis_penet", "inference"),
        "inferring",
        penet_trained,
        output_dir=str(out),
        num_samples="3",
        seed="5",
        **net_args("acis_penet"),
    )
    grid = read_data_grid(penet_trained / "models" / "data_grid.json")
    index = read_datalist(out / "datalist.json")
    assert [it["seed"] for it in index.items] == [5, 6, 7] and index.labels[2] == "lungs and airways"
    images, labels = [], []
    for item in index.items:
        image, label = nib.load(item["image"]), nib.load(item["label"])
        assert image.shape == label.shape == (32, 32)
        assert np.allclose(image.affine, grid["affine"]) and np.allclose(label.affine, grid["affine"])
        data = np.asarray(image.dataobj)
        assert data.dtype == np.float32 and -1000.0 <= data.min() and data.max() <= 600.0
        ids = np.asarray(label.dataobj)
        assert set(np.unique(ids).tolist()) <= {0, 1, 2, 3}
        images.append(data)
        labels.append(ids)
    assert not np.allclose(images[0], images[1]) and not np.array_equal(labels[0], labels[2])
    # the same seed gives the same pair, in memory from model.pt
    net = AcisPairGenerator(
        2,
        (32, 32),
        4,
        latent_channels=4,
        pm_channels=(16, 8),
        annotation_channels=(8, 16),
        image_channels=(8, 16),
        num_res_units=1,
    )
    net.load_state_dict(state(penet_trained / "models" / "model.pt"))
    again = sample_pairs(net, [6])[0]
    assert np.allclose(-1000 + 1600 * again["image"][0].numpy(), images[1], atol=0.05)
    assert np.array_equal(again["labels"][0].numpy(), labels[1])


REFINE = {
    "registration_channels": "[8,8,8,8]",
    "registration_final_channels": "[8]",
    "epoch_length": "1",
    "registration_iterations": "2",
    "refine_iterations": "2",
    "num_passes": "3",
    "num_points": "64",
    "report_samples": "4",
}


def test_penet_refine_trains_registration_then_refines_the_generators(penet_trained, penet_data, tmp_path):
    """refine.json on top of train.json: a missing registration.pt is named with what makes it; the
    registration run writes it; the refinement logs the Eq. 3 uncertainty it optimises every epoch,
    leaves registration.pt and model.pt alone, writes a refined model that sampling can use and the
    report of diversity and uncertainty before and after; the removed epoch keys are named."""
    root = tmp_path / "root"
    shutil.copytree(penet_trained / "models", root / "models")
    (root / "runs").mkdir()
    shutil.copy(penet_trained / "runs" / "split.json", root / "runs" / "split.json")
    cfg = config("acis_penet", "train", "refine")
    args = net_args("acis_penet", **DATA["acis_penet"], **REFINE, dataset_dir=str(penet_data))
    models = root / "models"

    missing = run_bundle(tmp_path, cfg, "refining", root, check=False, **args)
    assert missing.returncode != 0
    assert f"{models / 'registration.pt'}: checkpoint not found" in missing.stderr, missing.stderr[-4000:]
    assert "python -m monai.bundle run registration" in missing.stderr

    old = run_bundle(tmp_path, cfg, "registration", root, check=False, **{**args, "refine_epochs": "2"})
    assert old.returncode != 0
    last = old.stderr.strip().splitlines()[-1]
    assert "refine_epochs" in last and "no longer a key" in last and "refine_iterations" in last, last

    reg = run_bundle(tmp_path, cfg, "registration", root, **args)
    assert (reg.stdout + reg.stderr).count("Metrics -- mean_dice") == 2
    assert sorted(p.name for p in (models / "registration").iterdir()) == [
        "latest_checkpoint_epoch=1.pt",
        "latest_checkpoint_epoch=2.pt",
    ]
    registration = (models / "registration.pt").read_bytes()
    model = (models / "model.pt").read_bytes()

    proc = run_bundle(tmp_path, cfg, "refining", root, **args)
    epochs = [line for line in (proc.stdout + proc.stderr).splitlines() if "Metrics -- mean_baseline" in line]
    assert len(epochs) == 2 and all(
        "mean_uncertainty:" in e and "mean_uncertainty_image:" in e for e in epochs
    )

    def means(key: str) -> np.ndarray:
        return np.array([float(e.split(f"mean_{key}:")[1].split()[0]) for e in epochs])

    # the raw weighted Eq. 3 (weights 1 : 1); the reward is normalised per term ("ema", about -2)
    assert np.all(means("uncertainty") > 0) and np.all(means("reward") < 0)
    assert np.allclose(
        means("uncertainty"), means("uncertainty_image") + means("uncertainty_annotation"), atol=2e-3
    )
    report = json.loads((models / "refinement_report.json").read_text())
    assert report["samples"] == 4 and report["before"]["iteration"] == 0 and report["after"]["iteration"] == 2
    assert report["ms_ssim"]["levels"] == 2  # 32 x 32 images
    assert 0 < report["before"]["diversity_ms_ssim"] <= 1 and report["after"]["uncertainty_image"] > 0
    assert "refinement: diversity (mean pairwise MS-SSIM, lower = more diverse)" in proc.stdout + proc.stderr
    assert (models / "registration.pt").read_bytes() == registration  # frozen: never written by refining
    assert (models / "model.pt").read_bytes() == model
    refined, original = state(models / "model_refined.pt"), state(models / "model.pt")
    assert refined.keys() == original.keys()
    assert any(not torch.equal(refined[k], original[k]) for k in refined)
    assert (
        state(models / "refine" / "latest_checkpoint_epoch=2.pt")["trainer"]["iteration"] == 2
    )  # 1 batch/epoch
    assert list((root / "runs" / "refine").glob("events.out.tfevents.*"))

    out = tmp_path / "synth"
    run_bundle(
        tmp_path,
        config("acis_penet", "inference"),
        "inferring",
        root,
        output_dir=str(out),
        num_samples="2",
        ckpt_path=str(models / "model_refined.pt"),
        **net_args("acis_penet"),
    )
    assert len(read_datalist(out / "datalist.json").items) == 2


def test_penet_evaluation_report(penet_trained, penet_data):
    run_bundle(
        penet_trained,
        config("acis_penet", "train", "evaluate"),
        "evaluating",
        penet_trained,
        dataset_dir=str(penet_data),
        num_samples="3",
        num_points="64",
        **net_args("acis_penet", eval_slices="2"),
    )
    report = json.loads((penet_trained / "eval" / "metrics.json").read_text())
    test_subjects = json.loads((penet_trained / "runs" / "split.json").read_text())["subjects"]["test"]
    assert {r["subject"] for r in report["per_item"]} == set(test_subjects) and len(report["per_item"]) == 2
    for metric in ("psnr", "ssim", "dice"):
        values = [r[metric] for r in report["per_item"]]
        assert report["summary"][metric]["mean"] == pytest.approx(np.mean(values), rel=1e-5)
    assert all(r["psnr"] > 0 and 0 <= r["dice"] <= 1 for r in report["per_item"])
    realism = report["realism"]
    assert realism["num_synthetic"] == 3 and set(realism["classes"]) == {"1", "2", "3"}
    assert all(0 <= c["synthetic_fraction_mean"] <= 1 for c in realism["classes"].values())
    rows = (penet_trained / "eval" / "metrics.csv").read_text().splitlines()
    assert rows[0] == "subject,slice,psnr,ssim,dice" and len(rows) == 1 + 2 + 2
    assert len((penet_trained / "eval" / "realism.csv").read_text().splitlines()) == 4
    assert (penet_trained / "eval" / "montage.png").stat().st_size > 5000


def test_tlobes_demo_data_plain_form_and_separate_phase_runs(tmp_path):
    """No dataset_dir (the chest demo is generated into the bundle), the plain command form from another
    directory (outputs land in the bundle folder), run ids phase1 then phase2, then 3-D sampling."""
    copy = tmp_path / "checkout" / "bundles" / "acis_tlobes"
    shutil.copytree(
        BUNDLES / "acis_tlobes", copy, ignore=shutil.ignore_patterns("models", "runs", "eval", "synth")
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    train = str(copy / "configs" / "train.json")
    run_bundle(elsewhere, train, "phase1", demo_subjects="4", **train_args("acis_tlobes"))
    assert not any(elsewhere.iterdir()), "outputs must land in the bundle folder, not the working directory"
    assert (copy / "runs" / "demo_data" / "dataset.json").is_file()
    assert (copy / "models" / "phase1" / "latest_checkpoint_epoch=1.pt").is_file()
    assert not (copy / "models" / "phase2").exists()
    proc = run_bundle(elsewhere, train, "phase2", demo_subjects="4", **train_args("acis_tlobes"))
    assert "phase 2: starting from the networks of" in proc.stdout + proc.stderr
    assert (copy / "models" / "phase2" / "latest_checkpoint_epoch=1.pt").is_file()
    run_bundle(
        elsewhere, str(copy / "configs" / "inference.json"), "run", num_samples="2", **net_args("acis_tlobes")
    )
    grid = read_data_grid(copy / "models" / "data_grid.json")
    index = read_datalist(copy / "synth")
    assert len(index.items) == 2 and index.labels[6] == "heart"
    for item in index.items:
        label = nib.load(item["label"])
        assert label.shape == (32, 32, 32) and np.allclose(label.affine, grid["affine"])
        assert set(np.unique(np.asarray(label.dataobj)).tolist()) <= set(range(7))


def test_tlobes_budget_is_iterations_whatever_the_number_of_volumes(tmp_path, chest_data):
    """Phase 1 of the bundle on 2 and on 6 training volumes: the same 4 iterations in 2 epochs of
    epoch_length 2 (counted in epochs it would have been 2 and 6 batches of 2 per epoch)."""
    for n in (2, 6):
        root = tmp_path / f"n{n}"
        run_bundle(
            tmp_path,
            config("acis_tlobes", "train"),
            "phase1",
            root,
            dataset_dir=str(chest_data),
            **train_args("acis_tlobes", phase1_iterations="4", val_interval="2"),
            **{"train#dataset#data": f"$@split['training'][:{n}]"},
        )
        assert len(json.loads((root / "runs" / "split.json").read_text())["subjects"]["training"]) >= 6
        ckpt = state(root / "models" / "phase1" / "latest_checkpoint_epoch=2.pt")
        engine = ckpt["trainer"]
        assert (engine["max_epochs"], engine["iteration"], engine["epoch_length"]) == (2, 4, 2)
        assert {float(s["step"]) for s in ckpt["opt_g"]["state"].values()} == {4.0}


def test_tlobes_two_process_gloo_ddp(tmp_path, chest_data):
    torchrun = Path(PYTHON).with_name("torchrun")
    root = tmp_path / "ddp"
    proc = run_bundle(
        tmp_path,
        config("acis_tlobes", "train", "multi_gpu_train"),
        "training",
        root,
        launcher=(str(torchrun), "--standalone", "--nproc_per_node", "2"),
        dataset_dir=str(chest_data),
        **train_args("acis_tlobes"),
    )
    for phase in (1, 2):
        ckpt = state(root / "models" / f"phase{phase}" / "latest_checkpoint_epoch=1.pt")
        assert ckpt["trainer"]["iteration"] == 2  # epoch_length 2 on every rank: 2 x 2 volumes drawn per rank
        assert not any(
            k.startswith("module.") for k in (*ckpt["network"], *ckpt["critic"], *ckpt["discriminator"])
        )
    assert (root / "models" / "model.pt").is_file() and "Traceback" not in proc.stderr


def test_penet_hdf5_without_a_study_of_the_split_is_named(tmp_path, penet_data):
    data = tmp_path / "penet"
    shutil.copytree(penet_data, data)
    with h5py.File(data / "data.hdf5", "a") as fh:
        del fh["3"]
    proc = run_bundle(
        tmp_path,
        config("acis_penet", "train"),
        root=tmp_path / "b",
        check=False,
        dataset_dir=str(data),
        **train_args("acis_penet"),
    )
    assert proc.returncode != 0
    assert (
        "series_list.pkl lists studies ['3'] that" in proc.stderr and "data.hdf5 does not hold" in proc.stderr
    )


def test_datalist_entry_with_image_and_label_of_different_shapes_is_named(tmp_path, chest_data):
    data = tmp_path / "chest"
    shutil.copytree(chest_data, data)
    bad = data / "labelsTr" / "chest_002.nii.gz"
    write_nifti(bad, np.zeros((32, 32, 30), np.uint8), np.diag([11.25, 11.25, 10.0, 1.0]))
    proc = run_bundle(
        tmp_path,
        config("acis_tlobes", "train"),
        root=tmp_path / "b",
        check=False,
        dataset_dir=str(data),
        cache_rate="1.0",
        **train_args("acis_tlobes"),
    )
    assert proc.returncode != 0
    assert "imagesTr/chest_002.nii.gz has spatial shape (32, 32, 32) but label" in proc.stderr
    assert "labelsTr/chest_002.nii.gz has (32, 32, 30)" in proc.stderr


def test_sampling_without_a_trained_model_is_a_clear_error(tmp_path):
    proc = run_bundle(
        tmp_path,
        config("acis_tlobes", "inference"),
        root=tmp_path / "fresh",
        check=False,
        **net_args("acis_tlobes"),
    )
    assert proc.returncode != 0
    assert "file not found; train the bundle first (configs/train.json)" in proc.stderr
    assert not (tmp_path / "fresh" / "synth").exists()


def test_network_def_passes_verify_net_in_out(tmp_path):
    """2-D at the metadata's full size through the command line; 3-D in process with the metadata's
    latent shape overridden to a tiny one (the real one builds a 192 x 192 x 160 output)."""
    from monai.bundle import verify_net_in_out

    cmd = [
        PYTHON,
        "-m",
        "monai.bundle",
        "verify_net_in_out",
        "network_def",
        "--meta_file",
        config("acis_penet", "metadata"),
        "--config_file",
        config("acis_penet", "inference"),
        "--device",
        "cpu",
        "--annotation_channels",
        "[4,4,4,4,4]",
        "--image_channels",
        "[4,4,4,4,4]",
        "--pm_channels",
        "[4,4,4,4,4]",
    ]
    proc = subprocess.run(
        cmd,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "data shape of network is verified with no error" in proc.stdout + proc.stderr
    verify_net_in_out(
        net_id="network_def",
        meta_file=config("acis_tlobes", "metadata"),
        config_file=config("acis_tlobes", "inference"),
        device="cpu",
        spatial_size=[32, 32, 32],
        latent_channels=16,
        pm_channels=[4, 4, 4, 4, 4],
        annotation_channels=[4, 4],
        image_channels=[4, 4],
        num_res_units=0,
        **{"_meta_#network_data_format#inputs#image#spatial_shape": [2, 2, 2]},
    )


@pytest.mark.parametrize("bundle", ["acis_penet", "acis_tlobes"])
def test_metadata_is_valid_and_matches_the_configs(bundle):
    from monai.bundle import verify_metadata

    from anatosynth_components.packaging import META_SCHEMA as schema

    meta_file = BUNDLES / bundle / "configs" / "metadata.json"
    verify_metadata(meta_file=str(meta_file), filepath=str(schema))
    meta = json.loads(meta_file.read_text())
    assert (
        meta["version"] in meta["changelog"] and "anatosynth-components" in meta["required_packages_version"]
    )
    for name in ("LICENSE", "docs/README.md", "docs/data_license.txt", "configs/logging.conf"):
        assert (BUNDLES / bundle / name).is_file(), name
    cfg = json.loads((BUNDLES / bundle / "configs" / "inference.json").read_text())
    image, pred = (
        meta["network_data_format"]["inputs"]["image"],
        meta["network_data_format"]["outputs"]["pred"],
    )
    levels = len(cfg["pm_channels"]) - 1
    assert image["num_channels"] == cfg["latent_channels"]
    assert image["spatial_shape"] == [s // 2**levels for s in cfg["spatial_size"]]
    assert pred["num_channels"] == 2 and pred["spatial_shape"] == cfg["spatial_size"]
    assert pred["value_range"] == [0, cfg["num_classes"] - 1]


def test_bundles_differ_only_in_data_and_dimensionality():
    data_keys = {
        "demo_kind",
        "spatial_dims",
        "spatial_size",
        "num_classes",
        "label_names",
        "num_points",
        "batch_size",
        "volume_transforms",
        "label_transforms",
        "train",
        "validate",
        "refine",
    }
    for name in ("train", "refine", "evaluate", "inference", "multi_gpu_train"):
        a = json.loads((BUNDLES / "acis_penet" / "configs" / f"{name}.json").read_text())
        b = json.loads((BUNDLES / "acis_tlobes" / "configs" / f"{name}.json").read_text())
        assert a.keys() == b.keys(), name
        assert {k for k in a if a[k] != b[k]} <= data_keys, name
        for section in ("train", "validate", "refine"):  # inside these only the sample transforms differ
            if section in a:
                assert {k for k in a[section] if a[section][k] != b[section][k]} == {"sample_transforms"}
