"""The evaluation report of a synthesis model: per-subject metrics, mean / std, baselines, a montage.

:class:`SynthesisReport` is an Ignite handler for a MONAI evaluator (``SupervisedEvaluator``) whose
metric handlers were attached with ``save_details=True``: MONAI then leaves each metric's
per-volume values in ``engine.state.metric_details[name]``, in the order the volumes ran (and
all-gathered over ranks under DDP). The report pairs them with the subject ids of the batches and,
when the run completes, writes into ``output_dir`` (atomically):

- ``metrics.csv``: a ``subject`` column and one column per metric; one row per subject, then one
  row per summary op (``mean``, ``std``). Non-finite values are written ``inf`` / ``nan``.
- ``metrics.json``: ``{"per_subject": {subject: {metric: value}}, "summary": {metric: {op: value}},
  "baselines": {baseline: {"per_subject": .., "summary": .., "definition": text}},
  "unavailable": {metric: reason}, "definitions": {metric: text}, "slice_axis": .., "subjects": [..]}``.
  JSON has no infinity, so non-finite values are the strings ``"inf"``, ``"-inf"``, ``"nan"``.
- ``metrics_<baseline>.csv``: each baseline's table, as ``metrics.csv``.
- ``montage.png``: for the first ``montage_subjects`` volumes (of rank 0), one slice along
  ``slice_axis`` (the middle one of the slices that hold anatomy) of the label map (coloured) | the
  real image | the synthetic image | each baseline, on the same [0, 1] grey scale (no per-panel
  contrast stretch, so intensity differences and blur stay visible); a first row at the network's
  resolution (what the metrics score) and, when the source grid is known, a second at the native
  resolution (see :meth:`SynthesisReport._native_row`).
- ``volumes/`` (``save_volumes=True``): each subject's label map, real, synthetic and baseline
  volumes as NIfTI (``<subject>_labels.nii.gz``, ``_real``, ``_synthetic``, ``_<baseline>``), the
  arrays the metrics scored, at the network's resolution, with their affine.

It also logs a table (mean +- std per metric, the model and each baseline side by side) and one line
per metric that could not be computed, such as ``LPIPS unavailable: <reason>`` (pass the reasons as
``unavailable``, for example from :func:`anatosynth_components.metrics.unavailable_metrics`).

Baselines. A baseline (such as ``label_mean``, :mod:`~anatosynth_components.anatomask.label_mean`) is
an image the evaluator's postprocessing puts in each output item under the baseline's name, scored
by copies of the model's metric handlers named ``"<baseline>/<metric>"``
(:func:`~anatosynth_components.metrics.baseline_metric_handlers`). The report requires every
reported metric for every baseline, so the baseline row is never partial.

``std`` is the population standard deviation (``numpy.nanstd``, ddof 0), as in MONAI's
``MetricsSaver``; NaN values are ignored by every summary op.

Why not MONAI's ``MetricsSaver``: it writes one file per metric (``<name>_raw.csv``,
``<name>_summary.csv``) keyed by image file names from the metadata, writes in place (not
atomically), and has no place for subject ids, unavailable metrics, definitions, baselines or a
montage. The report keeps its approach (``metric_details`` plus ``string_list_all_gather`` of the
ids, rank 0 writes) in one table.

Data convention (after decollation, MONAI keys): ``engine.state.output`` is a list of per-volume
dicts with ``"image"`` the input label map (1, X, Y, Z) of integer ids stored as float, ``"label"``
the real image (1, X, Y, Z) in [0, 1], ``"pred"`` the synthetic image (1, X, Y, Z) and one key per
baseline; ``engine.state.batch`` is a list of dicts with a ``"subject"`` string each.

Example:
    >>> report = SynthesisReport("eval", metric_names=["psnr", "ssim", "coherence"],
    ...                          unavailable={"lpips": "no AlexNet weights"}, baselines=["label_mean"])
    >>> report.summary_ops
    ('mean', 'std')
    >>> # report.attach(evaluator); evaluator.run()  -> eval/metrics.csv, metrics.json, montage.png
"""

from __future__ import annotations

import csv
import io
import logging
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from ignite.engine import Engine, Events
from monai.transforms import Resize
from monai.utils import string_list_all_gather

