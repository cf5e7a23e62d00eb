"""Where the synthetic (ACIS) training data of the downstream experiments comes from.

The ACIS arm plugs in through one thing: a **datalist JSON of synthetic image-annotation pairs**,
``{"training": [{"image": ".../img.nii.gz", "label": ".../lbl.nii.gz"}, ...]}`` (paths relative to
the JSON's folder or absolute), the format the ACIS sampling workflow writes.  Images are 3-D
volumes for segmentation and 2-D slices or 3-D volumes for reconstruction; the label is required
for segmentation and not used for reconstruction.

A :class:`SyntheticSource` turns "the real training volumes of this cell" into such a datalist:

- :class:`DatalistSource`: a datalist made beforehand; the same synthetic set is used for every
  training subset (``--synthetic-datalist``).
- :class:`ACISBundleSource`: the hook that runs the ACIS bundle itself, once per real training
  subset (so that the synthesis model sees only the real volumes of that few-shot setting):
  :func:`run_acis_sampling` trains it with ``configs/train.json`` on a datalist of those volumes
  and samples K pairs with ``python -m monai.bundle run inferring --config_file
  <bundle>/configs/inference.json --num_samples K --output_dir ...``.  A folder that is not an
  ACIS bundle (its ``configs/train.json`` or ``configs/inference.json`` missing) is a
  ``ConfigError`` that names the file, raised before any training starts.

:func:`synthetic_source` builds the source from the experiment configuration's ``synthetic`` entry:
``{"datalist": path}`` or ``{"acis_bundle": folder, "num_samples": K}``.

Example:
    >>> synthetic_source({"acis_bundle": "/nonexistent/acis_tlobes", "num_samples": 4}).check()
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    anatosynth_components.errors.ConfigError: ACIS bundle not available: /nonexistent/acis_tlobes/configs/...
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from anatosynth_components.atomic import write_json, write_nifti
from anatosynth_components.checks import check_positive_int
from anatosynth_components.data.datalist import read_datalist
from anatosynth_components.data.load_volume import LoadVolumed
from anatosynth_components.data.penet import STUDY_SEP
from anatosynth_components.errors import ConfigError, DataError
from anatosynth_components.experiments.bundle_runner import resolve_bundle, run_bundle
from anatosynth_components.experiments.cells import Cell, run_grid
from anatosynth_components.experiments.results_folder import ResultsFolder

SAMPLES_DATALIST = "datalist.json"

#: a CPU-sized ACIS network (the sizes of tests/test_bundle_acis.py) for the experiments' demo scales
DEMO_ACIS_NET: dict[str, Any] = {
    "latent_channels": 4,
    "pm_channels": [16, 8],
    "annotation_channels": [8, 16],
    "image_channels": [8, 16],
}
#: the demo's narrow critic and discriminator and its short training
DEMO_ACIS_TRAINING: dict[str, Any] = {
    "critic_channels": 8,
    "disc_channels": 8,
    "phase1_epochs": 20,
    "phase2_epochs": 10,
}


def acis_synthetic(
    bundle: str, num_samples: int, spatial_size: list[int] | None = None, **train_overrides: Any
) -> dict[str, Any]:
    """The ``synthetic`` entry of an experiment scale that samples ``num_samples`` pairs from the ACIS
    bundle ``bundle``: with ``spatial_size``, the demo's CPU-sized network (:data:`DEMO_ACIS_NET`,
    :data:`DEMO_ACIS_TRAINING`) at that size, ``train_overrides`` added to its training; without it,
    the bundle's own settings (the paper scale).

    >>> acis_synthetic("acis_penet", 80)
    {'acis_bundle': 'acis_penet', 'num_samples': 80, 'train_overrides': {}, 'inference_overrides': {}}
    >>> acis_synthetic("acis_penet", 16, [32, 32], num_points=256)["train_overrides"]["num_points"]
    256
    """
    if spatial_size is None:
        train, inference = dict(train_overrides), {}
    else:
        inference = {**copy.deepcopy(DEMO_ACIS_NET), "spatial_size": list(spatial_size)}
        train = {**copy.deepcopy(inference), **train_overrides, **DEMO_ACIS_TRAINING}
    return {
        "acis_bundle": bundle,
        "num_samples": num_samples,
        "train_overrides": train,
        "inference_overrides": inference,
    }


class SyntheticSource(Protocol):
    """Gives the datalist of synthetic pairs for one real training subset."""

    #: True when the datalist depends on the real training subset (one per n), False when fixed.
    per_subset: bool

    def check(self) -> None:
        """Raise a clear error now if the source cannot deliver (called before any cell runs)."""

    def describe(self) -> dict[str, Any]:
        """What identifies the source, for the experiment's recorded configuration."""

    def datalist(self, real_items: list[dict[str, Any]], tag: str, work_dir: Path) -> Path:
        """The datalist JSON of synthetic pairs for training with ``real_items`` (cell group ``tag``)."""


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_synthetic_items(path: str | Path, need_label: bool) -> list[dict[str, Any]]:
    """The ``training`` items of a synthetic datalist, with absolute paths (files checked to exist).

    Raises:
        DataError: the datalist is missing, malformed, names missing files, or (``need_label``) an
            entry has no ``label``.
    """
    index = read_datalist(Path(path), key="training")
    if need_label:
        missing = [it["image"] for it in index.items if "label" not in it]
        if missing:
            raise DataError(
                f"{path}: synthetic entries without a 'label' (segmentation needs the annotation): "
                f"{missing[:3]}"
            )
    return [{**it, "subject": f"synthetic:{it['subject']}", "synthetic": True} for it in index.items]


