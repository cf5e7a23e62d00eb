"""Where the synthetic (ACIS) training data of the downstream experiments comes from.

The two ACIS arms of the tables (paper Tables 1 and 2) are

- ``acis_minus`` (the paper's ACIS-): the bundle trained (phases 1 and 2), not refined, sampled from
  ``models/model.pt``;
- ``acis``: the same training, then the registration network and the refinement of
  ``configs/refine.json`` (Sec. 2.3), sampled from the refined generators ``models/model_refined.pt``
  (``inference.json`` with ``--refined true``).

Each arm plugs in through one thing: a **datalist JSON of synthetic image-annotation pairs**,
``{"training": [{"image": ".../img.nii.gz", "label": ".../lbl.nii.gz"}, ...], "provenance":
{"trained_on": [subject, ...], ...}}`` (paths relative to the JSON's folder or absolute), the format the
ACIS sampling workflow writes.  ``provenance.trained_on`` lists the real subjects that trained the
generators; :func:`synthetic_arm_items` refuses a datalist that does not say, or whose subjects include
the experiment's test subjects (the synthetic pairs would carry the test anatomy into training).

A :class:`SyntheticSource` turns "the real training volumes of this cell" into such a datalist:

- :class:`DatalistSource`: datalists made beforehand (``{"datalist": {arm: path}}``, or one path for
  the ``acis`` arm); the same synthetic set is used for every training subset.
- :class:`ACISBundleSource`: the hook that runs the ACIS bundle itself, once per real training
  subset (one synthetic set per n, so that the synthesis model sees only the real volumes of that
  few-shot setting): :func:`run_acis_sampling` trains it with ``configs/train.json`` on a datalist of
  those volumes, for ``acis`` also trains the registration network and refines with
  ``configs/refine.json``, and samples K pairs with ``configs/inference.json``.  Both arms of one
  subset share the training, and sample the same seeds.  A folder that is not an ACIS bundle is a
  ``ConfigError`` that names the missing file, raised before any training starts.

:func:`synthetic_source` builds the source from the experiment configuration's ``synthetic`` entry:
``{"datalist": path or {arm: path}}`` or ``{"acis_bundle": folder, "num_samples": K,
"train_overrides": {...}, "refine_overrides": {...}, "inference_overrides": {...}}``.

Example:
    >>> synthetic_source({"acis_bundle": "/nonexistent/acis_tlobes", "num_samples": 4}).check(["acis"])
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
from anatosynth_components.experiments.mixed_batches import real_per_batch
from anatosynth_components.experiments.results_folder import ResultsFolder

SAMPLES_DATALIST = "datalist.json"

#: the ACIS arms of the downstream tables -> whether they sample the refined generators
ACIS_ARMS: dict[str, bool] = {"acis_minus": False, "acis": True}

#: a CPU-sized ACIS network for the experiments' demo scales.  The pseudo-mask generator has three x2
#: levels (latent 4 x 4 x 4 at 32^3): with one level (latent 16^3, the sizes of the bundle tests) its
#: receptive field holds no global anatomy and the samples were noise (label agreement 7 % Dice under
#: the baseline network, class intensity gap 0.35); see the README's ACIS evidence.
DEMO_ACIS_NET: dict[str, Any] = {
    "latent_channels": 8,
    "pm_channels": [64, 32, 16, 8],
    "annotation_channels": [16, 32],
    "image_channels": [16, 32],
}
#: the demo's critic, discriminator and training (iterations, the same for every n).  ``lr`` 1e-3 for the
#: small pix2pix generators (at the bundle's 2e-4 a [16, 32] UNet needs thousands of steps to leave the
#: sigmoid's 0.5 start: validation PSNR 9 dB after 500 iterations); phase 2 at 1e-4.
DEMO_ACIS_TRAINING: dict[str, Any] = {
    "critic_channels": 16,
    "disc_channels": 8,
    "lr": 0.001,
    "lr_phase2": 0.0001,
    "epoch_length": 100,
    "phase1_iterations": 2000,
    "phase2_iterations": 400,
}
#: the demo's registration network training and refinement (iterations)
DEMO_ACIS_REFINE: dict[str, Any] = {
    "registration_iterations": 200,
    "refine_iterations": 100,
}


def acis_synthetic(
    bundle: str, num_samples: int, spatial_size: list[int] | None = None, **train_overrides: Any
) -> dict[str, Any]:
    """The ``synthetic`` entry of an experiment scale that samples ``num_samples`` pairs from the ACIS
    bundle ``bundle``: with ``spatial_size``, the demo's CPU-sized network (:data:`DEMO_ACIS_NET`,
    :data:`DEMO_ACIS_TRAINING`, :data:`DEMO_ACIS_REFINE`) at that size, ``train_overrides`` added to
    its training; without it, the bundle's own settings (the paper scale).

    >>> acis_synthetic("acis_penet", 80)["train_overrides"]
    {}
    >>> acis_synthetic("acis_penet", 16, [32, 32], num_points=256)["train_overrides"]["num_points"]
    256
    """
    if spatial_size is None:
        train, refine, inference = dict(train_overrides), {}, {}
    else:
        inference = {**copy.deepcopy(DEMO_ACIS_NET), "spatial_size": list(spatial_size)}
        train = {**copy.deepcopy(inference), **train_overrides, **DEMO_ACIS_TRAINING}
        refine = dict(DEMO_ACIS_REFINE)
    return {
        "acis_bundle": bundle,
        "num_samples": num_samples,
        "train_overrides": train,
        "refine_overrides": refine,
        "inference_overrides": inference,
    }


class SyntheticSource(Protocol):
    """Gives the datalist of synthetic pairs of one ACIS arm for one real training subset."""

    #: True when the datalist depends on the real training subset (one per n), False when fixed.
    per_subset: bool

    def check(self, arms: list[str]) -> None:
        """Raise a clear error now if the source cannot deliver ``arms`` (called before any cell runs)."""

    def describe(self) -> dict[str, Any]:
        """What identifies the source, for the experiment's recorded configuration."""

    def datalist(self, arm: str, real_items: list[dict[str, Any]], tag: str, work_dir: Path) -> Path:
        """The datalist JSON of the ACIS ``arm``'s synthetic pairs for training with ``real_items``
        (cell group ``tag``)."""


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