from anatosynth_components.atomic import atomic_path, write_json, write_nifti
from anatosynth_components.checks import check_positive_int, check_spatial_axis
from anatosynth_components.errors import ConfigError, DataError
from anatosynth_components.handlers.report_items import engine_items, json_number
from anatosynth_components.metrics.definitions import BASELINE_DEFINITIONS, METRIC_DEFINITIONS
from anatosynth_components.metrics.label_map_handler import baseline_metric_name
from anatosynth_components.visualize import overlay, save_montage

SUMMARY_OPS: dict[str, Callable[[np.ndarray], float]] = {
    "mean": np.nanmean,
    "std": np.nanstd,
    "median": np.nanmedian,
    "min": np.nanmin,
    "max": np.nanmax,
}
_AXIS_NAMES = ("x", "y", "z")


def display_name(metric: str) -> str:
    """How a metric is named in the log: ``"lpips"`` -> ``"LPIPS"``, ``"st_lpips"`` -> ``"ST-LPIPS"``.

    >>> display_name("st_lpips")
    'ST-LPIPS'
    """
    return metric.upper().replace("_", "-")


def _volume(volume: Any, what: str = "volume") -> np.ndarray:
    """A (1, X, Y, Z) volume as a float32 numpy (X, Y, Z)."""
    array = torch.as_tensor(volume).detach().float().cpu().numpy()
    if array.ndim != 4:
        raise DataError(
            f"SynthesisReport: expected a (1, X, Y, Z) {what} per subject, got shape {array.shape}"
        )
    return array[0]


