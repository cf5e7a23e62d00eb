"""Sampling new image-annotation pairs from a trained ACIS model (``configs/inference.json``).

The workflow is a MONAI ``SupervisedEvaluator`` over "items" that are seeds:

1. :func:`sample_items` lists ``{"seed": seed + k, "sample": k}`` for ``k < num_samples``;
2. :class:`LatentNoised` turns each seed into the latent noise ``z`` (the network's one input), drawn
   from a CPU generator seeded with it, so a seed gives the same pair on every device;
3. the network (:class:`~anatosynth_components.acis.AcisPairGenerator`) returns (2, *S): image,
   annotation ids;
4. :class:`SavePaird` writes ``imagesTr/<prefix>_<k>.nii.gz`` and ``labelsTr/<prefix>_<k>.nii.gz`` on the
   training grid of ``models/data_grid.json`` (affine, label ids), the image in HU or [0, 1];
5. :class:`PairDatalistWriter` writes ``datalist.json`` (MONAI datalist: ``{"training": [{"image",
   "label"}, ...]}``, paths relative to it), ready to be merged into a segmentation training set.

:func:`sample_pairs` is the same chain in memory, for the evaluation's realism statistics.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.networks.utils import eval_mode
from monai.transforms import MapTransform

from anatosynth_components.acis.pseudomask_generator import sample_latent
from anatosynth_components.atomic import write_json, write_nifti
from anatosynth_components.bundle.units import output_range_of
from anatosynth_components.data.file_names import image_stem
from anatosynth_components.data.output_path import check_output_folder
from anatosynth_components.engines.modules import unwrap
from anatosynth_components.errors import ConfigError, DataError

IMAGES_DIR, LABELS_DIR, DATALIST = "imagesTr", "labelsTr", "datalist.json"


def sample_items(num_samples: int, seed: int = 0) -> list[dict[str, int]]:
    """``[{"seed": seed + k, "sample": k} for k < num_samples]``.

    >>> sample_items(2, seed=7)
    [{'seed': 7, 'sample': 0}, {'seed': 8, 'sample': 1}]
    """
    if isinstance(num_samples, bool) or int(num_samples) < 1:
        raise ConfigError(f"num_samples must be >= 1, got {num_samples!r}")
    return [{"seed": int(seed) + k, "sample": k} for k in range(int(num_samples))]


class LatentNoised(MapTransform):
    """Write the latent noise of ``data[seed_key]`` to ``data[key]``: (latent_channels, *latent_size).

    Args:
        keys: where to write ``z`` (``"image"``: MONAI's evaluators read their input there).
        latent_shape: (latent_channels, *latent_size), e.g. ``network_def.latent_shape(1)[1:]``.
        seed_key: the item's seed.
    """

    def __init__(self, keys: str, latent_shape: Sequence[int], seed_key: str = "seed") -> None:
        super().__init__(keys)
        self.latent_shape, self.seed_key = tuple(int(s) for s in latent_shape), seed_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if self.seed_key not in d:
            raise ConfigError(f"LatentNoised: the item {d} has no {self.seed_key!r}")
        for key in self.keys:  # written, not read: key_iterator would demand that they exist
            d[key] = sample_latent((1, *self.latent_shape), int(d[self.seed_key]))[0]
        return d


def to_range(image: np.ndarray, output_range: Sequence[float] | None) -> np.ndarray:
    """[0, 1] -> ``[low, high]`` linearly (None keeps [0, 1]), float32."""
    if output_range is None:
        return image.astype(np.float32)
    low, high = (float(v) for v in output_range)
    if not low < high:
        raise ConfigError(f"output_range must be [low, high] with low < high, got {list(output_range)}")
    return (low + image * (high - low)).astype(np.float32)


def check_trained_window(output_range: Sequence[float] | None, grid: Mapping[str, Any]) -> None:
    """An ``output_range`` other than the HU window the model was trained with (``hu_window`` of
    ``data_grid.json``) would write wrong Hounsfield units: ``ConfigError`` naming both keys.

    >>> check_trained_window([-1000, 600], {"hu_window": [-1000, 600]})
    >>> check_trained_window(None, {"hu_window": [-1000, 600]})  # [0, 1] asked for
    >>> check_trained_window([-1000, 600], {"hu_window": [-1200, 400]})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    anatosynth_components.errors.ConfigError: output_range [-1000.0, 600.0] is not the HU window the model ...
    """
    trained = grid.get("hu_window")
    if output_range is None or trained is None:
        return
    mine, theirs = [float(v) for v in output_range], [float(v) for v in trained]
    if not np.allclose(mine, theirs):
        raise ConfigError(
            f"output_range {mine} is not the HU window the model was trained with (hu_window {theirs} in "
            f"models/data_grid.json): set hu_window to {theirs} (output_range follows it), or output_range "
            "to null for [0, 1]"
        )


class SavePaird(MapTransform):
    """Write one sampled pair (``data[key]``: (2, *S), image then ids) as two NIfTI files.

    Args:
        keys: the network output key (``"pred"``).
        output_dir: where ``imagesTr/`` and ``labelsTr/`` go.
        grid: the record of :func:`~anatosynth_components.acis.data_grid.read_data_grid` (affine,
            spatial size, label names of the training data).
        output_range: ``[low, high]`` the image's [0, 1] maps to (the HU window the model was trained
            with, ``hu_window`` of ``data_grid.json``: the pairs then look like the raw training CT; another
            window is an error); None (or ``"null"``) writes [0, 1].
        prefix: file name prefix; the file names are ``<prefix>_<sample:04d>.nii.gz``.
        sample_key: the item's sample index.

    Adds ``image_file`` and ``label_file`` (absolute paths) to the item.  The output folder is created
    (or found writable) when the transform is built, before any sampling; a spatial size other than the
    grid's, or ids outside the trained label set, raise an error before anything is written.
    """

    def __init__(
        self,
        keys: str,
        output_dir: str | os.PathLike,
        grid: Mapping[str, Any],
        output_range: Sequence[float] | None = None,
        prefix: str = "acis",
        sample_key: str = "sample",
    ) -> None:
        super().__init__(keys)
        self.output_dir, self.grid, self.prefix, self.sample_key = (
            check_output_folder(output_dir),  # before any sampling: created, or found writable
            grid,
            str(prefix),
            sample_key,
        )
        unit_or_range = output_range_of(output_range)  # None, "null" (command line) -> [0, 1]
        self.output_range = None if unit_or_range is None else list(unit_or_range)
        check_trained_window(self.output_range, grid)
        self.label_ids = {0, *(int(k) for k in grid["label_names"])}

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            pred = torch.as_tensor(d[key]).detach().float().cpu().numpy()
            if pred.shape[0] != 2 or list(pred.shape[1:]) != list(self.grid["spatial_size"]):
                raise ConfigError(
                    f"the network output {tuple(pred.shape)} does not match the training grid "
                    f"(2, {', '.join(map(str, self.grid['spatial_size']))}) of data_grid.json: use the "
                    "spatial_size the model was trained with"
                )
            labels = np.rint(pred[1]).astype(np.int64)
            unknown = sorted(set(np.unique(labels).tolist()) - self.label_ids)
            if unknown:
                raise DataError(
                    f"sampled annotation has ids {unknown} outside the trained set {sorted(self.label_ids)}"
                )
            name = f"{self.prefix}_{int(d[self.sample_key]):04d}.nii.gz"
            image = to_range(pred[0], self.output_range)
            image_file = write_nifti(self.output_dir / IMAGES_DIR / name, image, self.grid["affine"])
            label_file = write_nifti(
                self.output_dir / LABELS_DIR / name, labels.astype(np.uint8), self.grid["affine"]
            )
            d["image_file"], d["label_file"] = str(image_file), str(label_file)
        return d


class PairDatalistWriter:
    """At the end of sampling, write ``output_dir/datalist.json`` listing every pair written by
    :class:`SavePaird` (from the engine's decollated output), paths relative to ``output_dir``, and
    its ``provenance``: ``trained_on`` (the real subjects that trained the generators, from the data
    grid's ``training_subjects``; None when unknown), the ``model_file`` sampled and whether it is the
    ``refined`` one.  Experiments refuse a datalist whose ``trained_on`` includes their test subjects.

    Args:
        output_dir: the sampling output folder.
        grid: the data grid record (its label names go into the datalist's ``labels``).
        modality: the datalist's ``modality``.
        model_file: the weights sampled (``models/model.pt`` or ``models/model_refined.pt``).
        refined: whether ``model_file`` holds the refined generators (paper's ACIS) or not (ACIS-).
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        grid: Mapping[str, Any],
        modality: str = "CT",
        model_file: str | os.PathLike | None = None,
        refined: bool = False,
    ) -> None:
        self.output_dir, self.grid, self.modality = Path(output_dir), grid, modality
        self.model_file, self.refined = model_file, bool(refined)
        self.entries: list[dict[str, Any]] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, lambda _: self.entries.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._record)
        engine.add_event_handler(Events.COMPLETED, self)

    def _record(self, engine: Engine) -> None:
        for batch, item in zip(engine.state.batch, engine.state.output, strict=True):
            if "image_file" not in item:
                raise ConfigError(
                    "PairDatalistWriter needs SavePaird in the postprocessing (no 'image_file')"
                )
            rel = {
                k: Path(item[f"{k}_file"]).relative_to(self.output_dir).as_posix() for k in ("image", "label")
            }
            seed = int(torch.as_tensor(batch["seed"]).reshape(-1)[0])
            self.entries.append({**rel, "subject": image_stem(rel["image"]), "seed": seed})

    def __call__(self, engine: Engine) -> None:
        names = {"0": "background", **{str(k): v for k, v in sorted(self.grid["label_names"].items())}}
        doc = {
            "name": "ACIS synthetic image-annotation pairs",
            "description": "sampled with configs/inference.json; one pair per seed",
            "modality": {"0": self.modality},
            "labels": names,
            "numTraining": len(self.entries),
            "provenance": {
                "trained_on": self.grid.get("training_subjects"),
                "model_file": None if self.model_file is None else str(Path(self.model_file).resolve()),
                "refined": self.refined,
            },
            "training": sorted(self.entries, key=lambda e: e["image"]),
        }
        write_json(self.output_dir / DATALIST, doc)


def sample_pairs(
    network: torch.nn.Module, seeds: Sequence[int], device: torch.device | str = "cpu"
) -> list[dict[str, torch.Tensor]]:
    """The pairs of ``seeds`` in memory: ``[{"pseudo_mask", "labels", "image"}]``, each (1, *S) on the CPU,
    the same as :mod:`inference.json` writes for those seeds."""
    net = unwrap(network)
    out = []
    with eval_mode(net), torch.no_grad():
        for seed in seeds:
            stages = net.synthesize(net.sample_latent(1, seed=int(seed), device=device))
            out.append({k: stages[k][0].cpu() for k in ("pseudo_mask", "labels", "image")})
    return out
