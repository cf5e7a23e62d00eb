"""Shared fixtures: the real volumes of ../shared/data and small trees in the real layouts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from anatosynth_components.atomic import write_json, write_nifti
from anatosynth_components.data.label_tables import get_label_table
from anatosynth_components.data.remap_labels import remap_labels

# Tests never download pretrained weights (VGG19, AlexNet): what they check must not depend on the
# network; this also reaches the bundle subprocesses the tests start.
os.environ["ANATOSYNTH_NO_DOWNLOAD"] = "1"

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def one_torch_thread():
    """Tiny networks: one torch thread is many times faster than two on a shared 2-core machine
    (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _need(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(
            f"real test volume {path} is absent (the ../shared/data folder ships beside the repository)"
        )
    return path


@pytest.fixture(scope="session")
def real_brain() -> dict[str, np.ndarray]:
    """The voxelmorph test scan: ``vol`` T1 in [0, 1] and ``seg`` FreeSurfer aseg, (160, 192, 224)."""
    data = np.load(_need("brain_mri_aseg.npz"))
    return {"vol": data["vol"].astype(np.float32), "seg": data["seg"].astype(np.int16)}


@pytest.fixture(scope="session")
def real_ct() -> dict[str, object]:
    """TotalSegmentator's example CT (HU, int16) and its v2 label map, (122, 101, 30), 3 mm."""
    image = nib.load(str(_need("ct_thorax_abdomen.nii.gz")))
    label = nib.load(str(_need("ct_thorax_abdomen_labels.nii.gz")))
    return {
        "image": np.asarray(image.dataobj).astype(np.int16),
        "label": np.asarray(label.dataobj).astype(np.uint8),
        "affine": image.affine,
        "image_path": SHARED_DATA / "ct_thorax_abdomen.nii.gz",
        "label_path": SHARED_DATA / "ct_thorax_abdomen_labels.nii.gz",
    }


def crop_brain(real_brain: dict[str, np.ndarray], step: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """The real brain subsampled by ``step`` (small enough for fast tests), aseg remapped to OASIS-35."""
    vol = real_brain["vol"][::step, ::step, ::step]
    seg = real_brain["seg"][::step, ::step, ::step]
    return vol, remap_labels(seg, get_label_table("aseg_to_oasis35")).astype(np.uint8)


def write_learn2reg_tree(
    root: Path,
    task: str,
    pairs: list[tuple[np.ndarray, np.ndarray]],
    affine: np.ndarray,
    labels: dict[int, str],
) -> Path:
    """A Learn2Reg tree (``<task>_dataset.json`` + imagesTr/labelsTr) of the given volumes."""
    training = []
    for i, (image, label) in enumerate(pairs, start=1):
        name = f"{task}_{i:04d}_0000.nii.gz"
        write_nifti(root / "imagesTr" / name, image, affine)
        write_nifti(root / "labelsTr" / name, label, affine)
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    doc = {
        "name": task,
        "modality": {"0": "MR"},
        "labels": {"0": {"0": "background", **{str(k): v for k, v in labels.items()}}},
        "tensorImageShape": {"0": list(pairs[0][0].shape)},
        "training": training,
        "test": [],
        "registration_val": [],
    }
    return write_json(root / f"{task}_dataset.json", doc)


def read_json(path: Path) -> object:
    return json.loads(Path(path).read_text())
