"""Per-subject segmentation scores for the ACIS few-shot experiment (paper Sec. 3.1, Table 1): Dice
and mean surface distance, from MONAI's ``DiceMetric`` and ``SurfaceDistanceMetric``.

- Dice per foreground class: MONAI ``DiceMetric(include_background=False, ignore_empty=True)``,
  2 |P ∩ G| / (|P| + |G|); a class absent from the ground truth is left out (NaN), as
  ``ignore_empty`` does.
- Mean surface distance (MSD) per foreground class, in mm: MONAI
  ``SurfaceDistanceMetric(symmetric=True)`` with the voxel spacing, i.e. the mean over the
  boundary voxels of both segmentations of the distance to the other one's boundary (the average
  symmetric surface distance of ref. [30] of the paper).  When a class is in the ground truth but
  the prediction has none of it, the distance is undefined (MONAI gives +inf): that class is left
  out of the MSD (NaN) and counted in ``missed``, which the tables report beside the MSD.  (Scoring
  it with a stand-in such as the volume diagonal, hundreds of mm, would swamp the mean and std of
  a few-mm metric; its Dice of 0 already penalises the miss.)  A class absent from both is left out
  (NaN).
- The subject's score is the mean over the classes that are not left out (NaN for the MSD when
  every present class was missed).

Example:
    >>> gt = torch.zeros(1, 1, 8, 8, 8, dtype=torch.long); gt[..., 2:6, 2:6, 2:6] = 1
    >>> scores = segmentation_scores(gt.clone(), gt, num_classes=2, spacing=(1.0, 1.0, 1.0))
    >>> scores["dice"], scores["msd"], scores["missed"]
    (1.0, 0.0, 0)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
from monai.metrics import DiceMetric, SurfaceDistanceMetric
from monai.networks.utils import one_hot

from anatosynth_components.checks import check_label_ids
from anatosynth_components.errors import DataError


def _one_hot(labels: torch.Tensor, num_classes: int, what: str) -> torch.Tensor:
    """A label map (1, 1, *spatial) as MONAI's float one-hot; a bad shape or id names ``what``."""
    if labels.ndim < 3 or labels.shape[:2] != (1, 1):
        raise DataError(f"{what}: expected a label map (1, 1, *spatial), got shape {tuple(labels.shape)}")
    check_label_ids(labels, num_classes, what)
    return one_hot(torch.as_tensor(labels).long(), num_classes, dim=1)


def dice_per_class(pred: torch.Tensor, gt: torch.Tensor, num_classes: int) -> list[float]:
    """Dice of every foreground class (1 .. num_classes - 1) of label maps (1, 1, *spatial)."""
    metric = DiceMetric(include_background=False, reduction="none", ignore_empty=True)
    values = metric(_one_hot(pred, num_classes, "prediction"), _one_hot(gt, num_classes, "ground truth"))
    return [float(v) for v in values[0]]


def surface_distance_per_class(
    pred: torch.Tensor, gt: torch.Tensor, num_classes: int, spacing: Sequence[float]
) -> tuple[list[float], int]:
    """Symmetric mean surface distance (mm) of every foreground class (NaN for a class absent from
    both, or present in the ground truth and missed by the prediction), and how many classes the
    prediction missed (see the module docstring)."""
    metric = SurfaceDistanceMetric(include_background=False, symmetric=True, reduction="none")
    spacing = [float(s) for s in spacing]
    with warnings.catch_warnings():
        # MONAI 1.6 warns about its own internal use of a deprecated argument, and about empty
        # classes, which are handled below
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*")
        warnings.filterwarnings("ignore", message=".*is all 0.*")
        values = metric(
            _one_hot(pred, num_classes, "prediction"),
            _one_hot(gt, num_classes, "ground truth"),
            spacing=spacing,
        )
    out, missed = [], 0
    for value in values[0].tolist():
        if math.isinf(value):
            out.append(math.nan)
            missed += 1
        else:
            out.append(float(value))
    return out, missed


def _mean(values: Sequence[float]) -> float:
    good = [v for v in values if not math.isnan(v)]
    return sum(good) / len(good) if good else math.nan


def segmentation_scores(
    pred: torch.Tensor, gt: torch.Tensor, num_classes: int, spacing: Sequence[float]
) -> dict[str, float | int | list[float]]:
    """``{"dice", "msd", "dice_per_class", "msd_per_class", "missed"}`` of one subject's label maps
    (1, 1, *spatial) with integer ids 0 .. num_classes - 1 and voxel ``spacing`` in mm."""
    if pred.shape != gt.shape:
        raise DataError(f"prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} differ in shape")
    dice = dice_per_class(pred, gt, num_classes)
    msd, missed = surface_distance_per_class(pred, gt, num_classes, spacing)
    return {
        "dice": _mean(dice),
        "msd": _mean(msd),
        "dice_per_class": dice,
        "msd_per_class": msd,
        "missed": missed,
    }
