"""Real (image, label) batches for the registration trainer and the refiner, checked on arrival.

Example::

    >>> image, label = real_batch({"image": torch.rand(2, 1, 8, 8), "label": torch.zeros(2, 1, 8, 8)}, "cpu")
    >>> image.dtype, label.dtype
    (torch.float32, torch.int64)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from monai.utils import convert_to_tensor

from anatosynth_components.errors import DataError


def _plain(value: Any, key: str) -> torch.Tensor:
    if value is None:
        raise DataError(f"batch has no '{key}' entry")
    return convert_to_tensor(value, track_meta=False)


def real_batch(
    batchdata: Mapping[str, Any], device: torch.device | str, non_blocking: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """``batchdata["image"]`` (B, 1, *S) as float and ``batchdata["label"]`` (B, 1, *S) as long ids.

    Raises a ``DataError`` when an entry is missing, the shapes differ or are not (B, 1, *S) with 2 or 3
    spatial dims, the image is not finite or the label holds non-integer values.
    """
    if batchdata is None:
        raise ValueError("must provide batch data for current iteration.")
    image = _plain(batchdata.get("image"), "image").to(device=device, non_blocking=non_blocking).float()
    label = _plain(batchdata.get("label"), "label").to(device=device, non_blocking=non_blocking)
    if image.ndim not in (4, 5) or image.shape[1] != 1:
        raise DataError(
            f"batch 'image' must be (B, 1, *S) with 2 or 3 spatial dims, got {tuple(image.shape)}"
        )
    if label.shape != image.shape:
        raise DataError(
            f"batch 'label' {tuple(label.shape)} and 'image' {tuple(image.shape)} differ in shape"
        )
    if not torch.isfinite(image).all():
        raise DataError("batch 'image' holds NaN or infinite values")
    if label.is_floating_point() and not torch.equal(label, label.round()):
        raise DataError("batch 'label' holds non-integer values; labels must be class ids")
    return image, label.long()
