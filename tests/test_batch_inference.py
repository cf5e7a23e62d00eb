"""Batch inference keeps going: a folder with corrupt or invalid label volumes among valid ones writes
every valid output, lists each failure with its reason at the end and exits non-zero.

The bundles run as users run them (``python -m monai.bundle run inferring`` in a subprocess) on a
tiny untrained network (weights saved from ``network_def``: what is checked here does not depend on
training).  The ACIS bundles' ``inference.json`` samples pairs from seeded noise and reads no input
files, so only the AnatoMaskGAN bundles are run here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_runs import config, run_bundle
from monai.bundle import ConfigParser
from monai.data import DataLoader
from monai.transforms import Compose

from anatosynth_components.atomic import write_nifti
from anatosynth_components.bundle import SkipFailedDataset, SkipFailedEvaluator
from anatosynth_components.bundle.skip_failed import FAILED_KEY
from anatosynth_components.data import LoadVolumed, ValidateVolumed
from anatosynth_components.errors import ConfigError, DataError, find_cause

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NET = {"spatial_size": [32, 32], "num_slices": 4, "base_channels": 8, "channel_mults": [4, 2, 1]}
BUNDLES = ("anatomask_oasis", "anatomask_abdomen")


def overrides() -> dict[str, str]:
    """The tiny network on the command line."""
    return {k: str(v).replace(" ", "") for k, v in NET.items()} | {"stack_batch_size": "8"}


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module", params=BUNDLES)
def bundle_root(request, tmp_path_factory) -> tuple[str, Path]:
    """(bundle name, a bundle root whose ``models/model.pt`` holds an untrained tiny network)."""
    root = tmp_path_factory.mktemp(request.param)
    parser = ConfigParser()
    parser.read_config(config(request.param, "inference"))
    parser.update({"bundle_root": str(root), **NET})
    (root / "models").mkdir()
    torch.save(parser.get_parsed_content("network_def").state_dict(), root / "models" / "model.pt")
    return request.param, root


def labels(shape=(32, 32, 8)) -> np.ndarray:
    volume = np.zeros(shape, np.uint8)
    volume[8:20, 8:20, 2:6] = 3
    return volume


@pytest.fixture
def mixed_folder(tmp_path) -> Path:
    """a, d: valid; b: truncated gzip; c: label id 99 and a T1-like range of ids; e: a 2-D file."""
    folder = tmp_path / "in"
    affine = np.diag([1.5, 1.5, 3.0, 1.0])
    write_nifti(folder / "a.nii.gz", labels(), affine)
    data = (folder / "a.nii.gz").read_bytes()
    (folder / "b.nii.gz").write_bytes(data[: len(data) // 2])
    many = labels().astype(np.int16)
    many.flat[:1300] = np.arange(36, 1336)
    write_nifti(folder / "c.nii.gz", many, affine)
    write_nifti(folder / "d.nii.gz", labels(), affine)
    write_nifti(folder / "e.nii.gz", labels()[:, :, 0], affine)
    return folder


def test_a_folder_with_bad_files_writes_every_valid_output_and_lists_the_failures(bundle_root, mixed_folder):
    name, root = bundle_root
    before = digests(mixed_folder)
    out = mixed_folder.parent / "out"
    proc = run_bundle(mixed_folder.parent, config(name, "inference"), "inferring", root, check=False,
                      dataset_dir=str(mixed_folder), output_dir=str(out), **overrides())  # fmt: skip
    assert proc.returncode != 0
    num_classes = 36 if name == "anatomask_oasis" else 14
    report = [
        "3 inputs failed and were skipped; every other output was written:",
        f"  {mixed_folder / 'b.nii.gz'}: cannot read the image file (truncated or corrupt gzip data: "
        "Compressed file ended before the end-of-stream marker was reached)",
        f"  {mixed_folder / 'c.nii.gz'}: label ids [36, 37, 38, 39, 40, 41, 42, 43, 44, 45] and 1290 more"
        f" (1300 ids) are not in the configured set 0..{num_classes - 1}",
        f"  {mixed_folder / 'e.nii.gz'}: image has shape (1, 32, 32) (channel first); expected one channel"
        " and 3 spatial dimensions",
    ]
    tail = proc.stderr.strip().splitlines()[-len(report) :]
    assert tail == ["Caused by DataError: " + report[0], *report[1:]], proc.stderr[-3000:]
    assert ".part" not in proc.stderr + proc.stdout
    assert sorted(p.name for p in out.iterdir()) == ["a_synth.nii.gz", "d_synth.nii.gz"]
    for stem in ("a", "d"):
        synth = nib.load(str(out / f"{stem}_synth.nii.gz"))
        assert synth.shape == (32, 32, 8) and np.allclose(synth.affine, np.diag([1.5, 1.5, 3.0, 1.0]))
        assert np.isfinite(np.asarray(synth.dataobj)).all()
    assert digests(mixed_folder) == before


def test_output_dir_inside_the_dataset_is_refused_before_any_work(bundle_root, mixed_folder):
    name, root = bundle_root
    before = digests(mixed_folder)
    proc = run_bundle(mixed_folder.parent, config(name, "inference"), "inferring", root, check=False,
                      dataset_dir=str(mixed_folder), output_dir=str(mixed_folder / "synth"),
                      **overrides())  # fmt: skip
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        f"Caused by DataError: {mixed_folder / 'synth'}: output_dir lies inside the dataset folder "
        f"{mixed_folder}; outputs would mix with the inputs (choose a path outside it)"
    )
    assert "Epoch[1]" not in proc.stdout + proc.stderr  # the evaluator never ran
    assert digests(mixed_folder) == before


class Half(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() * 0.5


def evaluator(items: list[dict], save) -> SkipFailedEvaluator:
    """The two parts as the configs wire them, on a network that halves its input."""
    pre = Compose(
        [LoadVolumed("image"), ValidateVolumed(image_key=None, label_key="image", label_ids=[1, 2, 3])]
    )
    loader = DataLoader(SkipFailedDataset(items, pre), batch_size=1, num_workers=0)
    return SkipFailedEvaluator(device=torch.device("cpu"), val_data_loader=loader, network=Half(),
                               postprocessing=save)  # fmt: skip


def test_failures_in_loading_and_in_saving_are_skipped_and_listed(tmp_path):
    for stem in ("a", "b", "c"):
        write_nifti(tmp_path / f"{stem}.nii.gz", labels((8, 8, 4)), np.eye(4))
    bad = labels((8, 8, 4))
    bad[0, 0, 0] = 9
    write_nifti(tmp_path / "bad.nii.gz", bad, np.eye(4))
    saved = []

    def save(d):
        name = Path(d["image"].meta["filename_or_obj"]).name
        if name == "b.nii.gz":
            raise DataError(f"{name} output: disk quota")  # raised while saving: skipped and listed too
        saved.append(name)
        return d

    items = [
        {"image": str(tmp_path / f)}
        for f in ("a.nii.gz", "missing.nii.gz", "bad.nii.gz", "b.nii.gz", "c.nii.gz")
    ]
    engine = evaluator(items, save)
    with pytest.raises(DataError) as info:
        engine.run()
    assert saved == ["a.nii.gz", "c.nii.gz"]
    assert str(info.value) == "\n".join([
        "3 inputs failed and were skipped; every other output was written:",
        f"  {tmp_path / 'missing.nii.gz'}: image file not found",
        f"  {tmp_path / 'bad.nii.gz'}: label ids [9] are not in the configured set 0..3",
        f"  {tmp_path / 'b.nii.gz'}: b.nii.gz output: disk quota",
    ])  # fmt: skip
    assert engine.state.iteration == 5  # every item had its turn


def test_other_errors_still_stop_the_run(tmp_path):
    write_nifti(tmp_path / "a.nii.gz", labels((8, 8, 4)), np.eye(4))

    def broken(d):
        raise ConfigError("output_range must be [low, high]")

    with pytest.raises(RuntimeError) as info:  # MONAI's wrapper of a failed transform
        evaluator([{"image": str(tmp_path / "a.nii.gz")}], broken).run()
    assert find_cause(info.value, ConfigError) is not None and find_cause(info.value, DataError) is None
    assert SkipFailedDataset([{"image": str(tmp_path / "x.nii.gz")}], LoadVolumed("image"))[0] == {
        FAILED_KEY: f"{tmp_path / 'x.nii.gz'}: image file not found"
    }