def trained_on(path: str | Path) -> list[str]:
    """The real subjects that trained the generators of a synthetic datalist (``provenance.trained_on``).

    Raises:
        DataError: the datalist does not record them (made by an older sampler, or by hand: add
            ``"provenance": {"trained_on": [subject ids]}`` or sample again).
    """
    doc = json.loads(Path(path).read_text())
    subjects = (doc.get("provenance") or {}).get("trained_on") if isinstance(doc, dict) else None
    if not isinstance(subjects, list) or not all(isinstance(s, str) for s in subjects):
        raise DataError(
            f"{path}: the synthetic datalist does not record which real subjects trained its generator "
            '("provenance": {"trained_on": [...]}); without it the experiment cannot rule out that its '
            "test subjects were among them. Sample it again with this version's ACIS bundle (which "
            "records them), or add the list by hand"
        )
    return subjects


def check_no_leakage(path: str | Path, test_subjects: list[str]) -> list[str]:
    """``trained_on(path)``, after checking that none of ``test_subjects`` is among them.

    Raises:
        DataError: naming the datalist and the test subjects that trained its generator.
    """
    subjects = trained_on(path)
    overlap = sorted(set(subjects) & set(test_subjects))
    if overlap:
        raise DataError(
            f"{path}: its generator was trained on {len(overlap)} of this experiment's test subjects "
            f"({overlap[:5]}{' ...' if len(overlap) > 5 else ''}); synthetic pairs from it would carry the "
            "test anatomy into training. Train ACIS on the experiment's training subjects only (let the "
            "experiment run the ACIS bundle itself with --acis-bundle, or sample from a model trained "
            "without these subjects)"
        )
    return subjects


def outside_subset_lines(results: dict[str, dict[str, Any]], beyond: str) -> list[str]:
    """The note under a table whose cells used a synthetic datalist trained on real subjects outside
    their own real training set (``synthetic_source.trained_outside_subset``; a fixed datalist serving
    every cell); ``beyond`` names that training set ("the row's n real volumes").  ``[]`` otherwise."""
    outside = {
        k: len(v["synthetic_source"]["trained_outside_subset"])
        for k, v in results.items()
        if v.get("synthetic_source") and v["synthetic_source"]["trained_outside_subset"]
    }
    if not outside:
        return []
    return [
        "",
        f"Note: the synthetic datalist's generator was trained on real subjects outside {beyond} "
        f"({outside}): those cells see more real anatomy than that (a fixed datalist serves every cell; "
        "let the experiment train ACIS itself with --acis-bundle to avoid it).",
    ]


