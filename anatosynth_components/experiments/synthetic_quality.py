"""How good the synthetic image-annotation pairs of an ACIS arm are, measured where the segmentation
experiment can see it (why an ACIS arm helps or hurts a downstream network).

- **label agreement** (:func:`label_agreement`): the Dice (%) between a pair's annotation and what a
  network trained on real volumes only (the row's baseline network) segments in the pair's image.
  A pair whose image does not show its annotation scores low; the baseline network's Dice on the
  real test volumes is the reference (a pair as consistent as real data scores about as high).
- **class intensities** (:func:`class_intensities`): the mean image value inside each class, real
  vs synthetic; :func:`intensity_gap` is the mean absolute difference over the classes present in
  both (on the [0, 1] scale of the CT window), a coarse check that synthetic tissue has the real
  tissue's grey level.

Example:
    >>> image = torch.tensor([[[[0.25, 0.75]]]]); labels = torch.tensor([[[[0, 1]]]])
    >>> class_intensities([{"image": image, "label": labels}], num_classes=3)
    [0.25, 0.75, nan]
    >>> intensity_gap([0.25, 0.75, float("nan")], [0.25, 0.5, 0.5])
    0.125
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from anatosynth_components.metrics.segmentation_scores import dice_per_class


def label_agreement(
    network: torch.nn.Module, pairs: Sequence[dict[str, Any]], num_classes: int, device: str | torch.device
) -> list[float]:
    """Dice (%, mean over the foreground classes present) of ``network``'s segmentation of each pair's
    image against the pair's annotation; pairs ``{"image": (1, *S), "label": (1, *S)}``."""
    out = []
    network.eval()
    with torch.no_grad():
        for pair in pairs:
            logits = network(torch.as_tensor(pair["image"])[None].float().to(device))
            pred = logits.argmax(dim=1, keepdim=True).cpu()
            dice = [d for d in dice_per_class(pred, torch.as_tensor(pair["label"])[None].long(), num_classes)]
            good = [d for d in dice if not math.isnan(d)]
            out.append(100.0 * sum(good) / len(good) if good else math.nan)
    return out


def class_intensities(items: Sequence[dict[str, Any]], num_classes: int) -> list[float]:
    """Mean image value inside each class 0 .. num_classes - 1 over ``items`` (NaN for an absent class)."""
    sums = torch.zeros(num_classes, dtype=torch.float64)
    counts = torch.zeros(num_classes, dtype=torch.float64)
    for item in items:
        image = torch.as_tensor(item["image"]).double().flatten()
        labels = torch.as_tensor(item["label"]).long().flatten()
        sums += torch.bincount(labels, weights=image, minlength=num_classes)[:num_classes]
        counts += torch.bincount(labels, minlength=num_classes)[:num_classes].double()
    return [float(s / c) if c > 0 else math.nan for s, c in zip(sums, counts, strict=True)]


def intensity_gap(real: Sequence[float], synthetic: Sequence[float]) -> float:
    """Mean absolute difference of two :func:`class_intensities` over the classes present in both."""
    pairs = [(r, s) for r, s in zip(real, synthetic, strict=True) if not (math.isnan(r) or math.isnan(s))]
    return round(sum(abs(r - s) for r, s in pairs) / len(pairs), 6) if pairs else math.nan
