"""The label-mean baseline: per-label training means, against a brute-force loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from anatosynth_components.anatomask.label_mean import LabelMeanImaged, LabelMeans
from anatosynth_components.errors import DataError


def _subjects(n=3, shape=(6, 5, 4), seed=0) -> list[dict]:
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        label = rng.integers(0, 4 + i, size=shape)  # subject i has ids 0 .. 3 + i: id 5 only in the last
        image = rng.random(shape).astype(np.float32)
        items.append({"image": torch.from_numpy(image)[None], "label": torch.from_numpy(label)[None].float()})
    return items


def test_label_means_equal_a_brute_force_per_label_mean():
    items = _subjects()
    scale = [lambda d: {**d, "image": 0.5 * d["image"]}]  # a stand-in for the volume transforms
    means = LabelMeans.from_items(items, scale)
    images = np.concatenate([0.5 * it["image"].numpy().ravel() for it in items]).astype(np.float64)
    labels = np.concatenate([it["label"].numpy().ravel() for it in items]).astype(int)
    for c in range(labels.max() + 1):
        assert float(means.means[c]) == pytest.approx(images[labels == c].mean(), rel=1e-9), c
        assert int(means.counts[c]) == int((labels == c).sum())
    assert means.fallback == pytest.approx(images.mean(), rel=1e-9)

    # the baseline image: each voxel the mean of its label; an id unseen in training -> the overall mean
    test_label = torch.tensor([0.0, 1.0, 5.0, 9.0]).reshape(1, 1, 2, 2, 1)
    out = means(test_label)
    expected = [
        images[labels == 0].mean(),
        images[labels == 1].mean(),
        images[labels == 5].mean(),
        images.mean(),
    ]
    np.testing.assert_allclose(out.reshape(-1).numpy(), expected, rtol=1e-6)
    assert out.dtype == torch.float32 and out.shape == test_label.shape
    assert set(means.to_dict()["means"]) == {str(c) for c in range(6)}


def test_label_mean_transform_adds_the_baseline_with_the_label_map_metadata():
    means = LabelMeans.from_pairs([(torch.tensor([0.2, 0.4, 0.9]), torch.tensor([0, 1, 1]))])
    affine = torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0]))
    label_map = MetaTensor(torch.tensor([[[[1, 0]]]], dtype=torch.uint8), affine=affine)
    out = LabelMeanImaged(means, label_key="image", output_key="label_mean")({"image": label_map, "pred": 0})
    assert out["pred"] == 0 and out["image"] is label_map
    np.testing.assert_allclose(out["label_mean"].numpy().ravel(), [0.65, 0.2], rtol=1e-6)
    assert torch.equal(out["label_mean"].affine, affine)


def test_label_mean_errors_are_clear():
    with pytest.raises(DataError, match="no training subjects"):
        LabelMeans.from_items([], [])
    with pytest.raises(DataError, match="differ in shape"):
        LabelMeans.from_pairs([(torch.zeros(3), torch.zeros(4))])
    with pytest.raises(DataError, match="negative label id"):
        LabelMeans.from_pairs([(torch.zeros(2), torch.tensor([0, -1]))])
    with pytest.raises(DataError, match="must be a LabelMeans"):
        LabelMeanImaged({"means": 1})
