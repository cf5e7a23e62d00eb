"""Metric code of the paper experiments against hand-computed and brute-force values: Dice, mean
surface distance, PSNR, SSIM, and the one-sided Wilcoxon helper against scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_erosion
from scipy.stats import wilcoxon
from skimage.metrics import structural_similarity

from anatosynth_components.errors import DataError
from anatosynth_components.experiments.summary import mean_std, summarize
from anatosynth_components.metrics.image_scores import image_scores
from anatosynth_components.metrics.segmentation_scores import segmentation_scores
from anatosynth_components.metrics.wilcoxon import one_sided_wilcoxon


def _labels(array: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(array, dtype=torch.long)[None, None]


def test_dice_hand_computed():
    gt = np.zeros((4, 4, 2), dtype=int)
    pred = np.zeros_like(gt)
    gt[0, :, 0] = 1  # 4 voxels of class 1
    pred[0, :, 0] = 1
    pred[1, :2, 0] = 1  # 6 predicted, 4 of them right: 2 * 4 / (6 + 4) = 0.8
    gt[3, 3, 1] = 2  # class 2: one voxel, missed
    pred[2, 2, 1] = 2
    scores = segmentation_scores(_labels(pred), _labels(gt), num_classes=4, spacing=(1, 1, 1))
    dice = scores["dice_per_class"]
    assert dice[0] == pytest.approx(0.8)
    assert dice[1] == pytest.approx(0.0)
    assert math.isnan(dice[2])  # class 3 is in neither: left out
    assert scores["dice"] == pytest.approx(0.4)  # mean over the classes present


def _brute_msd(pred: np.ndarray, gt: np.ndarray, spacing: tuple[float, ...]) -> float:
    """Symmetric mean surface distance by brute force: boundary voxels (mask minus its erosion),
    every boundary voxel's distance to the nearest boundary voxel of the other mask, in mm."""
    edges = [np.argwhere(m & ~binary_erosion(m)) * np.asarray(spacing) for m in (pred, gt)]
    d = np.sqrt(((edges[0][:, None, :] - edges[1][None, :, :]) ** 2).sum(-1))
    return float(np.concatenate([d.min(1), d.min(0)]).mean())


def test_mean_surface_distance_against_brute_force():
    rng = np.random.default_rng(0)
    gt = np.zeros((12, 10, 9), dtype=int)
    gt[2:8, 3:8, 2:7] = 1
    pred = np.zeros_like(gt)
    pred[3:10, 2:7, 2:6] = 1
    pred[rng.random(pred.shape) > 0.97] = 1  # a few speckles
    spacing = (2.0, 1.0, 1.5)
    scores = segmentation_scores(_labels(pred), _labels(gt), num_classes=2, spacing=spacing)
    assert scores["msd"] == pytest.approx(_brute_msd(pred > 0, gt > 0, spacing), rel=1e-5)
    assert scores["missed"] == 0
    same = segmentation_scores(_labels(gt), _labels(gt), num_classes=2, spacing=spacing)
    assert same["msd"] == 0.0 and same["dice"] == pytest.approx(1.0)


def test_missed_class_is_left_out_of_the_msd_and_counted():
    gt = np.zeros((6, 8, 10), dtype=int)
    gt[1:3, 1:3, 1:3] = 1
    gt[4:6, 5:7, 6:9] = 2
    pred = np.where(gt == 1, 1, 0)  # class 2 never predicted
    pred[0, 0, 0] = 1  # class 1 with one stray voxel: a finite, non-zero MSD
    spacing = (1.0, 2.0, 0.5)
    scores = segmentation_scores(_labels(pred), _labels(gt), num_classes=3, spacing=spacing)
    expected = _brute_msd(pred == 1, gt == 1, spacing)
    assert scores["msd_per_class"][0] == pytest.approx(expected, rel=1e-5)
    assert math.isnan(scores["msd_per_class"][1])  # no surface distance for a missed class
    assert scores["msd"] == pytest.approx(expected, rel=1e-5)  # not swamped by a stand-in distance
    assert scores["missed"] == 1
    assert scores["dice_per_class"][1] == 0.0  # the miss is still penalised by its Dice
    nothing = segmentation_scores(_labels(np.zeros_like(gt)), _labels(gt), num_classes=3, spacing=spacing)
    assert math.isnan(nothing["msd"]) and nothing["missed"] == 2
    with pytest.raises(DataError, match=r"prediction: label ids \[3, 4\] are outside 0..2 \(num_classes=3\)"):
        segmentation_scores(_labels(pred + 3), _labels(gt), num_classes=3, spacing=(1, 1, 1))