def synthetic_arm_items(
    source: SyntheticSource,
    arm: str,
    real_items: list[dict[str, Any]],
    test_subjects: list[str],
    tag: str,
    work_dir: Path,
    need_label: bool,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The synthetic items of the ACIS ``arm`` for the real training subset ``real_items`` (cell group
    ``tag``), checked for leakage, and a record of where they came from.

    Returns:
        ``(items, record)``: the items of :func:`read_synthetic_items`; ``record`` holds the
        ``datalist``, ``trained_on`` and ``trained_outside_subset`` (real subjects that trained the
        generator but are not in ``real_items``: non-empty only for a fixed datalist).

    Raises:
        ConfigError: ``arm`` is not an ACIS arm.
        DataError: the datalist does not record its training subjects, or they include
            ``test_subjects``.
    """
    if arm not in ACIS_ARMS:
        raise ConfigError(f"{arm!r} is not an ACIS arm; expected one of {list(ACIS_ARMS)}")
    path = source.datalist(arm, real_items, tag, work_dir)
    subjects = check_no_leakage(path, test_subjects)
    real = {str(it["subject"]) for it in real_items}
    record = {
        "datalist": str(Path(path).resolve()),
        "trained_on": subjects,
        "trained_outside_subset": sorted(set(subjects) - real),
    }
    return read_synthetic_items(path, need_label), record


@dataclass
class DatalistSource:
    """Fixed datalists of synthetic pairs (``{arm: path}``), used for every training subset."""

    paths: dict[str, Path]
    per_subset = False  # one synthetic set for every training subset

    def check(self, arms: list[str]) -> None:
        missing = [a for a in arms if a in ACIS_ARMS and a not in self.paths]
        if missing:
            raise ConfigError(
                f"synthetic.datalist gives no datalist for the arms {missing}: give "
                '{"acis_minus": path, "acis": path} (a single path serves the "acis" arm only), or leave '
                "those arms out (--set arms=[...])"
            )
        for arm, path in self.paths.items():
            if not Path(path).is_file():
                raise DataError(f"synthetic datalist {path} ({arm}): file not found")
            read_datalist(Path(path), key="training")
            trained_on(path)

    def describe(self) -> dict[str, Any]:
        return {
            arm: {"datalist": str(Path(p).resolve()), "sha256": file_sha256(p)}
            for arm, p in self.paths.items()
        }

    def datalist(self, arm: str, real_items: list[dict[str, Any]], tag: str, work_dir: Path) -> Path:
        return Path(self.paths[arm])


def acis_unavailable(bundle: Path) -> str | None:
    """Why the ACIS bundle cannot be run, or None when its train, refine and inference configs are there."""
    for name in ("train.json", "refine.json", "inference.json"):
        config = Path(bundle) / "configs" / name
        if not config.is_file():
            return (
                f"ACIS bundle not available: {config} is missing (not an ACIS bundle folder); "
                "give --acis-bundle bundles/acis_tlobes or bundles/acis_penet, datalists of synthetic "
                "pairs with --synthetic-datalist, or leave the ACIS arms out (--set arms=[...])"
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
    refined: bool = False,
    refine_overrides: dict[str, Any] | None = None,
) -> Path:
    """THE ACIS HOOK: train the ACIS bundle on ``real_datalist`` (and refine it when ``refined``) and
    sample ``num_samples`` pairs.

    Runs, with ``<output_dir>/bundle`` as the bundle root (so the repository's bundle folder stays
    clean and each training subset has its own model); each step is skipped when an earlier call
    finished it (its marker file, written after the step: the workflows write their weights every
    epoch, so a weights file alone does not mean a step ended):

    1. ``python -m monai.bundle run training --config_file <bundle>/configs/train.json
       --dataset_dir <real_datalist>`` (marker ``acis_trained.json``);
    2. with ``refined``: ``python -m monai.bundle run --config_file "['.../train.json',
       '.../refine.json']"``: the registration network, then the refinement, which writes
       ``models/model_refined.pt`` (marker ``acis_refined.json``);
    3. ``python -m monai.bundle run inferring --config_file <bundle>/configs/inference.json
       --num_samples K --refined <refined> --output_dir <output_dir>/samples[_refined]``;

    and returns ``<output_dir>/samples[_refined]/datalist.json``, the datalist the sampling workflow
    writes (``acis.PairDatalistWriter``: ``{"training": [{"image", "label"}, ...], "provenance":
    {"trained_on", "model_file", "refined"}}``, images in the bundle's ``output_range``, HU by
    default).  ``real_datalist`` is best made with :func:`acis_training_datalist`, so that the bundle
    trains on every real volume it is given.

    Raises:
        ConfigError: the bundle lacks one of its configs (ACIS not available).
        ExperimentError: a workflow failed (the message holds its log's tail).
        DataError: the sampling workflow wrote no datalist.
    """
    bundle, output_dir = Path(bundle).resolve(), Path(output_dir).resolve()
    reason = acis_unavailable(bundle)
    if reason:
        raise ConfigError(reason)
    root = output_dir / "bundle"
    samples = output_dir / ("samples_refined" if refined else "samples")
    train = {"dataset_dir": str(real_datalist), **(train_overrides or {})}
    configs = bundle / "configs"
    _once(
        output_dir / "acis_trained.json",
        "training",
        configs / "train.json",
        root,
        train,
        output_dir / "acis_train.log",
        progress,
        acis_epochs(configs / "train.json", train, ("phase1_iterations", "phase2_iterations")),
        f"ACIS {bundle.name}: train",
    )
    if refined:
        refine = {**train, **(refine_overrides or {})}
        _once(
            output_dir / "acis_refined.json",
            "run",
            json.dumps([str(configs / "train.json"), str(configs / "refine.json")]),
            root,
            refine,
            output_dir / "acis_refine.log",
            progress,
            acis_epochs(configs / "refine.json", refine, ("registration_iterations", "refine_iterations")),
            f"ACIS {bundle.name}: registration + refinement",
        )
    run_bundle(
        "inferring",
        configs / "inference.json",
        root,
        {
            "num_samples": num_samples,
            "output_dir": str(samples),
            "refined": refined,
            **(inference_overrides or {}),
        },
        output_dir / ("acis_sample_refined.log" if refined else "acis_sample.log"),
        progress=False,
    )
    datalist = samples / SAMPLES_DATALIST
    if not datalist.is_file():
        raise DataError(
            f"{datalist}: the ACIS sampling workflow wrote no datalist of synthetic pairs "
            f"(log: {output_dir / 'acis_sample.log'})"
        )
    return datalist


def _once(
    marker: Path,
    run_id: str,
    config_file: str | Path,
    root: Path,
    overrides: dict[str, Any],
    log: Path,
    progress: bool,
    total_epochs: int | None,
    desc: str,
) -> None:
    """Run a bundle workflow unless ``marker`` says an earlier call finished it; write the marker after."""
    if marker.is_file():
        return
    t0 = time.perf_counter()
    cmd = run_bundle(
        run_id, config_file, root, overrides, log, progress=progress, total_epochs=total_epochs, desc=desc
    )
    write_json(marker, {"command": cmd, "wall_s": round(time.perf_counter() - t0, 1)})


def acis_epochs(config_file: Path, overrides: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    """The epochs a workflow trains: the iterations of ``keys`` over ``epoch_length`` (the overrides,
    else the config file's values; None when the file has no such keys, for a plain counter)."""
    try:
        defaults = json.loads((config_file.parent / "train.json").read_text())
        defaults.update(json.loads(config_file.read_text()))
        value = {**defaults, **overrides}
        return sum(int(value[k]) for k in keys) // int(value["epoch_length"])
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError):
        return None


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
    """Synthetic pairs sampled by the ACIS bundle, trained (and refined, for ``acis``) on each real
    training subset."""

    bundle: Path
    num_samples: int
    train_overrides: dict[str, Any] | None = None
    inference_overrides: dict[str, Any] | None = None
    refine_overrides: dict[str, Any] | None = None
    progress: bool = False
    per_subset = True  # sampled anew for every real training subset

    def check(self, arms: list[str]) -> None:
        reason = acis_unavailable(self.bundle)
        if reason:
            raise ConfigError(reason)
        check_positive_int("synthetic.num_samples", self.num_samples)

    def describe(self) -> dict[str, Any]:
        return {
            "acis_bundle": str(Path(self.bundle).resolve()),
            "num_samples": self.num_samples,
            "train_overrides": self.train_overrides or {},
            "refine_overrides": self.refine_overrides or {},
            "inference_overrides": self.inference_overrides or {},
        }

    def datalist(self, arm: str, real_items: list[dict[str, Any]], tag: str, work_dir: Path) -> Path:
        refined = ACIS_ARMS[arm]
        out = Path(work_dir) / tag
        done = out / ("samples_refined" if refined else "samples") / SAMPLES_DATALIST
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
            refined=refined,
            refine_overrides=self.refine_overrides,
        )
        write_json(
            out / f"sampling_done_{arm}.json",
            {"wall_s": round(time.perf_counter() - t0, 1), "datalist": str(path)},
        )
        return path


