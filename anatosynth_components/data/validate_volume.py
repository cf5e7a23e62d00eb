"""``ValidateVolumed``: refuse a volume pair that would silently train on wrong data."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform
from monai.utils import convert_to_tensor

from anatosynth_components.data.label_ids import id_ranges, id_sample
from anatosynth_components.errors import DataError


def source_name(x: Any, fallback: str) -> str:
    """The file a loaded ``MetaTensor`` came from, for error messages."""
    if isinstance(x, MetaTensor):
        return str(x.meta.get("filename_or_obj", fallback))
    return fallback


class ValidateVolumed(MapTransform):
    """Check a loaded (image, label) pair; every failure raises a ``DataError`` naming the files.

    Checks, in order:

    - both are ``spatial_dims``-dimensional with one channel (a 4-D or 2-D file is refused);
    - they have the same spatial shape and (when both carry one) the same affine, within ``affine_atol``;
    - the image has only finite values;
    - label values are integers and (when ``label_ids`` is given) in ``{0} | label_ids``; the message
      shows at most 10 unknown ids and their count, and the allowed set exactly
      (``a.nii.gz: label ids [36, 37] are not in the configured set 0..35``).

    Args:
        image_key: key of the image (may be absent when ``allow_missing_keys``); ``None`` for
            label-only items (inference reads label volumes alone).
        label_key: key of the label map (``None`` for image-only datasets).
        label_ids: the allowed non-background ids (e.g. ``range(1, 36)``); ``None`` skips that check.
        spatial_dims: expected number of spatial dimensions.
        affine_atol: tolerance of the affine comparison, in mm.

    Example::

        ValidateVolumed("image", "label", label_ids=range(1, 14))(loaded)   # returns ``loaded``
    """

    def __init__(
        self,
        image_key: str | None = "image",
        label_key: str | None = "label",
        label_ids: Iterable[int] | None = None,
        spatial_dims: int = 3,
        affine_atol: float = 1e-3,
        allow_missing_keys: bool = False,
    ) -> None:
        keys = [k for k in (image_key, label_key) if k is not None]
        super().__init__(keys, allow_missing_keys)
        self.image_key, self.label_key = image_key, label_key
        self.label_ids = None if label_ids is None else {int(i) for i in label_ids}
        self.spatial_dims = spatial_dims
        self.affine_atol = affine_atol

    def _check_dims(self, x: torch.Tensor, name: str, key: str) -> None:
        if x.ndim != self.spatial_dims + 1 or x.shape[0] != 1:
            raise DataError(
                f"{name}: {key} has shape {tuple(x.shape)} (channel first); expected one channel and "
                f"{self.spatial_dims} spatial dimensions"
            )

    def _check_pair(self, image: torch.Tensor, label: torch.Tensor, iname: str, lname: str) -> None:
        if image.shape[1:] != label.shape[1:]:
            raise DataError(
                f"image {iname} has spatial shape {tuple(image.shape[1:])} but label {lname} has "
                f"{tuple(label.shape[1:])}"
            )
        if isinstance(image, MetaTensor) and isinstance(label, MetaTensor):
            a, b = np.asarray(image.affine), np.asarray(label.affine)
            if not np.allclose(a, b, atol=self.affine_atol):
                raise DataError(
                    f"image {iname} and label {lname} have different affines:\n"
                    f"{np.round(a, 4)}\nvs\n{np.round(b, 4)}"
                )

    def _check_label_values(self, label: torch.Tensor, lname: str) -> None:
        values = torch.unique(convert_to_tensor(label, track_meta=False))
        if values.is_floating_point() and not torch.all(values == torch.round(values)):
            bad = values[values != torch.round(values)][:5].tolist()
            raise DataError(f"{lname}: label map has non-integer values, e.g. {bad}")
        if self.label_ids is not None:
            allowed = self.label_ids | {0}
            unknown = {int(v) for v in values.tolist()} - allowed
            if unknown:
                shown, expected = id_sample(unknown), id_ranges(allowed)
                raise DataError(f"{lname}: label ids {shown} are not in the configured set {expected}")

    def __call__(self, data: Mapping[Hashable, Any]) -> Mapping[Hashable, Any]:
        image = data.get(self.image_key) if self.image_key else None
        label = data.get(self.label_key) if self.label_key else None
        for key, value in ((self.image_key, image), (self.label_key, label)):
            if key and value is None and not self.allow_missing_keys:
                raise DataError(f"item {dict(data).get('subject', '?')}: no {key!r} key")
        iname = source_name(image, str(self.image_key))
        lname = source_name(label, str(self.label_key))
        if image is not None:
            self._check_dims(image, iname, str(self.image_key))
            if not torch.isfinite(image).all():
                raise DataError(f"{iname}: image holds NaN or infinite values")
        if label is not None:
            self._check_dims(label, lname, str(self.label_key))
            self._check_label_values(label, lname)
        if image is not None and label is not None:
            self._check_pair(image, label, iname, lname)
        return data