@dataclass
class DatalistSource:
    """A fixed datalist of synthetic pairs, used for every training subset."""

    path: Path
    per_subset = False  # one synthetic set for every training subset

    def check(self) -> None:
        if not Path(self.path).is_file():
            raise DataError(f"synthetic datalist {self.path}: file not found")
        read_datalist(Path(self.path), key="training")

    def describe(self) -> dict[str, Any]:
        return {"datalist": str(Path(self.path).resolve()), "sha256": file_sha256(self.path)}

    def datalist(self, real_items: list[dict[str, Any]], tag: str, work_dir: Path) -> Path:
        return Path(self.path)


def acis_unavailable(bundle: Path) -> str | None:
    """Why the ACIS bundle cannot be run, or None when its train and inference configs are there."""
    for name in ("train.json", "inference.json"):
        config = Path(bundle) / "configs" / name
        if not config.is_file():
            return (
                f"ACIS bundle not available: {config} is missing (not an ACIS bundle folder); "
                "give --acis-bundle bundles/acis_tlobes or bundles/acis_penet, a datalist of synthetic "
                "pairs with --synthetic-datalist, or leave the synthetic arm out (--set arms=[...])"
            )
    return None


def run_acis_sampling(
    bundle: str | Path,
    real_datalist: str | Path,
    num_samples: int,
    output_dir: str | Path,
    train_overrides: dict[str, Any] | None = None,
    inference_overrides: dict[str, Any] | None = None,
    progress: bool = False,
) -> Path:
    """THE ACIS HOOK: train the ACIS bundle on ``real_datalist`` and sample ``num_samples`` pairs.

    Runs, with ``<output_dir>/bundle`` as the bundle root (so the repository's bundle folder stays
    clean and each training subset has its own model):

    1. ``python -m monai.bundle run training --config_file <bundle>/configs/train.json
       --dataset_dir <real_datalist>`` (skipped when an earlier call finished it: the marker
       ``<output_dir>/acis_trained.json``; the bundle writes ``models/model.pt`` every epoch, so
       that file alone does not mean training ended);
    2. ``python -m monai.bundle run inferring --config_file <bundle>/configs/inference.json
       --num_samples K --output_dir <output_dir>/samples``;

    and returns ``<output_dir>/samples/datalist.json``, the datalist the sampling workflow writes
    (``acis.PairDatalistWriter``: ``{"training": [{"image", "label"}, ...]}``, images in the
    bundle's ``output_range``, HU by default).  ``real_datalist`` is best made with
    :func:`acis_training_datalist`, so that the bundle trains on every real volume it is given.

    Raises:
        ConfigError: the bundle has no ``configs/inference.json`` (ACIS not available yet).
        ExperimentError: a workflow failed (the message holds its log's tail).
        DataError: the sampling workflow wrote no datalist.
    """
    bundle, output_dir = Path(bundle).resolve(), Path(output_dir).resolve()
    reason = acis_unavailable(bundle)
    if reason:
        raise ConfigError(reason)
    root, samples = output_dir / "bundle", output_dir / "samples"
    marker = output_dir / "acis_trained.json"
    if not marker.is_file():
        t0 = time.perf_counter()
        overrides = {"dataset_dir": str(real_datalist), **(train_overrides or {})}
        cmd = run_bundle(
            "training",
            bundle / "configs" / "train.json",
            root,
            overrides,
            output_dir / "acis_train.log",
            progress=progress,
            total_epochs=acis_epochs(bundle, overrides),
            desc=f"ACIS {bundle.name}: train",
        )
        write_json(marker, {"command": cmd, "wall_s": round(time.perf_counter() - t0, 1)})
    run_bundle(
        "inferring",
        bundle / "configs" / "inference.json",
        root,
        {"num_samples": num_samples, "output_dir": str(samples), **(inference_overrides or {})},
        output_dir / "acis_sample.log",
        progress=False,
    )
    datalist = samples / SAMPLES_DATALIST
    if not datalist.is_file():
        raise DataError(
            f"{datalist}: the ACIS sampling workflow wrote no datalist of synthetic pairs "
            f"(log: {output_dir / 'acis_sample.log'})"
        )
    return datalist


