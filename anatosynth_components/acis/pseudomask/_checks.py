"""Argument checks shared by the pseudo-mask modules: bad values raise ``ConfigError`` naming the key,
bad arrays raise ``DataError`` naming the image (file or dictionary key)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from anatosynth_components.errors import ConfigError, DataError


def check_positive_int(key: str, value: object, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``; ``ConfigError`` naming ``key`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ConfigError(f"{key} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_positive_float(key: str, value: object, allow_zero: bool = False) -> float:
    """``value`` as a finite float > 0 (>= 0 with ``allow_zero``); ``ConfigError`` naming ``key``."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a number, got {value!r}") from None
    if not np.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        raise ConfigError(f"{key} must be {'>= 0' if allow_zero else '> 0'} and finite, got {value!r}")
    return number


def check_fraction(key: str, value: object, upper_open: bool = False) -> float:
    """``value`` in [0, 1] (or [0, 1) with ``upper_open``); ``ConfigError`` naming ``key``."""
    number = check_positive_float(key, value, allow_zero=True)
    if number > 1 or (upper_open and number == 1):
        raise ConfigError(f"{key} must be in [0, 1{')' if upper_open else ']'}, got {value!r}")
    return number


def check_spacing(spacing: float | Sequence[float] | None, ndim: int, key: str = "spacing") -> np.ndarray:
    """Voxel spacing in mm as a float64 array of length ``ndim`` (a scalar is broadcast, None is 1 mm)."""
    if spacing is None:
        return np.ones(ndim)
    values = np.atleast_1d(np.asarray(spacing, dtype=np.float64)) if _numeric(spacing) else None
    if values is None or values.ndim != 1 or values.size not in (1, ndim):
        raise ConfigError(f"{key} must be one number or {ndim} numbers (mm per voxel), got {spacing!r}")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ConfigError(f"{key} must be positive and finite, got {spacing!r}")
    return np.broadcast_to(values, (ndim,)).copy()


def _numeric(value: object) -> bool:
    try:
        np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return True


def check_image(image: object, name: str = "image") -> np.ndarray:
    """A 2D or 3D array of finite real numbers; ``DataError`` naming ``name`` otherwise.

    Accepts NumPy arrays and anything ``np.asarray`` understands (torch tensors on the CPU,
    MONAI ``MetaTensor``); the array is returned without copying when possible.
    """
    try:
        array = np.asarray(image)
    except Exception as err:  # e.g. a CUDA tensor
        raise DataError(f"{name}: cannot be read as an array ({err})") from err
    if array.ndim not in (2, 3):
        raise DataError(
            f"{name}: expected a 2D or 3D image, got shape {tuple(array.shape)} ({array.ndim}D); "
            "split 4D (multi-channel or time) volumes into single volumes first"
        )
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_) or np.iscomplexobj(array):
        raise DataError(f"{name}: expected real numbers, got dtype {array.dtype}")
    if min(array.shape) < 1:
        raise DataError(f"{name}: empty image of shape {tuple(array.shape)}")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = np.count_nonzero(~np.isfinite(array))
        if bad:
            nan = np.count_nonzero(np.isnan(array))
            raise DataError(
                f"{name}: {bad} non-finite voxels ({nan} NaN, {bad - nan} infinite) of {array.size}; "
                "replace or mask them before computing a pseudo-mask"
            )
    return array