def montage_slice(label_map: np.ndarray, slice_axis: int) -> int:
    """The slice the montage shows: the middle one of the slices along ``slice_axis`` whose label map
    (X, Y, Z) holds foreground, else the middle slice.

    >>> labels = np.zeros((2, 2, 10)); labels[..., 6:9] = 1
    >>> montage_slice(labels, 2)
    7
    """
    other = tuple(a for a in range(3) if a != slice_axis)
    foreground = np.flatnonzero(np.any(label_map != 0, axis=other))
    if len(foreground) == 0:
        return label_map.shape[slice_axis] // 2
    return int(foreground[len(foreground) // 2])


def _resize_slice(image: np.ndarray, shape: Sequence[int], labels: bool = False) -> np.ndarray:
    """Resize a 2-D slice to ``shape``: nearest for label maps; for images bilinear with anti-aliasing,
    as ``ResizeToSourced`` brings the inference output back to the source grid."""
    if tuple(image.shape) == tuple(shape):
        return image
    if labels:
        resize = Resize(tuple(int(s) for s in shape), mode="nearest")
    else:
        resize = Resize(tuple(int(s) for s in shape), mode="bilinear", anti_aliasing=True)
    with resize.trace_transform(False):
        out = resize(torch.as_tensor(np.ascontiguousarray(image), dtype=torch.float32)[None])
    return torch.as_tensor(out).numpy()[0]


def _affine(volume: Any) -> np.ndarray:
    affine = getattr(volume, "affine", None)
    return np.eye(4) if affine is None else np.asarray(torch.as_tensor(affine).cpu(), dtype=np.float64)


class SynthesisReport:
    """Write per-subject and summary metrics (CSV, JSON) of the model and its baselines, a montage
    PNG and a log table at the end of an evaluation run, and optionally the volumes as NIfTI.

    Args:
        output_dir: folder for ``metrics.csv``, ``metrics.json`` and ``montage.png`` (created).
        metric_names: the metrics to report, in this column order; names of metric handlers attached
            with ``save_details=True``. Default: every name in ``engine.state.metric_details`` that
            is not a baseline's (``"<baseline>/<metric>"``).
        slice_axis: the spatial axis (0, 1 or 2) of (X, Y, Z) the slices were synthesised along;
            the montage shows a slice along it.
        montage_subjects: how many volumes (the first ones run, on rank 0) the montage shows; 0 for
            no montage.
        unavailable: ``{metric: reason}`` for metrics that could not be computed here; logged as
            ``"<METRIC> unavailable: <reason>"`` and written to the JSON.
        summary_ops: summary rows, from ``"mean"``, ``"std"``, ``"median"``, ``"min"``, ``"max"``.
        definitions: ``{metric: text}`` written to the JSON; default
            :data:`~anatosynth_components.metrics.METRIC_DEFINITIONS`.
        baselines: names of the baselines to report (e.g. ``["label_mean"]``): each is an image under
            that key of the engine output, scored by metric handlers named ``"<baseline>/<metric>"``
            for every reported metric.
        save_volumes: write each subject's label map, real, synthetic and baseline volumes to
            ``output_dir/volumes`` as NIfTI (float32 images, int16 labels; atomic writes).
        native_transform: for the montage's native-resolution row: the evaluation's volume
            transforms without the resize to the network's slice size (a callable taking a datalist
            entry ``{"image": real image file, "label": label map file}``, the files named by the
            ``filename_or_obj`` metadata of the output's volumes). Without it, or when the files are
            unknown, the native row shows the network-resolution slices resized back to the source's
            in-plane shape (``spatial_shape`` metadata), and no native row when that is unknown too.
        image_key, label_key, pred_key: keys of the label map, real and synthetic volumes in the
            engine output.
        subject_key: key of the subject id in the engine batch.
        name: logger name; default this module's.

    Raises:
        ConfigError: bad ``slice_axis``, ``montage_subjects`` or ``summary_ops``, or a metric both
            reported and unavailable.

    After the run, :attr:`results` holds what ``metrics.json`` holds (with float values).
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        metric_names: Sequence[str] | None = None,
        slice_axis: int = 2,
        montage_subjects: int = 4,
        unavailable: Mapping[str, str] | None = None,
        summary_ops: Sequence[str] = ("mean", "std"),
        definitions: Mapping[str, str] | None = None,
        baselines: Sequence[str] = (),
        save_volumes: bool = False,
        native_transform: Callable[[dict[str, Any]], Mapping[str, Any]] | None = None,
        image_key: str = "image",
        label_key: str = "label",
        pred_key: str = "pred",
        subject_key: str = "subject",
        name: str | None = None,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.metric_names = list(metric_names) if metric_names is not None else None
        self.slice_axis = check_spatial_axis(slice_axis, "slice_axis")
        self.montage_subjects = check_positive_int("montage_subjects", montage_subjects, minimum=0)
        self.unavailable = dict(unavailable or {})
        self.summary_ops = tuple(summary_ops)
        bad_ops = [op for op in self.summary_ops if op not in SUMMARY_OPS]
        if bad_ops or not self.summary_ops:
            raise ConfigError(
                f"summary_ops must be a non-empty subset of {list(SUMMARY_OPS)}, got {summary_ops!r}"
            )
        self._check_overlap(self.metric_names or [])
        self.definitions = dict(METRIC_DEFINITIONS if definitions is None else definitions)
        if isinstance(baselines, str):
            baselines = [baselines]
        self.baselines = list(baselines)
        clash = sorted(set(self.baselines) & {image_key, label_key, pred_key})
        if clash or len(set(self.baselines)) != len(self.baselines):
            raise ConfigError(
                f"baselines must be distinct names other than the engine's keys, got {baselines!r}"
            )
        self.save_volumes = bool(save_volumes)
        self.native_transform = native_transform
        self.image_key, self.label_key, self.pred_key = image_key, label_key, pred_key
        self.subject_key = subject_key
        self.logger = logging.getLogger(name or __name__)
        self.results: dict[str, Any] = {}
        self._subjects: list[str] = []
        self._montage: list[dict[str, Any]] = []
        self._native_warned = False

    def _check_overlap(self, names: Sequence[str]) -> None:
        both = sorted(set(names) & set(self.unavailable))
        if both:
            raise ConfigError(f"metrics {both} are both reported (metric_names) and listed as unavailable")

    def attach(self, engine: Engine) -> None:
        """Reset at every epoch start, record every iteration, report when the run completes."""
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._record)
        engine.add_event_handler(Events.COMPLETED, self)

    def _reset(self, engine: Engine) -> None:
        self._subjects, self._montage = [], []

    def _record(self, engine: Engine) -> None:
        """Keep the subject ids of this iteration and the montage slices of the first volumes; write
        the volumes when asked."""
        batch = engine_items(engine.state.batch, "batch", "SynthesisReport")
        subjects = []
        for item in batch:
            if self.subject_key not in item:
                raise DataError(
                    f"SynthesisReport: a batch item has no {self.subject_key!r} key (keys: {sorted(item)}); "
                    "every datalist entry needs a subject id"
                )
            subjects.append(str(item[self.subject_key]))
        self._subjects.extend(subjects)
        if len(self._montage) >= self.montage_subjects and not self.save_volumes:
            return
        outputs = engine_items(engine.state.output, "output", "SynthesisReport")
        for subject, out in zip(subjects, outputs, strict=False):
            keys = (self.image_key, self.label_key, self.pred_key, *self.baselines)
            missing = [k for k in keys if k not in out]
            if missing:
                raise DataError(
                    f"SynthesisReport: the engine output lacks {missing} (keys: {sorted(out)}); a baseline "
                    "image comes from the evaluator's postprocessing (LabelMeanImaged)"
                )
            if self.save_volumes:
                self._write_volumes(subject, out)
            if len(self._montage) < self.montage_subjects:
                self._montage.append(self._montage_entry(subject, out))

    # ---- volumes and montage -------------------------------------------------------------------

    def _write_volumes(self, subject: str, out: Mapping[str, Any]) -> None:
        folder = self.output_dir / "volumes"
        stem = subject.replace(os.sep, "_")
        affine = _affine(out[self.label_key])
        labels = np.rint(_volume(out[self.image_key], "label map")).astype(np.int16)
        write_nifti(folder / f"{stem}_labels.nii.gz", labels, affine)
        named = {"real": self.label_key, "synthetic": self.pred_key, **{b: b for b in self.baselines}}
        for suffix, key in named.items():
            write_nifti(folder / f"{stem}_{suffix}.nii.gz", _volume(out[key], key).astype(np.float32), affine)

    def _columns(self) -> list[str]:
        return ["synthetic", *self.baselines]

    def _montage_entry(self, subject: str, out: Mapping[str, Any]) -> dict[str, Any]:
        labels = np.rint(_volume(out[self.image_key], "label map"))
        k = montage_slice(labels, self.slice_axis)
        volumes = {"labels": labels, "real": _volume(out[self.label_key], "real image")}
        volumes["synthetic"] = _volume(out[self.pred_key], "synthetic image")
        volumes.update({b: _volume(out[b], b) for b in self.baselines})
        network = {key: np.take(v, k, axis=self.slice_axis) for key, v in volumes.items()}
        return {
            "subject": subject,
            "index": k,
            "network": network,
            "native": self._native_row(out, k, network),
        }

    def _native_row(self, out: Mapping[str, Any], k: int, network: dict[str, np.ndarray]) -> dict | None:
        """The montage slices at the native resolution (the source files' grid).

        The label map and the real image come from the source files through ``native_transform``
        (the evaluation's transforms without the resize), so they are the true native slices; the
        synthetic and baseline slices, made at the network's resolution, are resized to that in-plane
        shape (bilinear with anti-aliasing), as inference brings its output back to the source grid.
        Without ``native_transform`` every panel is the network slice resized back to the source's
        in-plane shape (``spatial_shape`` metadata): labelled "resized to source".
        """
        real, labels = out[self.label_key], out[self.image_key]
        in_plane = [a for a in range(3) if a != self.slice_axis]
        row: dict[str, Any] | None = None
        files = {
            "image": getattr(real, "meta", {}).get("filename_or_obj"),
            "label": getattr(labels, "meta", {}).get("filename_or_obj"),
        }
        if self.native_transform is not None and all(isinstance(f, str) and f for f in files.values()):
            try:
                source = self.native_transform(dict(files))
                real_n, labels_n = _volume(source["image"], "real image"), np.rint(_volume(source["label"]))
                depth, depth_n = labels.shape[1 + self.slice_axis], real_n.shape[self.slice_axis]
                k_n = k if depth == depth_n else round(k * (depth_n - 1) / max(depth - 1, 1))
                row = {
                    "labels": np.take(labels_n, k_n, axis=self.slice_axis),
                    "real": np.take(real_n, k_n, axis=self.slice_axis),
                    "kind": "native",
                }
            except Exception as err:  # the montage must not sink the evaluation
                if not self._native_warned:
                    self.logger.warning("SynthesisReport: native-resolution montage row from the resized "
                                        "slices (reading the source files failed: %s)", err)  # fmt: skip
                    self._native_warned = True
        if row is None:
            spatial = getattr(real, "meta", {}).get("spatial_shape")
            if spatial is None:
                return None
            shape = [int(s) for s in np.asarray(torch.as_tensor(spatial).cpu()).reshape(-1)]
            if len(shape) != 3:
                return None
            size = [shape[a] for a in in_plane]
            row = {
                "labels": _resize_slice(network["labels"], size, labels=True),
                "real": _resize_slice(network["real"], size),
                "kind": "resized to source",
            }
        size = row["real"].shape
        for key in self._columns():
            row[key] = _resize_slice(network[key], size)
        return row

    def _write_montage(self) -> None:
        num_labels = max(1, int(max(entry["network"]["labels"].max() for entry in self._montage)))
        panels, titles, row_names = [], [], []
        axis = _AXIS_NAMES[self.slice_axis]
        columns = ["labels", "real", *self._columns()]
        names = [
            "label map",
            "real",
            "synthetic",
            *(f"{display_name(b).lower()} baseline" for b in self.baselines),
        ]
        for entry in self._montage:
            for kind in ("network", "native"):
                row = entry[kind]
                if row is None:
                    continue
                colored = overlay(np.zeros(row["labels"].shape, np.float32), row["labels"], alpha=1.0,
                                  num_labels=num_labels)  # fmt: skip
                panels.append([colored, *(np.clip(row[c], 0, 1) for c in columns[1:])])
                titles.append(names)
                h, w = row["real"].shape
                where = "network" if kind == "network" else row["kind"]
                row_names.append(f"{entry['subject']} {axis}={entry['index']} {where} {h}x{w}")
        save_montage(self.output_dir / "montage.png", panels, titles=titles, row_names=row_names)

    # ---- metrics ---------------------------------------------------------------------------------

    def _details(self, engine: Engine) -> dict[str, Any]:
        return getattr(engine.state, "metric_details", None) or {}

    def _model_names(self, details: Mapping[str, Any]) -> list[str]:
        if self.metric_names is not None:
            return list(self.metric_names)
        prefixes = tuple(baseline_metric_name(b, "") for b in self.baselines)
        return [n for n in details if not (prefixes and n.startswith(prefixes))]

    def _values(
        self, details: Mapping[str, Any], names: Sequence[str], num_subjects: int, owner: str = ""
    ) -> dict[str, np.ndarray]:
        values = {}
        for name in names:
            key = baseline_metric_name(owner, name) if owner else name
            if key not in details:
                what = f"the {owner} baseline's metric {key!r}" if owner else f"metric {name!r}"
                raise ConfigError(
                    f"SynthesisReport: {what} has no per-volume values in engine.state.metric_details "
                    f"(it has {sorted(details)}); attach its IgniteMetricHandler with save_details=True"
                    + (" (baseline_metric_handlers scores a baseline with every metric)" if owner else "")
                )
            raw = details[key]
            if not isinstance(raw, torch.Tensor):
                raise DataError(f"SynthesisReport: metric {key!r} details must be a tensor, got {type(raw)}")
            array = raw.detach().float().cpu().reshape(raw.shape[0] if raw.ndim else 1, -1).numpy()
            if array.shape[1] != 1:
                raise DataError(
                    f"SynthesisReport: metric {key!r} has {array.shape[1]} values per volume (details shape "
                    f"{tuple(raw.shape)}); the report needs one per volume"
                )
            if array.shape[0] != num_subjects:
                raise DataError(
                    f"SynthesisReport: metric {key!r} has {array.shape[0]} per-volume values but "
                    f"{num_subjects} subjects were evaluated; every metric handler must see every volume "
                    "exactly once in this run"
                )
            values[name] = array[:, 0].astype(np.float64)
        return values

    def _metric_values(self, engine: Engine, num_subjects: int) -> dict[str, np.ndarray]:
        details = self._details(engine)
        names = self._model_names(details)
        if not names:
            raise ConfigError(
                "SynthesisReport: no metrics to report: engine.state.metric_details is empty; attach the "
                "metric handlers with save_details=True"
            )
        self._check_overlap(names)
        return self._values(details, names, num_subjects)

    def _table(
        self, values: dict[str, np.ndarray], first: dict[str, int]
    ) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
        rows = list(first.values())
        per_subject = {s: {n: float(v[i]) for n, v in values.items()} for s, i in first.items()}
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN or inf columns give NaN, quietly
            summary = {
                n: {op: float(SUMMARY_OPS[op](v[rows])) for op in self.summary_ops} for n, v in values.items()
            }
        return per_subject, summary

    def __call__(self, engine: Engine) -> None:
        """Gather, check and write the report (rank 0 writes under torch.distributed)."""
        distributed = dist.is_available() and dist.is_initialized()
        subjects = string_list_all_gather(self._subjects) if distributed else list(self._subjects)
        values = self._metric_values(engine, len(subjects))
        names = list(values)
        baseline_values = {
            b: self._values(self._details(engine), names, len(subjects), b) for b in self.baselines
        }

        first: dict[str, int] = {}
        for i, subject in enumerate(subjects):
            first.setdefault(subject, i)
        if len(first) < len(subjects):
            self.logger.warning(
                "SynthesisReport: %d repeated subject ids (a DistributedSampler pads with repeats); "
                "each subject is reported once, from its first occurrence",
                len(subjects) - len(first),
            )
        per_subject, summary = self._table(values, first)
        baselines = {}
        for b, b_values in baseline_values.items():
            b_rows, b_summary = self._table(b_values, first)
            baselines[b] = {"per_subject": b_rows, "summary": b_summary}
            if b in BASELINE_DEFINITIONS:
                baselines[b]["definition"] = BASELINE_DEFINITIONS[b]
        self.results = {
            "per_subject": per_subject,
            "summary": summary,
            "baselines": baselines,
            "unavailable": dict(self.unavailable),
            "definitions": {
                n: self.definitions[n] for n in [*names, *self.unavailable] if n in self.definitions
            },
            "slice_axis": self.slice_axis,
            "subjects": list(first),
        }
        if distributed and dist.get_rank() != 0:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._write_csv(self.output_dir / "metrics.csv", names, per_subject, summary)
        for b, table in baselines.items():
            self._write_csv(
                self.output_dir / f"metrics_{b}.csv", names, table["per_subject"], table["summary"]
            )
        write_json(self.output_dir / "metrics.json", self._jsonable(self.results))
        if self._montage:
            self._write_montage()
        self._log(names, summary, {b: t["summary"] for b, t in baselines.items()}, len(first))

    @staticmethod
    def _numbers(table: dict[str, dict[str, float]]) -> dict[str, dict[str, float | str]]:
        return {k: {m: json_number(v) for m, v in row.items()} for k, row in table.items()}

    @classmethod
    def _jsonable(cls, results: dict[str, Any]) -> dict[str, Any]:
        out = dict(results)
        for key in ("per_subject", "summary"):
            out[key] = cls._numbers(results[key])
        out["baselines"] = {
            b: {**t, "per_subject": cls._numbers(t["per_subject"]), "summary": cls._numbers(t["summary"])}
            for b, t in results.get("baselines", {}).items()
        }
        return out

    def _write_csv(
        self,
        path: Path,
        names: list[str],
        per_subject: dict[str, dict[str, float]],
        summary: dict[str, dict[str, float]],
    ) -> None:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["subject", *names])
        for subject, row in per_subject.items():
            writer.writerow([subject, *(repr(row[n]) for n in names)])
        for op in self.summary_ops:
            writer.writerow([op, *(repr(summary[n][op]) for n in names)])
        with atomic_path(path) as tmp:
            tmp.write_text(text.getvalue())

    def _log(
        self,
        names: list[str],
        summary: dict[str, dict[str, float]],
        baselines: dict[str, dict[str, dict[str, float]]],
        num_subjects: int,
    ) -> None:
        ops = list(self.summary_ops)
        formats: list[tuple[str, Callable[[dict[str, float]], str]]] = []
        if "mean" in ops and "std" in ops:
            formats.append(("mean ± std", lambda s: f"{s['mean']:.4f} ± {s['std']:.4f}"))
            ops = [op for op in ops if op not in ("mean", "std")]
        formats += [(op, lambda s, op=op: f"{s[op]:.4f}") for op in ops]
        sources = [
            ("model", summary),
            *((f"{display_name(b).lower()} baseline", t) for b, t in baselines.items()),
        ]
        header = ["metric"]
        for source, _ in sources:
            header += [f"{source} {label}" if len(sources) > 1 else label for label, _ in formats]
        table = [header]
        for n in names:
            row = [display_name(n)]
            for _, source_summary in sources:
                row += [fmt(source_summary[n]) for _, fmt in formats]
            table.append(row)
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table
        ]
        self.logger.info(
            "Synthesis report, %d subjects, written to %s\n%s",
            num_subjects,
            self.output_dir,
            "\n".join(lines),
        )
        for name, reason in self.unavailable.items():
            self.logger.warning("%s unavailable: %s", display_name(name), reason)