def acis_epochs(bundle: Path, overrides: dict[str, Any]) -> int | None:
    """Phase 1 + phase 2 epochs of an ACIS training run (the overrides, else the bundle's train.json)."""
    try:
        defaults = json.loads((Path(bundle) / "configs" / "train.json").read_text())
        return sum(int(overrides.get(k, defaults[k])) for k in ("phase1_epochs", "phase2_epochs"))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a bundle of another shape: a plain counter


def acis_training_datalist(real_items: list[dict[str, Any]], path: Path, export_dir: Path, tag: str) -> Path:
    """The datalist the ACIS bundle trains on: every one of ``real_items`` in its ``training`` split.

    Without a ``split`` on every item the bundle would draw its own 70/15/15 split and train on
    only 70 % of the few real volumes (2 of 4).  Here each entry carries ``"split": "training"``
    (the bundle's ``split_subjects`` then takes the split as given), plus one ``"validation"``
    entry that re-reads the first real volume under another subject id: the bundle's validation
    pass only logs PSNR / SSIM / Dice (it selects no model), and this keeps it from needing a
    real volume outside the few-shot subset.  No ``test`` entry: the bundle does not use one.
    """
    entries = datalist_entries(real_items, export_dir)
    if not entries:
        raise DataError(f"{tag}: no real training volume to train the ACIS bundle on")
    training = [{**e, "split": "training"} for e in entries]
    validation = {**entries[0], "subject": f"{entries[0]['subject']}~validation", "split": "validation"}
    return write_json(
        path, {"name": f"real training subset {tag} (ACIS)", "training": [*training, validation]}
    )


def datalist_entries(items: list[dict[str, Any]], export_dir: Path) -> list[dict[str, Any]]:
    """Datalist entries (image, label, subject) of real items, for the ACIS bundle's ``dataset_dir``.

    Items a datalist cannot address, PENet studies (``<dir>/data.hdf5::<study>``), are exported
    once to NIfTI under ``export_dir`` (as loaded: HU, with the reader's affine).
    """
    entries = []
    for item in items:
        entry = {k: v for k, v in item.items() if k in ("image", "label", "subject")}
        for key in ("image", "label"):
            if key in entry and STUDY_SEP in str(entry[key]):
                target = export_dir / key / f"{item['subject']}.nii.gz"
                if not target.is_file():
                    volume = LoadVolumed(key)({key: entry[key]})[key]
                    write_nifti(target, np.asarray(volume[0]).astype(np.int16), np.asarray(volume.affine))
                entry[key] = str(target)
        entries.append(entry)
    return entries


@dataclass
class ACISBundleSource:
    """Synthetic pairs sampled by the ACIS bundle, trained on each real training subset."""

    bundle: Path
    num_samples: int
    train_overrides: dict[str, Any] | None = None
    inference_overrides: dict[str, Any] | None = None
    progress: bool = False
    per_subset = True  # sampled anew for every real training subset

    def check(self) -> None:
        reason = acis_unavailable(self.bundle)
        if reason:
            raise ConfigError(reason)
        check_positive_int("synthetic.num_samples", self.num_samples)

    def describe(self) -> dict[str, Any]:
        return {
            "acis_bundle": str(Path(self.bundle).resolve()),
            "num_samples": self.num_samples,
            "train_overrides": self.train_overrides or {},
            "inference_overrides": self.inference_overrides or {},
        }

    def datalist(self, real_items: list[dict[str, Any]], tag: str, work_dir: Path) -> Path:
        out = Path(work_dir) / tag
        done = out / "samples" / SAMPLES_DATALIST
        if done.is_file():
            return done
        real = acis_training_datalist(real_items, out / "real_training.json", out / "real", tag)
        t0 = time.perf_counter()
        path = run_acis_sampling(
            self.bundle,
            real,
            self.num_samples,
            out,
            self.train_overrides,
            self.inference_overrides,
            progress=self.progress,
        )
        write_json(
            out / "sampling_done.json", {"wall_s": round(time.perf_counter() - t0, 1), "datalist": str(path)}
        )
        return path