def synthetic_source(spec: dict[str, Any] | None, progress: bool = False) -> SyntheticSource | None:
    """The source named by a configuration's ``synthetic`` entry (None: no synthetic data);
    ``progress`` shows the ACIS bundle's training epochs on a progress bar.

    Raises:
        ConfigError: both or neither of ``datalist`` and ``acis_bundle`` are given, or ``datalist``
            names an arm that is not an ACIS arm.
    """
    if spec is None:
        return None
    if not isinstance(spec, dict) or (spec.get("datalist") is None) == (spec.get("acis_bundle") is None):
        raise ConfigError(
            f"synthetic: give exactly one of 'datalist' or 'acis_bundle', got {json.dumps(spec)}"
        )
    if spec.get("datalist") is not None:
        given = spec["datalist"]
        paths = given if isinstance(given, dict) else {"acis": given}
        unknown = sorted(set(paths) - set(ACIS_ARMS))
        if unknown:
            raise ConfigError(
                f"synthetic.datalist: unknown arms {unknown}; expected some of {list(ACIS_ARMS)}"
            )
        return DatalistSource({arm: Path(p) for arm, p in paths.items()})
    return ACISBundleSource(
        Path(spec["acis_bundle"]),
        spec.get("num_samples", 0),
        spec.get("train_overrides"),
        spec.get("inference_overrides"),
        spec.get("refine_overrides"),
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


def synthetic_arms(config: dict[str, Any]) -> list[str]:
    """The ACIS arms among the configuration's ``arms``."""
    return [arm for arm in config["arms"] if arm in ACIS_ARMS]


def resolve_synthetic(config: dict[str, Any]) -> dict[str, Any]:
    """Check a downstream experiment's synthetic keys in place: ``arms`` holds ``baseline``, a
    known ``synthetic_intensity``, a valid ``real_synthetic_ratio``; ``synthetic`` is None without an
    ACIS arm, and an ACIS bundle given by name is a folder of the repository's ``bundles/``."""
    if "baseline" not in config["arms"]:
        raise ConfigError("arms must include 'baseline' (the p-values compare every arm with it)")
    if config["synthetic_intensity"] not in INTENSITIES:
        raise ConfigError(
            f"synthetic_intensity must be one of {INTENSITIES}, got {config['synthetic_intensity']!r}"
        )
    if not synthetic_arms(config):
        config["synthetic"] = None
        return config
    real_per_batch(config["batch_size"], config["real_synthetic_ratio"])
    if config["synthetic"] is not None and config["synthetic"].get("acis_bundle"):
        config["synthetic"]["acis_bundle"] = str(
            resolve_bundle(config["synthetic"]["acis_bundle"], "acis_bundle")
        )
    return config


def checked_source(config: dict[str, Any]) -> SyntheticSource | None:
    """The configuration's synthetic source, checked before any cell runs, and recorded in
    ``config["synthetic_source"]`` (with the datalists' SHA-256, so a changed file is a changed
    configuration)."""
    arms = synthetic_arms(config)
    if not arms:
        return None
    source = synthetic_source(config["synthetic"])
    if source is None:
        raise ConfigError(f"the arms {arms} need a synthetic source: --synthetic-datalist or --acis-bundle")
    source.check(arms)
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
