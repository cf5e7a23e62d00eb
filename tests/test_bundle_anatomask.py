"""The anatomask bundles end to end, as users run them: ``python -m monai.bundle run`` in a subprocess
whose working directory is outside the repository, with tiny overrides (CPU, 32 x 32 slices)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_runs import BUNDLES, PYTHON, TINY_ANATOMASK, config, run_bundle, state

from anatosynth_components.atomic import write_nifti
from anatosynth_components.data.demo.generate import generate_demo
from anatosynth_components.data.label_tables import get_label_table
from anatosynth_components.data.remap_labels import remap_labels
from anatosynth_components.errors import find_cause

TINY = {**TINY_ANATOMASK, "val_interval": "1", "train#trainer#max_epochs": "1"}
NET_KEYS = ("spatial_size", "num_slices", "base_channels", "channel_mults", "stack_batch_size")


def net_overrides(**extra: str) -> dict[str, str]:
    return {k: TINY[k] for k in NET_KEYS} | extra


@pytest.fixture(scope="module")
def tiny_brain(tmp_path_factory) -> Path:
    """10 small brain phantoms in the Learn2Reg OASIS layout (10 subjects: 2 validation, 2 test)."""
    return generate_demo("brain", tmp_path_factory.mktemp("data") / "oasis", subjects=10, shape=(40, 48, 20),
                         progress=False)  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_brain) -> Path:
    """A bundle root holding one epoch of training on the tiny dataset."""
    root = tmp_path_factory.mktemp("trained")
    run_bundle(
        root, config("anatomask_oasis", "train"), "training", root, dataset_dir=str(tiny_brain), **TINY
    )
    return root


def test_train_writes_checkpoints_and_resume_continues(tmp_path):
    """Default data (the demo dataset generated into the bundle folder), then ``resume: true``."""
    root = tmp_path / "bundle"
    first = run_bundle(
        tmp_path, config("anatomask_oasis", "train"), "training", root, demo_subjects="4", **TINY
    )
    assert (root / "models" / "model.pt").is_file()
    assert (root / "runs" / "demo_data" / "OASIS_dataset.json").is_file()
    assert list((root / "runs").glob("events.out.tfevents.*")) and (root / "runs" / "split.json").is_file()
    assert "best model (by validation psnr_slice" in first.stdout
    one = state(root / "models" / "latest_checkpoint_epoch=1.pt")
    per_epoch = one["trainer"]["epoch_length"]
    assert one["trainer"]["iteration"] == per_epoch  # Ignite stores the iteration; epoch = iteration / length
    steps = {float(s["step"]) for s in one["opt_g"]["state"].values()}
    assert steps == {float(per_epoch)}

    second = run_bundle(tmp_path, config("anatomask_oasis", "train"), "training", root, demo_subjects="4",
                        resume="true", **(TINY | {"train#trainer#max_epochs": "2"}))  # fmt: skip
    assert "resuming from" in second.stdout + second.stderr
    # the best model of the first run is remembered: only a better one replaces models/model.pt
    assert "best model so far: " in second.stdout + second.stderr
    record = json.loads((root / "models" / "model.pt.best.json").read_text())
    assert record["metric"] == "val_psnr_slice" and record["epoch"] in (1, 2)
    assert (root / "models" / "latest_checkpoint_epoch=1.pt").exists()  # the previous one is kept
    two = state(root / "models" / "latest_checkpoint_epoch=2.pt")
    assert two["trainer"]["iteration"] == 2 * per_epoch
    # Adam continued from the saved moments: a fresh optimizer would count only one epoch of steps
    assert {float(s["step"]) for s in two["opt_g"]["state"].values()} == {float(2 * per_epoch)}
    assert "Epoch[2] Complete" in second.stdout + second.stderr
    assert "Epoch[1] Complete" not in second.stdout + second.stderr
    model = state(root / "models" / "model.pt")
    assert all(k.startswith("generator.") for k in model)


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    proc = run_bundle(tmp_path, config("anatomask_oasis", "train"), root=tmp_path / "b", check=False,
                      resume="true", demo_subjects="4", **TINY)  # fmt: skip
    assert proc.returncode != 0
    assert "holds no latest_checkpoint_epoch=N.pt; train once without resume first" in proc.stderr


def test_same_seed_gives_identical_checkpoints_in_both_command_forms(tmp_path, tiny_brain):
    """Plain form from another directory (outputs land in the bundle's own folder), and the model-zoo
    form with ``--bundle_root``: same seed, same data -> identical weights and optimizer state."""
    copy = tmp_path / "checkout" / "bundles" / "anatomask_oasis"
    shutil.copytree(
        BUNDLES / "anatomask_oasis", copy, ignore=shutil.ignore_patterns("models", "runs", "eval")
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run_bundle(elsewhere, str(copy / "configs" / "train.json"), "run", dataset_dir=str(tiny_brain), **TINY)
    assert not any(elsewhere.iterdir()), "outputs must land in the bundle folder, not the working directory"
    a = state(copy / "models" / "latest_checkpoint_epoch=1.pt")
    root = tmp_path / "zoo"
    run_bundle(
        elsewhere, config("anatomask_oasis", "train"), "run", root, dataset_dir=str(tiny_brain), **TINY
    )
    b = state(root / "models" / "latest_checkpoint_epoch=1.pt")
    for part in ("network", "discriminator", "gtc_classifier"):
        assert a[part].keys() == b[part].keys()
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
    exp_a = a["opt_d"]["state"][0]["exp_avg"]
    assert torch.equal(exp_a, b["opt_d"]["state"][0]["exp_avg"])


def test_evaluate_writes_per_subject_metrics(trained, tiny_brain):
    out = run_bundle(trained, config("anatomask_oasis", "train", "evaluate"), "evaluating", trained,
                     dataset_dir=str(tiny_brain), **net_overrides())  # fmt: skip
    report = json.loads((trained / "eval" / "metrics.json").read_text())
    test_subjects = json.loads((trained / "runs" / "split.json").read_text())["subjects"]["test"]
    assert sorted(report["per_subject"]) == sorted(test_subjects)
    for metric in ("psnr", "ssim", "coherence"):
        values = [report["per_subject"][s][metric] for s in test_subjects]
        assert all(np.isfinite(values))
        assert report["summary"][metric]["mean"] == pytest.approx(np.mean(values), rel=1e-5)
        assert report["summary"][metric]["std"] == pytest.approx(np.std(values), rel=1e-5, abs=1e-9)
    assert "lpips" in report["unavailable"] and "alexnet" in report["unavailable"]["lpips"]
    assert "lpips" not in report["summary"]
    assert "LPIPS unavailable" in out.stdout + out.stderr
    rows = (trained / "eval" / "metrics.csv").read_text().splitlines()
    assert rows[0].split(",")[:4] == ["subject", "psnr", "ssim", "coherence"] and len(rows) == 1 + 2 + 2
    assert (trained / "eval" / "montage.png").stat().st_size > 1000


def test_inference_on_the_real_brain_label_map(trained, real_brain, tmp_path):
    """The real aseg, remapped to the 35 OASIS labels, synthesized as a whole volume (two samples)."""
    seg = remap_labels(real_brain["seg"][:, :, 60:100], get_label_table("aseg_to_oasis35")).astype(np.uint8)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = [-80.0, -96.0, -20.0]
    write_nifti(tmp_path / "labels" / "brain_seg35.nii.gz", seg, affine)
    out = tmp_path / "synth"
    run_bundle(tmp_path, config("anatomask_oasis", "inference"), "inferring", trained,
               dataset_dir=str(tmp_path / "labels"), output_dir=str(out), num_samples="2", seed="3",
               **net_overrides())  # fmt: skip
    files = sorted(out.glob("*.nii.gz"))
    assert [f.name for f in files] == ["brain_seg35_synth_s0.nii.gz", "brain_seg35_synth_s1.nii.gz"]
    images = [nib.load(str(f)) for f in files]
    for img in images:
        assert img.shape == seg.shape and np.allclose(img.affine, affine)
        data = np.asarray(img.dataobj)
        assert np.isfinite(data).all() and 0.0 <= data.min() and data.max() <= 1.0
    assert not np.array_equal(np.asarray(images[0].dataobj), np.asarray(images[1].dataobj))


def test_two_process_gloo_ddp(tmp_path, tiny_brain):
    torchrun = Path(PYTHON).with_name("torchrun")
    root = tmp_path / "ddp"
    proc = run_bundle(tmp_path, config("anatomask_oasis", "train", "multi_gpu_train"), "training", root,
                      launcher=(str(torchrun), "--standalone", "--nproc_per_node", "2"),
                      dataset_dir=str(tiny_brain), **TINY)  # fmt: skip
    ckpt = state(root / "models" / "latest_checkpoint_epoch=1.pt")
    # 6 training volumes over 2 ranks -> 3 per rank; batch_size 2 stacks = 1 volume x 2 stacks -> 3 steps
    assert ckpt["trainer"]["iteration"] == 3
    assert not any(k.startswith("module.") for k in ckpt["network"])  # saved unwrapped
    assert (root / "models" / "model.pt").is_file()
    assert "Traceback" not in proc.stderr


def test_abdomen_bundle_trains_and_synthesizes_in_hounsfield_units(tmp_path):
    root = tmp_path / "abdomen"
    run_bundle(tmp_path, config("anatomask_abdomen", "train"), "training", root, demo_subjects="4", **TINY)
    run_bundle(tmp_path, config("anatomask_abdomen", "inference"), "inferring", root, demo_subjects="4",
               **net_overrides())  # fmt: skip
    split = json.loads((root / "runs" / "split.json").read_text())["subjects"]
    outputs = sorted((root / "synth").glob("*_synth.nii.gz"))
    assert [f.name.split("_0000")[0] for f in outputs] == sorted(split["test"])
    label = nib.load(str(root / "runs" / "demo_data" / "labelsTr" / f"{split['test'][0]}_0000.nii.gz"))
    synth = nib.load(str(outputs[0]))
    assert synth.shape == label.shape and np.allclose(synth.affine, label.affine)
    data = np.asarray(synth.dataobj)
    assert -175.0 <= data.min() and data.max() <= 250.0 and data.max() - data.min() > 1.0


def test_bundles_differ_only_in_their_data():
    """Item 1 of the bundle issue: same workflows, only reader/normalisation/label set differ."""
    data_keys = {"demo_kind", "num_classes", "intensity", "output_range", "lateral_pairs"}
    for name in ("train", "evaluate", "inference", "multi_gpu_train"):
        a = json.loads((BUNDLES / "anatomask_oasis" / "configs" / f"{name}.json").read_text())
        b = json.loads((BUNDLES / "anatomask_abdomen" / "configs" / f"{name}.json").read_text())
        assert a.keys() == b.keys(), name
        assert {k for k in a if a[k] != b[k]} <= data_keys, name


BAD_INPUT = {
    "unknown label ids": "label ids [99] are not in the configured set",
    "2-D file": "expected one channel and 3 spatial dimensions",
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_inference_bad_label_volumes_are_named(case, trained, tmp_path):
    labels = np.zeros((32, 32, 8), np.uint8)
    labels[8:20, 8:20, 2:6] = 3
    if case == "unknown label ids":
        labels[0, 0, 0] = 99
    else:
        labels = labels[:, :, 0]
    write_nifti(tmp_path / "in" / "bad.nii.gz", labels, np.eye(4))
    proc = run_bundle(tmp_path, config("anatomask_oasis", "inference"), root=trained, check=False,
                      dataset_dir=str(tmp_path / "in"), output_dir=str(tmp_path / "out"),
                      **net_overrides())  # fmt: skip
    assert proc.returncode != 0
    assert "bad.nii.gz" in proc.stderr and BAD_INPUT[case] in proc.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_missing_checkpoint_and_dataset_without_json_are_clear_errors(tmp_path):
    labels = tmp_path / "labels"
    write_nifti(labels / "a.nii.gz", np.ones((32, 32, 8), np.uint8), np.eye(4))
    proc = run_bundle(tmp_path, config("anatomask_oasis", "inference"), root=tmp_path / "fresh", check=False,
                      dataset_dir=str(labels), **net_overrides())  # fmt: skip
    assert proc.returncode != 0
    assert "model.pt: file not found; train the bundle first" in proc.stderr

    empty = tmp_path / "not_a_dataset"
    (empty / "imagesTr").mkdir(parents=True)
    proc = run_bundle(tmp_path, config("anatomask_oasis", "train"), root=tmp_path / "b", check=False,
                      dataset_dir=str(empty), **TINY)  # fmt: skip
    assert proc.returncode != 0
    assert "not_a_dataset: layout not recognised: expected a Learn2Reg '<TASK>_dataset.json'" in proc.stderr


def test_switches_typed_on_the_command_line_are_read_as_bools(tmp_path):
    """Fire hands ``--augment false`` over as the string "false"; the configs must still switch off."""
    from monai.bundle import ConfigWorkflow

    from anatosynth_components.errors import ConfigError

    def parse(key: str, **overrides: str):
        wf = ConfigWorkflow(config_file=config("anatomask_oasis", "train"), workflow_type=None,
                            logging_file=False, bundle_root=str(tmp_path), spatial_size=[32, 32],
                            channel_mults=[4, 2, 1], base_channels=4, **overrides)  # fmt: skip
        wf.initialize()
        return wf.parser.get_parsed_content(key)

    names = [type(t).__name__ for t in parse("train#stack_transforms", augment="false")]
    assert names == ["RandSliceStackd"]
    assert len(parse("train#stack_transforms", augment="True")) == 3
    net = parse("network_def", use_gnn_sif="false", use_noise3d="0")
    assert not net.generator.use_gnn_sif and not net.generator.use_noise3d
    with pytest.raises(RuntimeError) as err:
        parse("network_def", use_gnn_sif="maybe")
    assert "use_gnn_sif must be true or false, got 'maybe'" in str(find_cause(err.value, ConfigError))


@pytest.mark.parametrize("bundle", ["anatomask_oasis", "anatomask_abdomen"])
def test_metadata_is_valid_against_the_model_zoo_schema(bundle):
    from monai.bundle import verify_metadata

    from anatosynth_components.packaging import META_SCHEMA as schema

    meta_file = BUNDLES / bundle / "configs" / "metadata.json"
    verify_metadata(meta_file=str(meta_file), filepath=str(schema))  # raises on any violation
    meta = json.loads(meta_file.read_text())
    assert meta["version"] in meta["changelog"]
    assert "anatosynth-components" in meta["required_packages_version"]
    for name in ("LICENSE", "docs/README.md", "docs/data_license.txt"):
        assert (BUNDLES / bundle / name).is_file(), name
    train = json.loads((BUNDLES / bundle / "configs" / "train.json").read_text())
    classes = train["num_classes"]
    image = meta["network_data_format"]["inputs"]["image"]
    assert image["value_range"] == [0, classes - 1]
    assert image["spatial_shape"] == [train["num_slices"], *train["spatial_size"]]
