"""2-D slices of 3-D volumes that keep their place in space (for the 2-D ACIS bundle, ``acis_penet``).

``RandSlicesd`` (training: random slices, new ones every epoch) and ``Slicesd`` (evaluation: evenly
spaced slices) turn a volume item ``{"image": (C, X, Y, Z), "label": (1, X, Y, Z), ...}`` into slice
items ``{"image": (C, H, W), "label": (1, H, W), "slice_index": k, ...}``.  Unlike the stacks of
:mod:`anatosynth_components.data.slice_stack`, slices stay ``MetaTensor`` s whose affine describes
them: the volume's affine with the in-plane axes first, the slicing axis third and the origin moved to
slice ``k``.  So the in-plane spacing reaches ``RandPseudoMaskd`` (the KDE bandwidth is in mm) and a
2-D NIfTI written with that affine lies where the slice lay.

Example::

    >>> import torch
    >>> from monai.data import MetaTensor
    >>> vol = MetaTensor(torch.rand(1, 8, 6, 5), affine=torch.diag(torch.tensor([2.0, 3.0, 4.0, 1.0])))
    >>> item = Slicesd("image", num_slices=2)({"image": vol})[1]
    >>> tuple(item["image"].shape), item["slice_index"], item["image"].affine[2, 3].item()
    ((1, 8, 6), 3, 12.0)
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import Randomizable
from monai.utils import convert_to_tensor

from anatosynth_components.checks import check_fraction, check_positive_int
from anatosynth_components.data.slice_stack import AxisSlicingd


def slice_affine(affine: torch.Tensor, axis: int, index: int) -> torch.Tensor:
    """4x4 affine of slice ``index`` along spatial ``axis`` of a volume with 4x4 ``affine``: columns of
    the two in-plane axes first, the slice axis third, the origin at the slice."""
    affine = torch.as_tensor(affine, dtype=torch.float64)
    order = [a for a in range(3) if a != axis] + [axis]
    out = torch.eye(4, dtype=torch.float64)
    out[:3, :3] = affine[:3, order]
    out[:3, 3] = affine[:3, 3] + affine[:3, axis] * index
    return out


def cut_slice(x: Any, axis: int, index: int) -> MetaTensor:
    """Slice ``index`` along spatial ``axis`` of a channel-first (C, X, Y, Z) volume -> (C, H, W)."""
    data = torch.select(convert_to_tensor(x, track_meta=False), axis + 1, index).contiguous()
    affine = x.affine if isinstance(x, MetaTensor) else torch.eye(4)
    meta = dict(x.meta) if isinstance(x, MetaTensor) else {}
    meta.pop("affine", None)
    return MetaTensor(data, affine=slice_affine(affine, axis, index), meta=meta)


class Slicesd(AxisSlicingd):
    """``num_slices`` evenly spaced slices of a volume (all slices when None), deterministic.

    Args:
        keys: volume keys (same spatial shape).
        axis: spatial axis to slice along (2: axial for RAS CT).
        num_slices: how many slices; spaced evenly among the eligible ones.
        label_key, min_foreground: only slices whose label has at least this fraction of non-zero
            voxels are eligible (all slices when none qualifies).
    """

    def __init__(
        self,
        keys: KeysCollection,
        axis: int = 2,
        num_slices: int | None = None,
        label_key: str = "label",
        min_foreground: float = 0.0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, axis, allow_missing_keys)
        self.num_slices = None if num_slices is None else check_positive_int("num_slices", num_slices)
        self.label_key = label_key
        self.min_foreground = check_fraction("min_foreground", min_foreground, upper_open=True)

    def eligible(self, d: Mapping[Hashable, Any], depth: int) -> np.ndarray:
        every = np.arange(depth)
        label = d.get(self.label_key)
        if self.min_foreground <= 0 or label is None:
            return every
        fraction = self.foreground_per_slice(label) / (np.prod(label.shape) / depth)
        ok = every[fraction >= self.min_foreground]
        return ok if ok.size else every

    def cut(self, d: Mapping[Hashable, Any], index: int) -> dict[Hashable, Any]:
        out = {k: v for k, v in d.items() if k not in self.keys}
        for key in self.key_iterator(d):
            out[key] = cut_slice(d[key], self.axis, index)
        out["slice_index"] = int(index)
        return out

    def choose(self, candidates: np.ndarray) -> np.ndarray:
        if self.num_slices is None or self.num_slices >= candidates.size:
            return candidates
        positions = np.linspace(0, candidates.size - 1, self.num_slices + 2)[1:-1]
        return candidates[np.round(positions).astype(int)]

    def __call__(self, data: Mapping[Hashable, Any]) -> list[dict[Hashable, Any]]:
        depth = self.depth_of(data)
        return [self.cut(data, int(k)) for k in self.choose(self.eligible(data, depth))]


class RandSlicesd(Randomizable, Slicesd):
    """``num_samples`` slices drawn uniformly (with replacement) among the eligible slices."""

    def __init__(
        self,
        keys: KeysCollection,
        axis: int = 2,
        num_samples: int = 1,
        label_key: str = "label",
        min_foreground: float = 0.0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, axis, None, label_key, min_foreground, allow_missing_keys)
        self.num_samples = check_positive_int("num_samples", num_samples)

    def choose(self, candidates: np.ndarray) -> np.ndarray:
        return self.R.choice(candidates, size=self.num_samples, replace=True)
