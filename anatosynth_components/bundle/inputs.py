"""What ``inference.json`` synthesizes: label volumes from a file, a folder or a dataset."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from anatosynth_components.data.dataset_index import detect_layout, read_dataset
from anatosynth_components.data.file_names import is_nifti
from anatosynth_components.data.output_path import check_not_input
from anatosynth_components.errors import ConfigError, DataError


def label_files(source: str | os.PathLike, split_file: str | os.PathLike | None = None) -> list[str]:
    """Label volumes under ``source``.

    ``source`` is a NIfTI file, a folder of NIfTI label files (``*.nii``, ``*.nii.gz``, sorted), or
    a dataset folder the readers know (its label files; only the ``test`` subjects when
    ``split_file`` exists, so a demo run synthesizes the subjects the model never saw).
    """
    path = Path(source).expanduser()
    if path.is_file():
        if not is_nifti(path):
            raise DataError(f"{path}: not a NIfTI file (.nii or .nii.gz)")
        return [str(path)]
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder of label volumes")
    files = sorted(str(p) for p in path.iterdir() if p.is_file() and is_nifti(p))
    if files:
        return files
    try:
        detect_layout(path)
    except DataError:
        raise DataError(f"{path}: holds no NIfTI label files (.nii, .nii.gz) and no dataset") from None
    items = read_dataset(path).items
    if split_file is not None and Path(split_file).is_file():
        test = set(json.loads(Path(split_file).read_text())["subjects"].get("test", []))
        items = [it for it in items if it["subject"] in test] or items
    return sorted({it["label"] for it in items if isinstance(it.get("label"), str)})


def synthesis_items(
    source: str | os.PathLike,
    num_samples: int = 1,
    seed: int = 0,
    split_file: str | os.PathLike | None = None,
    output_dir: str | os.PathLike | None = None,
) -> list[dict[str, Any]]:
    """One item per label volume and sample: ``{"image": label file, "noise_seed": seed + k,
    "sample": k}`` for ``k < num_samples`` (the label volume is the network's "image").

    ``output_dir`` (the run's output folder) is refused, before any work, when it is the dataset
    folder (``source``, or the folder holding the file ``source``) or lies inside it: outputs would mix
    with the dataset, and the next run would read them as inputs.

    Example::

        synthesis_items("labels/", num_samples=2, seed=7)
        # [{'image': 'labels/a.nii.gz', 'noise_seed': 7, 'sample': 0},
        #  {'image': 'labels/a.nii.gz', 'noise_seed': 8, 'sample': 1}, ...]
    """
    if int(num_samples) < 1:
        raise ConfigError(f"num_samples must be >= 1, got {num_samples}")
    if output_dir is not None:
        path = Path(source).expanduser()
        dataset_folder = path if path.is_dir() else path.parent
        check_not_input(output_dir, [dataset_folder], what="output_dir", folder="the dataset folder")
    return [
        {"image": f, "noise_seed": int(seed) + k, "sample": k}
        for f in label_files(source, split_file)
        for k in range(int(num_samples))
    ]
