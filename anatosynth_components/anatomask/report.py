"""The evaluation report of a synthesis model: per-subject metrics, mean / std, and a montage.

:class:`SynthesisReport` is an Ignite handler for a MONAI evaluator (``SupervisedEvaluator``) whose
metric handlers were attached with ``save_details=True``: MONAI then leaves each metric's
per-volume values in ``engine.state.metric_details[name]``, in the order the volumes ran (and
all-gathered over ranks under DDP). The report pairs them with the subject ids of the batches and,
when the run completes, writes into ``output_dir`` (atomically):

- ``metrics.csv``: a ``subject`` column and one column per metric; one row per subject, then one
  row per summary op (``mean``, ``std``). Non-finite values are written ``inf`` / ``nan``.
- ``metrics.json``: ``{"per_subject": {subject: {metric: value}}, "summary": {metric: {op: value}},
  "unavailable": {metric: reason}, "definitions": {metric: text}, "slice_axis": .., "subjects": [..]}``.
  JSON has no infinity, so non-finite values are the strings ``"inf"``, ``"-inf"``, ``"nan"``.
- ``montage.png``: for the first ``montage_subjects`` volumes (of rank 0), the middle slice along
  ``slice_axis`` of the label map (coloured) | the real image | the synthetic image, on the same
  [0, 1] grey scale (no per-panel contrast stretch, so intensity differences stay visible).

It also logs a table (mean +- std per metric) and one line per metric that could not be computed,
such as ``LPIPS unavailable: <reason>`` (pass the reasons as ``unavailable``, for example from
:func:`anatosynth_components.metrics.unavailable_metrics`).

``std`` is the population standard deviation (``numpy.nanstd``, ddof 0), as in MONAI's
``MetricsSaver``; NaN values are ignored by every summary op.

Why not MONAI's ``MetricsSaver``: it writes one file per metric (``<name>_raw.csv``,
``<name>_summary.csv``) keyed by image file names from the metadata, writes in place (not
atomically), and has no place for subject ids, unavailable metrics, definitions or a montage. The
report keeps its approach (``metric_details`` plus ``string_list_all_gather`` of the ids, rank 0
writes) in one table.

Data convention (after decollation, MONAI keys): ``engine.state.output`` is a list of per-volume
dicts with ``"image"`` the input label map (1, X, Y, Z) of integer ids stored as float, ``"label"``
the real image (1, X, Y, Z) in [0, 1] and ``"pred"`` the synthetic image (1, X, Y, Z);
``engine.state.batch`` is a list of dicts with a ``"subject"`` string each.

Example:
    >>> report = SynthesisReport("eval", metric_names=["psnr", "ssim", "coherence"],
    ...                          unavailable={"lpips": "no AlexNet weights"})
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
from monai.utils import string_list_all_gather

from anatosynth_components.atomic import atomic_path, write_json
from anatosynth_components.checks import check_positive_int, check_spatial_axis
from anatosynth_components.errors import ConfigError, DataError
from anatosynth_components.handlers.report_items import engine_items, json_number
from anatosynth_components.metrics.definitions import METRIC_DEFINITIONS
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


def _middle_slice(volume: Any, slice_axis: int) -> np.ndarray:
    """The middle 2-D slice along ``slice_axis`` of a (1, X, Y, Z) volume, as float32 numpy."""
    array = torch.as_tensor(volume).detach().float().cpu().numpy()
    if array.ndim != 4:
        raise DataError(
            f"SynthesisReport: expected a (1, X, Y, Z) volume per subject, got shape {array.shape}"
        )
    array = array[0]
    return np.take(array, array.shape[slice_axis] // 2, axis=slice_axis)


class SynthesisReport:
    """Write per-subject and summary metrics (CSV, JSON), a montage PNG and a log table at the end of
    an evaluation run.

    Args:
        output_dir: folder for ``metrics.csv``, ``metrics.json`` and ``montage.png`` (created).
        metric_names: the metrics to report, in this column order; names of metric handlers attached
            with ``save_details=True``. Default: every name in ``engine.state.metric_details``.
        slice_axis: the spatial axis (0, 1 or 2) of (X, Y, Z) the slices were synthesised along;
            the montage shows the middle slice along it.
        montage_subjects: how many volumes (the first ones run, on rank 0) the montage shows; 0 for
            no montage.
        unavailable: ``{metric: reason}`` for metrics that could not be computed here; logged as
            ``"<METRIC> unavailable: <reason>"`` and written to the JSON.
        summary_ops: summary rows, from ``"mean"``, ``"std"``, ``"median"``, ``"min"``, ``"max"``.
        definitions: ``{metric: text}`` written to the JSON; default
            :data:`~anatosynth_components.metrics.METRIC_DEFINITIONS`.
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
        self.image_key, self.label_key, self.pred_key = image_key, label_key, pred_key
        self.subject_key = subject_key
        self.logger = logging.getLogger(name or __name__)
        self.results: dict[str, Any] = {}
        self._subjects: list[str] = []
        self._montage: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []

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
        """Keep the subject ids of this iteration and the montage slices of the first volumes."""
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
        if len(self._montage) >= self.montage_subjects:
            return
        outputs = engine_items(engine.state.output, "output", "SynthesisReport")
        for subject, out in zip(subjects, outputs, strict=False):
            if len(self._montage) >= self.montage_subjects:
                break
            missing = [k for k in (self.image_key, self.label_key, self.pred_key) if k not in out]
            if missing:
                raise DataError(f"SynthesisReport: the engine output lacks {missing} (keys: {sorted(out)})")
            self._montage.append(
                (
                    subject,
                    np.rint(_middle_slice(out[self.image_key], self.slice_axis)),
                    _middle_slice(out[self.label_key], self.slice_axis),
                    _middle_slice(out[self.pred_key], self.slice_axis),
                )
            )

    def _metric_values(self, engine: Engine, num_subjects: int) -> dict[str, np.ndarray]:
        details = getattr(engine.state, "metric_details", None) or {}
        names = self.metric_names if self.metric_names is not None else list(details)
        if not names:
            raise ConfigError(
                "SynthesisReport: no metrics to report: engine.state.metric_details is empty; attach the "
                "metric handlers with save_details=True"
            )
        self._check_overlap(names)
        values = {}
        for name in names:
            if name not in details:
                raise ConfigError(
                    f"SynthesisReport: metric {name!r} has no per-volume values in "
                    f"engine.state.metric_details (it has {sorted(details)}); attach its "
                    "IgniteMetricHandler with save_details=True"
                )
            raw = details[name]
            if not isinstance(raw, torch.Tensor):
                raise DataError(f"SynthesisReport: metric {name!r} details must be a tensor, got {type(raw)}")
            array = raw.detach().float().cpu().reshape(raw.shape[0] if raw.ndim else 1, -1).numpy()
            if array.shape[1] != 1:
                raise DataError(
                    f"SynthesisReport: metric {name!r} has {array.shape[1]} values per volume (details shape "
                    f"{tuple(raw.shape)}); the report needs one per volume"
                )
            if array.shape[0] != num_subjects:
                raise DataError(
                    f"SynthesisReport: metric {name!r} has {array.shape[0]} per-volume values but "
                    f"{num_subjects} subjects were evaluated; every metric handler must see every volume "
                    "exactly once in this run"
                )
            values[name] = array[:, 0].astype(np.float64)
        return values

    def __call__(self, engine: Engine) -> None:
        """Gather, check and write the report (rank 0 writes under torch.distributed)."""
        distributed = dist.is_available() and dist.is_initialized()
        subjects = string_list_all_gather(self._subjects) if distributed else list(self._subjects)
        values = self._metric_values(engine, len(subjects))

        first: dict[str, int] = {}
        for i, subject in enumerate(subjects):
            first.setdefault(subject, i)
        if len(first) < len(subjects):
            self.logger.warning(
                "SynthesisReport: %d repeated subject ids (a DistributedSampler pads with repeats); "
                "each subject is reported once, from its first occurrence",
                len(subjects) - len(first),
            )
        rows = list(first.values())
        per_subject = {s: {n: float(v[i]) for n, v in values.items()} for s, i in first.items()}
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN or inf columns give NaN, quietly
            summary = {
                n: {op: float(SUMMARY_OPS[op](v[rows])) for op in self.summary_ops} for n, v in values.items()
            }
        names = list(values)
        self.results = {
            "per_subject": per_subject,
            "summary": summary,
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
        self._write_csv(names, per_subject, summary)
        write_json(self.output_dir / "metrics.json", self._jsonable(self.results))
        if self._montage:
            self._write_montage()
        self._log(names, summary, len(first))

    @staticmethod
    def _jsonable(results: dict[str, Any]) -> dict[str, Any]:
        out = dict(results)
        for key in ("per_subject", "summary"):
            out[key] = {k: {m: json_number(v) for m, v in row.items()} for k, row in results[key].items()}
        return out

    def _write_csv(
        self, names: list[str], per_subject: dict[str, dict[str, float]], summary: dict[str, dict[str, float]]
    ) -> None:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["subject", *names])
        for subject, row in per_subject.items():
            writer.writerow([subject, *(repr(row[n]) for n in names)])
        for op in self.summary_ops:
            writer.writerow([op, *(repr(summary[n][op]) for n in names)])
        with atomic_path(self.output_dir / "metrics.csv") as tmp:
            tmp.write_text(text.getvalue())

    def _write_montage(self) -> None:
        num_labels = max(1, int(max(mask.max() for _, mask, _, _ in self._montage)))
        panels, titles, row_names = [], [], []
        axis = _AXIS_NAMES[self.slice_axis]
        for subject, mask, real, synthetic in self._montage:
            colored = overlay(np.zeros(mask.shape, np.float32), mask, alpha=1.0, num_labels=num_labels)
            panels.append([colored, np.clip(real, 0, 1), np.clip(synthetic, 0, 1)])
            titles.append(["label map", "real", "synthetic"])
            row_names.append(f"{subject} ({axis} middle)")
        save_montage(self.output_dir / "montage.png", panels, titles=titles, row_names=row_names)

    def _log(self, names: list[str], summary: dict[str, dict[str, float]], num_subjects: int) -> None:
        ops = list(self.summary_ops)
        columns: list[tuple[str, Callable[[dict[str, float]], str]]] = []
        if "mean" in ops and "std" in ops:
            columns.append(("mean ± std", lambda s: f"{s['mean']:.4f} ± {s['std']:.4f}"))
            ops = [op for op in ops if op not in ("mean", "std")]
        columns += [(op, lambda s, op=op: f"{s[op]:.4f}") for op in ops]
        table = [["metric", *(c for c, _ in columns)]]
        table += [[display_name(n), *(fmt(summary[n]) for _, fmt in columns)] for n in names]
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