def test_psnr_hand_computed():
    target = torch.zeros(2, 1, 16, 16)
    pred = target.clone()
    pred[0, :, :8] = 0.2  # half the pixels off by 0.2: MSE 0.02 -> 10 log10(1 / 0.02) dB
    pred[1] = 0.1  # MSE 0.01 -> 20 dB
    psnr = image_scores(pred, target)["psnr"]
    assert psnr == [pytest.approx(10 * math.log10(50), abs=1e-4), pytest.approx(20.0, abs=1e-4)]


def test_ssim_hand_computed_and_against_skimage():
    # constant images: every window has sigma = 0, so SSIM = (2 a b + C1) / (a^2 + b^2 + C1), C1 = 0.01^2
    a, b, c1 = 0.5, 0.3, 0.01**2
    ssim = image_scores(torch.full((1, 1, 16, 16), b), torch.full((1, 1, 16, 16), a))["ssim"][0]
    assert ssim == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-4)  # float32 filtering
    rng = np.random.default_rng(1)
    real = rng.random((24, 20)).astype(np.float64)
    fake = np.clip(real + 0.1 * rng.standard_normal(real.shape), 0, 1)
    ours = image_scores(torch.as_tensor(fake)[None, None], torch.as_tensor(real)[None, None])["ssim"][0]
    reference = structural_similarity(
        fake, real, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=True
    )
    assert ours == pytest.approx(reference, abs=1e-4)


def test_wilcoxon_against_scipy_and_one_sided():
    treatment = [0.91, 0.85, 0.88, 0.93, 0.79, 0.90, 0.86]
    baseline = [0.88, 0.86, 0.80, 0.89, 0.70, 0.84, 0.85]
    diff = np.subtract(treatment, baseline)
    greater = one_sided_wilcoxon(treatment, baseline, higher_is_better=True)
    assert greater["p"] == pytest.approx(wilcoxon(diff, alternative="greater").pvalue)
    assert greater["alternative"] == "greater" and greater["n"] == 7
    less = one_sided_wilcoxon(treatment, baseline, higher_is_better=False)
    assert less["p"] == pytest.approx(wilcoxon(diff, alternative="less").pvalue)
    assert greater["p"] < 0.05 < less["p"]  # one-sided: the direction matters
    # all five differences positive: T+ = 15, the largest of 2^5 equally likely sign patterns: p = 1/32
    assert one_sided_wilcoxon([2, 3, 4, 5, 6], [1, 1, 1, 1, 1])["p"] == pytest.approx(1 / 32)
    # for a lower-is-better score (surface distance) a smaller treatment is the improvement
    assert one_sided_wilcoxon([1, 1, 1, 1, 1], [2, 3, 4, 5, 6], higher_is_better=False)["p"] == pytest.approx(
        1 / 32
    )
    tied = one_sided_wilcoxon([1, 2], [1, 2])
    assert math.isnan(tied["p"]) and tied["note"] == "no non-zero paired difference"
    with pytest.raises(DataError, match="paired"):
        one_sided_wilcoxon([1, 2, 3], [1, 2])


def test_summary_counts_non_finite_values():
    s = summarize([1.0, 3.0, float("inf")])
    assert (s["mean"], s["std"], s["n"], s["non_finite"]) == (2.0, 1.0, 2, 1)
    assert mean_std([1.0, 3.0, float("nan")], 1) == "2.0 ± 1.0 (1 non-finite)"
