"""The training data's grid, written beside the model so that sampled pairs land on it.

``models/data_grid.json`` records what a sampled (image, annotation) pair needs to be added to the
training set: the voxel grid (``affine`` 4x4, ``spacing``, ``spatial_size``), the label ids and names
the annotation generator was trained on, the intensity convention, and which real subjects trained
the model (``training_subjects``: the sampled datalist records them, so that an experiment can refuse
synthetic pairs whose generator saw its test subjects).  :class:`DataGridWriter`
writes it from the first training batch (the affine of its first item after preprocessing: for 3-D
the resampled volume, for 2-D the slice's affine from :class:`~anatosynth_components.acis.slices.Slicesd`);
:func:`read_data_grid` reads and checks it at sampling time.

Example (``train.json``)::

    {"_target_": "anatosynth_components.acis.DataGridWriter", "path": "@grid_file",
     "label_names": "@label_names", "hu_window": [-1000, 600],
     "training_subjects": "$[item['subject'] for item in @split['training']]"}
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import numpy as np
from ignite.engine import Engine, Events
from monai.data import MetaTensor
from monai.data.utils import affine_to_spacing

from anatosynth_components.atomic import write_json
from anatosynth_components.checks import check_interval
from anatosynth_components.data.dataset_index import read_json
from anatosynth_components.errors import ConfigError, DataError

GRID_KEYS = ("spatial_dims", "spatial_size", "affine", "spacing", "label_names", "hu_window")


def grid_of(image: Any, label_names: Mapping[int | str, str], hu_window: Sequence[float]) -> dict[str, Any]:
    """The grid record of one channel-first image ``MetaTensor`` (C, *S)."""
    if not isinstance(image, MetaTensor):
        raise DataError(
            f"the training image is a {type(image).__name__}, not a MetaTensor: its affine is unknown"
        )
    spatial = tuple(int(s) for s in image.shape[1:])
    affine = np.asarray(image.affine, dtype=np.float64)
    names = {int(k): str(v) for k, v in label_names.items()}
    return {
        "spatial_dims": len(spatial),
        "spatial_size": list(spatial),
        "affine": affine.round(6).tolist(),
        "spacing": [float(s) for s in affine_to_spacing(affine, r=len(spatial))],
        "label_names": {str(k): names[k] for k in sorted(names)},
        "hu_window": [float(v) for v in hu_window],
        "source": str(image.meta.get("filename_or_obj", "")),
    }


class DataGridWriter:
    """Write ``path`` (rank 0) once per run, from the first item of the first training batch.

    Args:
        path: the JSON file (``models/data_grid.json``).
        label_names: id -> name of the annotation classes without background
            (``{1: "left upper lobe", ...}``).
        hu_window: the HU window that maps to [0, 1].
        image_key: the batch key of the image.
        training_subjects: the subject ids of the real training items (recorded as
            ``training_subjects``; None records that they are unknown).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        label_names: Mapping[int | str, str],
        hu_window: Sequence[float] = (-1000.0, 600.0),
        image_key: str = "image",
        training_subjects: Sequence[str] | None = None,
    ) -> None:
        self.path, self.label_names = Path(path), label_names
        self.training_subjects = (
            None if training_subjects is None else sorted({str(s) for s in training_subjects})
        )
        self.hu_window = check_interval("hu_window", hu_window)
        self.image_key = image_key
        self._done = False

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._arm)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def _arm(self, engine: Engine) -> None:
        self._done = False

    def __call__(self, engine: Engine) -> None:
        if self._done:
            return
        self._done = True
        if idist.get_rank() == 0:
            image = engine.state.batch[self.image_key]
            grid = grid_of(image[0], self.label_names, self.hu_window)
            write_json(self.path, {**grid, "training_subjects": self.training_subjects})


def read_data_grid(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check ``data_grid.json``; a missing file names the way out (train first)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{path}: file not found; train the bundle first (configs/train.json) or set grid_file"
        )
    grid = read_json(path)
    missing = [k for k in GRID_KEYS if not isinstance(grid, dict) or k not in grid]
    if missing:
        raise DataError(f"{path}: not a data grid record, keys {missing} are missing")
    affine = np.asarray(grid["affine"], dtype=np.float64)
    if affine.shape != (4, 4) or not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise DataError(f"{path}: 'affine' must be a finite, invertible 4x4 matrix, got {grid['affine']}")
    grid["affine"] = affine
    grid["label_names"] = {int(k): str(v) for k, v in grid["label_names"].items()}
    return grid
