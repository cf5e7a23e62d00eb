"""Realism statistics of sampled ACIS pairs against real data (no paired ground truth exists for a sample).

- **label fractions**: for every class, the fraction of the voxels it covers, per item; the mean and
  standard deviation over real items and over samples, and the absolute difference of the means (a
  generator whose lobes are too small or whose heart is missing shows here);
- **class intensities**: the mean image intensity ([0, 1]) inside every class, real vs synthetic (the
  image generator must render the annotated anatomy with its tissue's density);
- **diversity**: the mean absolute difference between the images of consecutive samples (0 would mean
  that different seeds give the same image: mode collapse), and the number of distinct annotations.

>>> import torch
>>> real = [(torch.full((1, 4, 4), 0.5), torch.ones(1, 4, 4))]
>>> synth = [(torch.zeros(1, 4, 4), torch.zeros(1, 4, 4)), (torch.ones(1, 4, 4), torch.ones(1, 4, 4))]
>>> stats = realism_statistics(real, synth, {1: "lung"})
>>> stats["classes"]["1"]["real_fraction_mean"], stats["classes"]["1"]["synthetic_fraction_mean"]
(1.0, 0.5)
>>> stats["diversity_mean_abs_diff"], stats["distinct_annotations"]
(1.0, 2)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

Pair = tuple[torch.Tensor, torch.Tensor]


def label_fractions(labels: torch.Tensor, class_ids: Sequence[int]) -> np.ndarray:
    """Fraction of the voxels of ``labels`` (1, *S) equal to each id of ``class_ids``."""
    ids = torch.as_tensor(labels).round().long().flatten()
    return np.array([float((ids == c).float().mean()) for c in class_ids])


def class_intensities(image: torch.Tensor, labels: torch.Tensor, class_ids: Sequence[int]) -> np.ndarray:
    """Mean of ``image`` (1, *S) inside each class of ``labels`` (NaN for an absent class)."""
    ids = torch.as_tensor(labels).round().long().flatten()
    values = torch.as_tensor(image).float().flatten()
    return np.array([float(values[ids == c].mean()) if bool((ids == c).any()) else np.nan for c in class_ids])


def realism_statistics(
    real: Sequence[Pair], synthetic: Sequence[Pair], label_names: Mapping[int, str]
) -> dict[str, Any]:
    """Statistics of real and synthetic (image, labels) pairs; see the module docstring.

    Returns:
        ``{"classes": {id: {"name", "real_fraction_mean", "real_fraction_std", "synthetic_fraction_mean",
        "synthetic_fraction_std", "fraction_abs_diff", "real_intensity_mean", "synthetic_intensity_mean"}},
        "mean_fraction_abs_diff", "diversity_mean_abs_diff", "distinct_annotations", "num_real",
        "num_synthetic"}``; intensities of a class absent from every item are None.
    """
    if not real or not synthetic:
        raise ValueError("realism statistics need at least one real and one synthetic pair")
    ids = sorted(int(k) for k in label_names)
    frac = {
        name: [label_fractions(lab, ids) for _, lab in pairs]
        for name, pairs in (("real", real), ("synthetic", synthetic))
    }
    inten = {
        name: [class_intensities(img, lab, ids) for img, lab in pairs]
        for name, pairs in (("real", real), ("synthetic", synthetic))
    }
    classes = {}
    for i, c in enumerate(ids):
        entry: dict[str, Any] = {"name": label_names[c]}
        for name in ("real", "synthetic"):
            values = np.array([row[i] for row in frac[name]])
            entry[f"{name}_fraction_mean"], entry[f"{name}_fraction_std"] = (
                float(values.mean()),
                float(values.std()),
            )
            levels = np.array([row[i] for row in inten[name]])
            entry[f"{name}_intensity_mean"] = None if np.isnan(levels).all() else float(np.nanmean(levels))
        entry["fraction_abs_diff"] = abs(entry["real_fraction_mean"] - entry["synthetic_fraction_mean"])
        classes[str(c)] = entry
    images = [torch.as_tensor(img).float() for img, _ in synthetic]
    diffs = [float((a - b).abs().mean()) for a, b in zip(images[:-1], images[1:], strict=True)]
    distinct = {torch.as_tensor(lab).round().to(torch.int16).numpy().tobytes() for _, lab in synthetic}
    return {
        "classes": classes,
        "mean_fraction_abs_diff": float(np.mean([e["fraction_abs_diff"] for e in classes.values()])),
        "diversity_mean_abs_diff": float(np.mean(diffs)) if diffs else None,
        "distinct_annotations": len(distinct),
        "num_real": len(real),
        "num_synthetic": len(synthetic),
    }
