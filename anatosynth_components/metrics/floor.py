"""The main job's target: a synthesis model against its label-mean floor, on fidelity *and* realism.

The label-mean image (each voxel painted with the mean training intensity of its label) is what a
model that learned nothing but one grey value per label would give; it is sharp and scores well on
PSNR.  A model meets the target when, on the same foreground slices of the same subjects,

- ``psnr_slice`` (Eqs. 6-7) is within ``tolerance_db`` (1 dB) of the baseline's or above it, and
- ``st_lpips`` is below the baseline's (realism: blurring a model raises PSNR but also ST-LPIPS).

Example:
    >>> base = {"psnr_slice": {"mean": 22.5}, "st_lpips": {"mean": 0.12}}
    >>> doc = {"summary": {"psnr_slice": {"mean": 22.1}, "st_lpips": {"mean": 0.20}},
    ...        "baselines": {"label_mean": {"summary": base}}}
    >>> result = floor_comparison(doc)
    >>> result["fidelity"], result["realism"], result["met"]
    (True, False, False)
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from anatosynth_components.errors import DataError

#: the two metrics of the target
TARGET_METRICS = ("psnr_slice", "st_lpips")


def _mean(summary: dict[str, Any], metric: str, where: str) -> float:
    try:
        return float(summary[metric]["mean"])
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(
            f"{where}: no mean of {metric!r} (an evaluation with evaluate.json writes it)"
        ) from err


def floor_comparison(
    doc: dict[str, Any], tolerance_db: float = 1.0, where: str = "metrics.json"
) -> dict[str, Any]:
    """``{"model": {metric: mean}, "label_mean": {...}, "fidelity", "realism", "met"}`` of an
    evaluation report (``metrics.json``)."""
    if "label_mean" not in doc.get("baselines", {}):
        raise DataError(
            f"{where}: no label-mean baseline (baselines.label_mean); evaluate with evaluate.json"
        )
    model_summary, base_summary = doc.get("summary", {}), doc["baselines"]["label_mean"].get("summary", {})
    model = {m: _mean(model_summary, m, where) for m in TARGET_METRICS}
    base = {m: _mean(base_summary, m, f"{where} (label-mean baseline)") for m in TARGET_METRICS}
    fidelity = model["psnr_slice"] >= base["psnr_slice"] - tolerance_db
    realism = model["st_lpips"] < base["st_lpips"]
    return {
        "model": model,
        "label_mean": base,
        "tolerance_db": tolerance_db,
        "fidelity": bool(fidelity),
        "realism": bool(realism and not math.isnan(model["st_lpips"])),
        "met": bool(fidelity and realism),
    }


def read_floor_comparison(path: str | os.PathLike, tolerance_db: float = 1.0) -> dict[str, Any]:
    """:func:`floor_comparison` of a ``metrics.json`` file."""
    try:
        doc = json.loads(open(path, encoding="utf-8").read())
    except FileNotFoundError as err:
        raise DataError(f"{path}: not found; run the evaluation (evaluate.json) first") from err
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from err
    return floor_comparison(doc, tolerance_db, where=str(path))


def format_floor(result: dict[str, Any]) -> str:
    """A small table (model | label-mean) and the verdict, as the main job prints it."""
    m, b, tol = result["model"], result["label_mean"], result["tolerance_db"]
    lines = [
        f"{'metric':<12}{'model':>10}{'label-mean':>12}   target",
        f"{'psnr_slice':<12}{m['psnr_slice']:>10.2f}{b['psnr_slice']:>12.2f}   within {tol:g} dB of the "
        f"baseline or above: {'met' if result['fidelity'] else 'NOT met'}",
        f"{'st_lpips':<12}{m['st_lpips']:>10.4f}{b['st_lpips']:>12.4f}   below the baseline: "
        f"{'met' if result['realism'] else 'NOT met'}",
        "target (fidelity and realism): " + ("met" if result["met"] else "NOT met"),
    ]
    return "\n".join(lines)
