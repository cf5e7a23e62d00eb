"""``AcisReport``: the evaluation report of an ACIS model (``configs/evaluate.json``).

Attached to an :class:`~anatosynth_components.acis.AcisEvaluator` whose metric handlers were built
with ``save_details=True`` (MONAI then leaves the per-item values in ``engine.state.metric_details``),
it writes into ``output_dir`` when the run completes (atomically):

- ``metrics.csv``: one row per evaluated item (``subject``, ``slice`` for 2-D items, then every metric:
  image PSNR / SSIM of the phase-1 reconstruction ``G_img(pm, y)``, annotation Dice of
  ``argmax G_ann(pm)`` averaged over the foreground classes), then ``mean`` and ``std`` rows;
- ``realism.csv``: one row per class, the :func:`~anatosynth_components.acis.realism.realism_statistics`
  of ``num_samples`` pairs sampled with seeds ``seed + k`` against the evaluated real items;
- ``metrics.json``: all of it, plus the per-class Dice, the definitions and the seeds;
- ``montage.png``: real items (pseudo-mask | annotation | image | reconstruction | annotation of the
  pseudo-mask) and sampled pairs (generated pseudo-mask | annotation | image), on a fixed [0, 1] scale.

``std`` is the population standard deviation (ddof 0), NaN values ignored, as in ``SynthesisReport``.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events

from anatosynth_components.acis.panels import gray_panel, label_panel
from anatosynth_components.acis.realism import realism_statistics
from anatosynth_components.acis.sampling import sample_pairs
from anatosynth_components.atomic import atomic_path, write_json
from anatosynth_components.errors import ConfigError
from anatosynth_components.handlers.report_items import engine_items, json_number
from anatosynth_components.visualize import save_montage

DEFINITIONS = {
    "psnr": "PSNR (dB, data range 1) of the reconstruction G_img(pm, onehot(y)) of the real item",
    "ssim": "SSIM (MONAI SSIMMetric, data range 1, 11-voxel Gaussian window) of that reconstruction",
    "dice": "Dice of argmax G_ann(pm) against the real annotation, mean over the foreground classes present",
    "realism": "label-volume fractions and class intensities of sampled pairs vs the evaluated real items",
}


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue())


def _cell(value: Any) -> Any:
    return "" if value is None else (f"{value:.6g}" if isinstance(value, float) else value)


class AcisReport:
    """Write the evaluation report (see the module docstring) when the evaluator completes.

    Args:
        output_dir: report folder.
        network: the evaluated :class:`AcisPairGenerator` (for the samples).
        label_names: id -> name of the foreground classes.
        num_samples: sampled pairs for the realism statistics (>= 1).
        seed: first sampling seed.
        metric_names: metrics in ``engine.state.metric_details`` to report, in column order.
        montage_items: real items and samples in the montage.
        device: where to sample.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        network: torch.nn.Module,
        label_names: Mapping[int | str, str],
        num_samples: int = 8,
        seed: int = 0,
        metric_names: Sequence[str] = ("psnr", "ssim", "dice"),
        montage_items: int = 4,
        device: torch.device | str = "cpu",
    ) -> None:
        if isinstance(num_samples, bool) or int(num_samples) < 1:
            raise ConfigError(f"num_samples must be >= 1, got {num_samples!r}")
        self.output_dir, self.network, self.device = Path(output_dir), network, device
        self.label_names = {int(k): str(v) for k, v in label_names.items()}
        self.num_classes = 1 + max(self.label_names)
        self.num_samples, self.seed = int(num_samples), int(seed)
        self.metric_names, self.montage_items = list(metric_names), int(montage_items)
        self.logger = logging.getLogger(__name__)
        self.results: dict[str, Any] = {}

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._record)
        engine.add_event_handler(Events.COMPLETED, self)

    def _reset(self, engine: Engine) -> None:
        self._ids: list[tuple[str, Any]] = []
        self._real: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._panels: list[list[np.ndarray]] = []

    def _record(self, engine: Engine) -> None:
        for item, out in zip(
            engine_items(engine.state.batch, "batch", "AcisReport"),
            engine_items(engine.state.output, "output", "AcisReport"),
            strict=True,
        ):
            slice_index = item.get("slice_index")
            self._ids.append(
                (str(item.get("subject", "?")), None if slice_index is None else int(slice_index))
            )
            self._real.append((out["image"].detach().cpu(), out["label"].detach().cpu()))
            if len(self._panels) < self.montage_items:
                c = self.num_classes
                self._panels.append(
                    [
                        gray_panel(out["pseudo_mask"]),
                        label_panel(out["label"], c),
                        gray_panel(out["image"]),
                        gray_panel(out["pred"]),
                        label_panel(out["pred_label"], c),
                    ]
                )

    def _per_item(self, engine: Engine) -> tuple[dict[str, np.ndarray], dict[str, list[float]]]:
        values, per_class = {}, {}
        for name in self.metric_names:
            if name not in engine.state.metric_details:
                raise ConfigError(
                    f"AcisReport: metric {name!r} has no details; attach it with save_details=True"
                )
            table = (
                torch.as_tensor(engine.state.metric_details[name]).float().reshape(len(self._ids), -1).numpy()
            )
            with np.errstate(all="ignore"), _quiet():
                values[name] = np.nanmean(table, axis=1)
                if table.shape[1] > 1:
                    per_class[name] = [float(v) for v in np.nanmean(table, axis=0)]
        return values, per_class

    def __call__(self, engine: Engine) -> None:
        values, per_class = self._per_item(engine)
        seeds = [self.seed + k for k in range(self.num_samples)]
        samples = sample_pairs(self.network, seeds, self.device)
        realism = realism_statistics(
            self._real, [(s["image"], s["labels"]) for s in samples], self.label_names
        )
        summary = {}
        with _quiet():
            for name, column in values.items():
                summary[name] = {"mean": float(np.nanmean(column)), "std": float(np.nanstd(column))}
        self.results = {
            "per_item": [
                {"subject": s, "slice": k, **{n: float(values[n][i]) for n in values}}
                for i, (s, k) in enumerate(self._ids)
            ],
            "summary": summary,
            "per_class": {
                n: dict(zip(map(str, sorted(self.label_names)), v, strict=False))
                for n, v in per_class.items()
            },
            "realism": realism,
            "sample_seeds": seeds,
            "definitions": DEFINITIONS,
        }
        self._write(values, summary, realism, samples)
        for name, stats in summary.items():
            self.logger.info(f"{name}: {stats['mean']:.4f} +- {stats['std']:.4f} over {len(self._ids)} items")
        self.logger.info(
            f"realism over {len(samples)} samples: mean |label fraction difference| "
            f"{realism['mean_fraction_abs_diff']:.4f}, distinct annotations {realism['distinct_annotations']}"
        )

    def _write(self, values: dict, summary: dict, realism: dict, samples: list[dict]) -> None:
        names = list(values)
        rows = [
            [s, "" if k is None else k, *(_cell(float(values[n][i])) for n in names)]
            for i, (s, k) in enumerate(self._ids)
        ]
        rows += [[op, "", *(_cell(summary[n][op]) for n in names)] for op in ("mean", "std")]
        _write_csv(self.output_dir / "metrics.csv", ["subject", "slice", *names], rows)
        fields = [
            "name",
            "real_fraction_mean",
            "real_fraction_std",
            "synthetic_fraction_mean",
            "synthetic_fraction_std",
            "fraction_abs_diff",
            "real_intensity_mean",
            "synthetic_intensity_mean",
        ]
        _write_csv(
            self.output_dir / "realism.csv",
            ["class", *fields],
            [[c, *(_cell(e[f]) for f in fields)] for c, e in realism["classes"].items()],
        )
        doc = dict(self.results)
        doc["per_item"] = [
            {k: (json_number(v) if isinstance(v, float) else v) for k, v in r.items()}
            for r in doc["per_item"]
        ]
        write_json(self.output_dir / "metrics.json", doc)
        panels = list(self._panels)
        titles = [["pseudo-mask", "annotation", "image", "reconstruction", "G_ann(pm)"]] * len(panels)
        for s in samples[: self.montage_items]:
            panels.append(
                [
                    gray_panel(s["pseudo_mask"]),
                    label_panel(s["labels"], self.num_classes),
                    gray_panel(s["image"]),
                ]
            )
            titles.append(["generated pseudo-mask", "generated annotation", "generated image"])
        if panels:
            save_montage(self.output_dir / "montage.png", panels, titles)


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence numpy's "mean of empty slice" warnings (an all-NaN column stays NaN, which is the answer)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