def synthetic_source(spec: dict[str, Any] | None, progress: bool = False) -> SyntheticSource | None:
    """The source named by a configuration's ``synthetic`` entry (None: no synthetic data);
    ``progress`` shows the ACIS bundle's training epochs on a progress bar.

    Raises:
        ConfigError: both or neither of ``datalist`` and ``acis_bundle`` are given.
    """
    if spec is None:
        return None
    if not isinstance(spec, dict) or (spec.get("datalist") is None) == (spec.get("acis_bundle") is None):
        raise ConfigError(
            f"synthetic: give exactly one of 'datalist' or 'acis_bundle', got {json.dumps(spec)}"
        )
    if spec.get("datalist") is not None:
        return DatalistSource(Path(spec["datalist"]))
    return ACISBundleSource(
        Path(spec["acis_bundle"]),
        spec.get("num_samples", 0),
        spec.get("train_overrides"),
        spec.get("inference_overrides"),
        progress,
    )


INTENSITIES = ("chest", "unit")


def check_unit_range(image: torch.Tensor, where: str) -> torch.Tensor:
    """A synthetic image declared to be in [0, 1] (``synthetic_intensity`` "unit"), clipped to it.

    Raises:
        DataError: its values leave [-0.01, 1.01] (e.g. Hounsfield units), naming the file.
    """
    low, high = float(image.min()), float(image.max())
    if low < -0.01 or high > 1.01:
        raise DataError(
            f"{where}: synthetic image values span [{low:.3g}, {high:.3g}], not [0, 1]; set "
            "synthetic_intensity to 'chest' if the sampler writes Hounsfield units"
        )
    return image.clamp(0, 1)


def resolve_synthetic(config: dict[str, Any]) -> dict[str, Any]:
    """Check a downstream experiment's synthetic keys in place: ``arms`` holds ``baseline``, a
    known ``synthetic_intensity``; ``synthetic`` is None without the synthetic arm, and an ACIS
    bundle given by name is a folder of the repository's ``bundles/``."""
    if "baseline" not in config["arms"]:
        raise ConfigError("arms must include 'baseline' (the p-values compare every arm with it)")
    if config["synthetic_intensity"] not in INTENSITIES:
        raise ConfigError(
            f"synthetic_intensity must be one of {INTENSITIES}, got {config['synthetic_intensity']!r}"
        )
    if "synthetic" not in config["arms"]:
        config["synthetic"] = None
    elif config["synthetic"] is not None and config["synthetic"].get("acis_bundle"):
        config["synthetic"]["acis_bundle"] = str(
            resolve_bundle(config["synthetic"]["acis_bundle"], "acis_bundle")
        )
    return config


def checked_source(config: dict[str, Any]) -> SyntheticSource | None:
    """The configuration's synthetic source, checked before any cell runs, and recorded in
    ``config["synthetic_source"]`` (with the datalist's SHA-256, so a changed file is a changed
    configuration)."""
    if "synthetic" not in config["arms"]:
        return None
    source = synthetic_source(config["synthetic"])
    if source is None:
        raise ConfigError("the synthetic arm needs a synthetic source: --synthetic-datalist or --acis-bundle")
    source.check()
    config["synthetic_source"] = source.describe()
    return source


class DownstreamExperiment(Protocol):
    """The data of one run of a downstream experiment, shared by its cells."""

    def cells(self) -> list[Cell]: ...

    def compute(self, cell: Cell) -> dict[str, Any]: ...

    def outputs(self, results: dict[str, dict[str, Any]]) -> dict[str, Any]: ...


def run_downstream(
    name: str,
    config: dict[str, Any],
    out: str | Path,
    overwrite: bool,
    progress: bool,
    experiment: Callable[[dict[str, Any], ResultsFolder, bool], DownstreamExperiment],
) -> dict[str, Any]:
    """Run (or resume) a downstream experiment (segmentation, reconstruction) with its resolved
    ``config`` in ``out``: the synthetic source is checked before any cell runs, then the grid of
    ``experiment(config, folder, progress)`` runs; returns the ``results.json`` document."""
    checked_source(config)
    folder = ResultsFolder.open(out, name, config, overwrite=overwrite)
    exp = experiment(config, folder, progress)
    return run_grid(folder, exp.cells(), exp.compute, exp.outputs, name, progress)
