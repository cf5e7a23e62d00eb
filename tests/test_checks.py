"""The package's one module of argument checks: values returned, and errors that name the key or image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from anatosynth_components.checks import (
    check_channels,
    check_choices,
    check_fraction,
    check_image,
    check_label_ids,
    check_positive_float,
    check_positive_int,
    check_spacing,
    check_spatial_axis,
    check_spatial_dims,
    check_spatial_size,
    is_exporting,
    non_empty,
    non_negative,
)
from anatosynth_components.errors import ConfigError, DataError


def test_positive_numbers():
    assert check_positive_int("n", np.int64(3)) == 3 and type(check_positive_int("n", 3)) is int
    assert check_positive_int("montage_subjects", 0, minimum=0) == 0
    for bad in (0, -1, True, 2.0, "3", None):
        with pytest.raises(ConfigError, match=rf"^n must be an integer >= 1, got {bad!r}$"):
            check_positive_int("n", bad)
    assert check_positive_float("sigma", "0.5") == 0.5
    assert check_positive_float("lambda", 0, allow_zero=True) == 0.0
    for bad in (0, -0.1, float("inf"), float("nan")):
        with pytest.raises(ConfigError, match=r"^sigma must be > 0 and finite, got"):
            check_positive_float("sigma", bad)
    with pytest.raises(ConfigError, match=r"^lambda must be >= 0 and finite, got -1$"):
        check_positive_float("lambda", -1, allow_zero=True)
    with pytest.raises(ConfigError, match=r"^sigma must be a number, got \[1\]$"):
        check_positive_float("sigma", [1])
    assert non_negative(0.0, "image_weight") == 0.0  # the (value, key) order of the refinement callers
    with pytest.raises(ConfigError, match=r"^image_weight must be >= 0 and finite, got -2$"):
        non_negative(-2, "image_weight")


def test_fractions_and_choices():
    assert check_fraction("floor", 1) == 1.0
    with pytest.raises(ConfigError, match=r"^floor must be in \[0, 1\], got 1.5$"):
        check_fraction("floor", 1.5)
    with pytest.raises(ConfigError, match=r"^min_foreground must be in \[0, 1\), got 1.0$"):
        check_fraction("min_foreground", 1.0, upper_open=True)
    check_choices("arms", ["baseline"], ("baseline", "synthetic"))
    with pytest.raises(ConfigError, match=r"^arms: unknown \[\]; choose from \['baseline'\]$"):
        check_choices("arms", [], ("baseline",))


def test_spatial_settings():
    assert check_spatial_dims(3) == 3 and check_spatial_dims(np.int32(2)) == 2
    for bad in (1, 4, True, "x", None):
        with pytest.raises(ConfigError, match=rf"^spatial_dims must be 2 or 3, got {bad!r}$"):
            check_spatial_dims(bad)
    assert check_spatial_axis(2.0, "slice_axis") == 2
    for bad in (-1, 3, True, 1.5):
        with pytest.raises(ConfigError, match=r"^axis must be a spatial axis 0, 1 or 2 of an \(X, Y, Z\)"):
            check_spatial_axis(bad)
    assert check_spatial_size([32, 16], 2, multiple=16) == (32, 16)
    with pytest.raises(
        ConfigError, match=r"spatial_size \[32, 24\]: every size must be divisible by 16.*\[24\]"
    ):
        check_spatial_size([32, 24], 2, multiple=16)
    with pytest.raises(ConfigError, match=r"^spatial_size must be 3 positive sizes, got \[32, 32\]$"):
        check_spatial_size([32, 32], 3)
    assert check_channels((8, "16"), "pm_channels") == (8, 16)
    with pytest.raises(ConfigError, match=r"^pm_channels must hold at least 2 positive channel counts"):
        check_channels([8], "pm_channels")
    with pytest.raises(ConfigError, match=r"^pm_channels must be a list of channel counts"):
        check_channels(None, "pm_channels")
    np.testing.assert_array_equal(check_spacing([1.0, 2.0, 3.0], 3), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(check_spacing(None, 2), [1.0, 1.0])
    with pytest.raises(ConfigError, match=r"^spacing must be one number or 3 numbers"):
        check_spacing([1.0, 2.0], 3)
    with pytest.raises(ConfigError, match=r"^pixdim must be positive and finite"):
        check_spacing([1.0, 0.0], 2, key="pixdim")


def test_image_checks_name_the_image():
    image = np.zeros((4, 5), np.float32)
    assert check_image(image, "ct.nii.gz") is image  # no copy
    with pytest.raises(DataError, match=r"^ct.nii.gz: expected a 2D or 3D image, got shape \(1, 4, 5, 6\)"):
        check_image(np.zeros((1, 4, 5, 6)), "ct.nii.gz")
    with pytest.raises(DataError, match=r"^ct.nii.gz: expected real numbers, got dtype complex128"):
        check_image(np.zeros((4, 4), complex), "ct.nii.gz")
    bad = np.ones((4, 4), np.float32)
    bad[0, :3] = np.nan
    bad[1, 0] = np.inf
    with pytest.raises(DataError, match=r"^ct.nii.gz: 4 non-finite voxels \(3 NaN, 1 infinite\) of 16"):
        check_image(bad, "ct.nii.gz")


def test_label_ids_name_the_bad_ids():
    check_label_ids(torch.tensor([[0, 1, 2]]), 3, "annotation")
    check_label_ids(torch.zeros(0, dtype=torch.long), 3, "annotation")  # nothing to check
    with pytest.raises(
        DataError, match=r"^annotation: label ids \[-1, 3\] are outside 0..2 \(num_classes=3\)$"
    ):
        check_label_ids(torch.tensor([[3, -1, 0, 3]]), 3, "annotation")
    many = torch.arange(0, 40, dtype=torch.float32)
    with pytest.raises(
        DataError, match=r"label ids \[2, 3, 4, 5, 6, 7, 8, 9, 10, 11\] and 28 more are outside"
    ):
        check_label_ids(many, 2, "labels")


def test_label_ids_are_not_checked_inside_an_export():
    assert not is_exporting()
    seen = []

    def f(x):
        seen.append(is_exporting())
        check_label_ids(x, 2, "traced")  # would raise for 5, but a trace cannot hold the check
        return x * 2

    torch.jit.trace(f, torch.tensor([5]), check_trace=False)
    assert seen == [True]
    with pytest.raises(DataError, match="traced: label ids \\[5\\]"):
        f(torch.tensor([5]))


def test_non_empty_loader():
    non_empty(DataLoader(list(range(3)), batch_size=2, drop_last=True), "train_data_loader")
    non_empty(iter([]), "not a DataLoader")  # nothing to check before it runs
    empty = DataLoader(list(range(3)), batch_size=9, drop_last=True)
    with pytest.raises(
        ConfigError, match=r"^train_data_loader yields no batch \(3 items, batch_size 9, drop_last\)"
    ):
        non_empty(empty, "train_data_loader")
