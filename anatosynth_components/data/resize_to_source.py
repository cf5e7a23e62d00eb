"""``ResizeToSourced``: bring a prediction made on the network grid back to the input volume's grid.

A bundle whose preprocessing resizes the label volume to the network's size (ACIS: ``Resized`` /
``ResizeSlicesd`` with nearest neighbour) must return the synthesized image on the input's grid:
MONAI Label's ``Restored`` would resize it with nearest neighbour (right for labels, blocky for an
image) and ``Invertd`` inverts a nearest resize with nearest too.  This resizes ``d[key]`` (C, *S) to
the spatial shape the loader recorded for ``d[source_key]`` (its file's shape), trilinearly with
anti-aliasing when shrinking, and gives it the source's metadata (affine), so writers and MONAI
Label's ``Restored`` find the input's grid.

Example::

    ResizeToSourced("pred", source_key="image")(d)   # d["pred"] (1, 192, 192, 160) -> (1, 122, 101, 30)
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Resize
from monai.utils import convert_to_tensor

from anatosynth_components.errors import DataError


class ResizeToSourced(MapTransform):
    """Resize ``d[key]`` (C, *S) to the original spatial shape of ``d[source_key]``.

    Args:
        keys: keys of the predictions.
        source_key: key of the loaded input volume (a ``MetaTensor`` whose ``meta["spatial_shape"]``
            is its file's shape).
        mode: interpolation (``"trilinear"`` for images).
    """

    def __init__(
        self,
        keys: KeysCollection,
        source_key: str = "image",
        mode: str = "trilinear",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.source_key, self.mode = source_key, mode

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        source = d[self.source_key]
        meta = getattr(source, "meta", None)
        if meta is None or meta.get("spatial_shape") is None:
            raise DataError(
                f"ResizeToSourced: {self.source_key!r} carries no spatial_shape (load it with LoadVolumed)"
            )
        shape = tuple(int(s) for s in np.asarray(meta["spatial_shape"]).reshape(-1).tolist())
        for key in self.key_iterator(d):
            pred = d[key]
            plain = convert_to_tensor(pred, track_meta=False)
            if len(shape) != plain.ndim - 1:
                raise DataError(
                    f"{key} {tuple(plain.shape)} and the source shape {shape} differ in dimensions"
                )
            if tuple(plain.shape[1:]) != shape:
                resize = Resize(shape, mode=self.mode, anti_aliasing=True, dtype=torch.float32)
                with resize.trace_transform(False):
                    plain = torch.as_tensor(resize(plain.float()))
            out = MetaTensor(plain.float(), meta=dict(meta))
            out.affine = torch.as_tensor(
                np.asarray(meta.get("original_affine", meta.get("affine")), dtype=np.float64)
            )
            d[key] = out
        return d
