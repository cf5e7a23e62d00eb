"""Argument checks shared by the whole package: one place for each kind of check.

Bad configuration values raise :class:`~anatosynth_components.errors.ConfigError` naming the key;
bad arrays raise :class:`~anatosynth_components.errors.DataError` naming the image (a file or a
dictionary key).  Every check returns the value in the type the caller needs, so a constructor reads
``self.sigma = check_positive_float("sigma", sigma)``.

Example:
    >>> check_positive_int("num_points", 3)
    3
    >>> check_fraction("floor", 0.25)
    0.25
    >>> check_spatial_size([32, 32, 16], 3, multiple=8)
    (32, 32, 16)
    >>> check_spacing(2.0, 3).tolist()
    [2.0, 2.0, 2.0]
    >>> check_positive_float("sigma", 0)
    Traceback (most recent call last):
    ...
    anatosynth_components.errors.ConfigError: sigma must be > 0 and finite, got 0
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from anatosynth_components.errors import ConfigError, DataError

SPATIAL_AXES = (0, 1, 2)


def check_positive_int(key: str, value: object, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``; ``ConfigError`` naming ``key`` otherwise (bools are refused).

    >>> check_positive_int("montage_subjects", 0, minimum=0)
    0
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ConfigError(f"{key} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_positive_float(key: str, value: object, allow_zero: bool = False) -> float:
    """``value`` as a finite float > 0 (>= 0 with ``allow_zero``); ``ConfigError`` naming ``key``.

    >>> check_positive_float("lambda_rec", 0, allow_zero=True)
    0.0
    """
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a number, got {value!r}") from None
    if not np.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        raise ConfigError(f"{key} must be {'>= 0' if allow_zero else '> 0'} and finite, got {value!r}")
    return number


def non_negative(value: float, key: str) -> float:
    """``check_positive_float(key, value, allow_zero=True)``, in the (value, key) order of the refinement
    modules that call it (a loss weight, for example)."""
    return check_positive_float(key, value, allow_zero=True)


def check_fraction(key: str, value: object, upper_open: bool = False) -> float:
    """``value`` in [0, 1] (or [0, 1) with ``upper_open``); ``ConfigError`` naming ``key``.

    >>> check_fraction("dropout", 1.0, upper_open=True)
    Traceback (most recent call last):
    ...
    anatosynth_components.errors.ConfigError: dropout must be in [0, 1), got 1.0
    """
    number = check_positive_float(key, value, allow_zero=True)
    if number > 1 or (upper_open and number == 1):
        raise ConfigError(f"{key} must be in [0, 1{')' if upper_open else ']'}, got {value!r}")
    return number


def check_interval(key: str, value: object) -> tuple[float, float]:
    """``[low, high]`` with finite ``low < high`` (an intensity window, for example); ``ConfigError``
    naming ``key`` otherwise.

    >>> check_interval("hu_window", [-1000, 600])
    (-1000.0, 600.0)
    >>> check_interval("hu_window", [600, -1000])
    Traceback (most recent call last):
    ...
    anatosynth_components.errors.ConfigError: hu_window must be [low, high] with low < high, got [600, -1000]
    """
    try:
        low, high = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be [low, high], got {value!r}") from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ConfigError(f"{key} must be [low, high] with low < high, got {value!r}")
    return low, high


def check_choices(key: str, values: Sequence[object], allowed: Sequence[object]) -> None:
    """``values`` is a non-empty selection from ``allowed``; else a ``ConfigError`` naming ``key`` and the
    unknown values.

    >>> check_choices("arms", ["baseline", "mixup"], ("baseline", "synthetic"))
    Traceback (most recent call last):
    ...
    anatosynth_components.errors.ConfigError: arms: unknown ['mixup']; choose from ['baseline', 'synthetic']
    """
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise ConfigError(f"{key}: unknown {bad}; choose from {list(allowed)}")


def check_spatial_dims(spatial_dims: object, key: str = "spatial_dims") -> int:
    """``spatial_dims`` as an int; 2 or 3, else a ``ConfigError`` naming the key."""
    try:
        dims = None if isinstance(spatial_dims, bool) else int(spatial_dims)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        dims = None
    if dims not in (2, 3):
        raise ConfigError(f"{key} must be 2 or 3, got {spatial_dims!r}")
    return dims


def check_spatial_axis(axis: object, key: str = "axis") -> int:
    """``axis`` as an int; a spatial axis 0, 1 or 2 of an (X, Y, Z) volume, else a ``ConfigError``.

    >>> check_spatial_axis(3, "slice_axis")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    anatosynth_components.errors.ConfigError: slice_axis must be a spatial axis 0, 1 or 2 of ..., got 3
    """
    if isinstance(axis, bool) or not _is_int(axis) or int(axis) not in SPATIAL_AXES:
        raise ConfigError(f"{key} must be a spatial axis 0, 1 or 2 of an (X, Y, Z) volume, got {axis!r}")
    return int(axis)


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) or (isinstance(value, float) and value.is_integer())


def check_spatial_size(
    spatial_size: Sequence[int],
    spatial_dims: int,
    multiple: int = 1,
    reason: str = "2 ** the number of resolution levels of the networks",
    alternative: str | None = None,
    fits: Callable[[tuple[int, ...]], bool] | None = None,
) -> tuple[int, ...]:
    """``spatial_size`` as a tuple of ``spatial_dims`` positive sizes, each divisible by ``multiple``;
    the message says why (``reason``), the nearest sizes that are (and that ``fits`` accepts: the
    network's other size needs, see :func:`~anatosynth_components.network_size.smallest_size`), and
    ``alternative`` (another fix).

    >>> check_spatial_size([100, 64], 2, 32, "5 halvings", "a shorter channel_mults")
    ...                    # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    anatosynth_components.errors.ConfigError: spatial_size [100, 64]: every size must be divisible by 32
    (5 halvings); [100] are not: use [96, 64] or [128, 64], or a shorter channel_mults
    """
    try:
        size = tuple(int(s) for s in spatial_size)
    except (TypeError, ValueError):
        raise ConfigError(
            f"spatial_size must be a list of {spatial_dims} sizes, got {spatial_size!r}"
        ) from None
    if len(size) != spatial_dims or min(size) < 1:
        raise ConfigError(f"spatial_size must be {spatial_dims} positive sizes, got {list(size)}")
    bad = [s for s in size if s % multiple]
    if bad:
        from anatosynth_components.network_size import smallest_size  # it imports this module

        fits = fits or (lambda _: True)
        down = tuple(s // multiple * multiple for s in size)
        up = smallest_size(fits, size, multiple) or tuple(-(-s // multiple) * multiple for s in size)
        use = f"{list(down)} or {list(up)}" if min(down) > 0 and fits(down) else f"{list(up)}"
        raise ConfigError(
            f"spatial_size {list(size)}: every size must be divisible by {multiple} ({reason}); {bad} are "
            f"not: use {use}{', or ' + alternative if alternative else ''}"
        )
    return size


def check_channels(channels: Sequence[int], key: str, minimum: int = 2) -> tuple[int, ...]:
    """A sequence of at least ``minimum`` positive channel counts, as a tuple of ints.

    >>> check_channels([8, 16], "registration channels")
    (8, 16)
    """
    try:
        values = tuple(int(c) for c in channels)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a list of channel counts, got {channels!r}") from None
    if len(values) < minimum or min(values) < 1:
        raise ConfigError(f"{key} must hold at least {minimum} positive channel counts, got {list(values)}")
    return values


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

    >>> check_image(np.full((4, 4), np.nan, np.float32), "ct.nii.gz")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    anatosynth_components.errors.DataError: ct.nii.gz: 16 non-finite voxels (16 NaN, 0 infinite) of 16; ...
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
        nan = np.count_nonzero(np.isnan(array))
        raise DataError(
            f"{name}: {bad} non-finite voxels ({nan} NaN, {bad - nan} infinite) of {array.size}; "
            "replace or mask them before computing a pseudo-mask"
        )
    return array


def is_exporting() -> bool:
    """Whether the code runs inside an export (``torch.export`` / the ONNX exporter, or a TorchScript
    trace): data-dependent checks cannot be part of the exported graph and are skipped then."""
    return bool(torch.compiler.is_exporting() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export())


def check_label_ids(labels: torch.Tensor, num_classes: int, what: str = "labels") -> None:
    """``DataError`` naming ``what`` and the ids when a label id of ``labels`` is not in
    ``0 .. num_classes - 1`` (a one-hot ``scatter`` would fail cryptically, or write out of range).

    Skipped while exporting (:func:`is_exporting`): the check reads the data.

    >>> check_label_ids(torch.tensor([[0, 2, 7, 9, 7]]), 3, "label map")
    Traceback (most recent call last):
    ...
    anatosynth_components.errors.DataError: label map: label ids [7, 9] are outside 0..2 (num_classes=3)
    """
    if is_exporting() or labels.numel() == 0:
        return
    low, high = torch.aminmax(labels.detach())
    if int(low) >= 0 and int(high) < num_classes:
        return
    flat = labels.detach().reshape(-1)
    bad = torch.unique(flat[(flat < 0) | (flat >= num_classes)]).tolist()
    shown = ", ".join(str(int(v) if float(v).is_integer() else v) for v in bad[:10])
    more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
    raise DataError(
        f"{what}: label ids [{shown}]{more} are outside 0..{num_classes - 1} (num_classes={num_classes})"
    )


def non_empty(loader: object, key: str) -> None:
    """A torch ``DataLoader`` over a sized dataset must yield at least one batch (an empty one would
    train silently on nothing, e.g. fewer training items than the batch size with ``drop_last``)."""
    dataset = getattr(loader, "dataset", None)
    if dataset is None or not hasattr(dataset, "__len__"):
        return  # not a torch DataLoader over a sized dataset: nothing to check before it runs
    if len(loader) == 0:  # type: ignore[arg-type]
        items = f"{len(dataset)} items, "
        size = getattr(loader, "batch_size", None)
        raise ConfigError(
            f"{key} yields no batch ({items}batch_size {size}, drop_last): use a smaller batch size or "
            "more training data"
        )
