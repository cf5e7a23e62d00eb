"""Diagnostics of synthetic pairs: label agreement under a real-data network, class intensities."""

from __future__ import annotations

import math

import pytest
import torch

from anatosynth_components.experiments.synthetic_quality import (
    class_intensities,
    intensity_gap,
    label_agreement,
)


class Threshold(torch.nn.Module):
    """Segments class 1 where the image is above 0.5: logits (B, 2, *S)."""

    def forward(self, x):
        return torch.cat([0.5 - x, x - 0.5], dim=1)


def _pair(consistent: bool):
    image = torch.zeros(1, 8, 8, 8)
    image[:, 2:6, 2:6, 2:6] = 1.0
    label = torch.zeros(1, 8, 8, 8, dtype=torch.long)
    if consistent:
        label[:, 2:6, 2:6, 2:6] = 1
    else:
        label[:, 0:2, 0:2, 0:2] = 1  # the annotation is elsewhere than the structure in the image
    return {"image": image, "label": label}


def test_label_agreement_separates_consistent_from_inconsistent_pairs():
    scores = label_agreement(Threshold(), [_pair(True), _pair(False)], num_classes=2, device="cpu")
    assert scores[0] == pytest.approx(100.0) and scores[1] == pytest.approx(0.0)


def test_class_intensities_against_a_hand_count():
    a, b = _pair(True), _pair(True)
    b["image"] = b["image"] * 0.5 + 0.1  # inside 0.6, outside 0.1
    means = class_intensities([a, b], num_classes=3)
    assert means[0] == pytest.approx(0.05) and means[1] == pytest.approx(0.8) and math.isnan(means[2])
    assert intensity_gap(means, [0.05, 0.6, 0.3]) == pytest.approx(0.1)
