"""Cut stacks of ``n`` contiguous slices out of 3-D volumes.

A volume item ``{"image": (C, X, Y, Z), "label": (1, X, Y, Z), "volume": id, ...}`` becomes stack
items ``{"image": (C, n, H, W), "label": (1, n, H, W), "z_index": (n,), "depth": D, "volume": id, ...}``
(other entries of the item, such as ``subject``, are carried along):
the slicing ``axis`` (a spatial axis, 0..2) moves to the first spatial position, ``z_index`` holds
the slices' indices along it in the volume and ``depth`` its length.  3-D noise injection and
whole-volume inference rely on ``z_index`` and ``depth``.  Stacks are plain tensors: the volume's
affine no longer describes them.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable
from monai.utils import convert_to_tensor

from anatosynth_components.checks import check_fraction, check_positive_int, check_spatial_axis
from anatosynth_components.errors import ConfigError, DataError


def stack_starts(depth: int, num_slices: int, stride: int = 1) -> list[int]:
    """First slice of every stack: ``0, stride, 2 * stride, ...`` plus ``depth - num_slices`` so
    that the stacks cover every slice.

    Example::

        stack_starts(10, 4, 3)   # [0, 3, 6]
        stack_starts(10, 4, 4)   # [0, 4, 6]
    """
    if num_slices < 1 or stride < 1:
        raise ConfigError(f"num_slices ({num_slices}) and stride ({stride}) must be >= 1")
    if depth < num_slices:
        raise DataError(f"volume has {depth} slices, fewer than num_slices={num_slices}")
    starts = list(range(0, depth - num_slices + 1, stride))
    if starts[-1] != depth - num_slices:
        starts.append(depth - num_slices)
    return starts


def cut_stack(x: torch.Tensor, axis: int, start: int, num_slices: int) -> torch.Tensor:
    """Slices ``start .. start + num_slices - 1`` along spatial ``axis`` of a channel-first tensor,
    with that axis moved first: (C, X, Y, Z) -> (C, n, H, W)."""
    plain = convert_to_tensor(x, track_meta=False)
    return torch.movedim(plain, axis + 1, 1)[:, start : start + num_slices].contiguous()


class AxisSlicingd(MapTransform):
    """What the transforms that cut channel-first volumes (C, X, Y, Z) along a spatial ``axis`` share
    (the stacks here, the 2-D slices of :mod:`anatosynth_components.acis.slices`): the checked axis, the
    volumes' depth along it, and the labelled voxels of every slice.

    Args:
        keys: keys of the volumes to cut (all must share the spatial shape).
        axis: spatial axis to slice along (0, 1 or 2; 2 is z for RAS volumes).

    Example::

        >>> t = SliceStackd("label", num_slices=2, axis=2)  # a subclass
        >>> label = torch.zeros(1, 2, 3, 4); label[0, :, :, 1] = 1
        >>> t.depth_of({"label": label}), t.foreground_per_slice(label).tolist()
        (4, [0, 6, 0, 0])
    """

    def __init__(self, keys: KeysCollection, axis: int = 2, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.axis = check_spatial_axis(axis)

    def depth_of(self, d: Mapping[Hashable, Any]) -> int:
        """Length along ``axis`` of the volumes of ``d``; ``DataError`` naming the subject when they
        differ in shape or are not 3-D."""
        shapes = {tuple(d[k].shape[1:]) for k in self.key_iterator(d)}
        if len(shapes) != 1:
            raise DataError(
                f"subject {d.get('subject', '?')}: keys {list(self.keys)} differ in shape {shapes}"
            )
        shape = shapes.pop()
        if len(shape) != 3:
            raise DataError(
                f"subject {d.get('subject', '?')}: expected 3-D volumes, got spatial shape {shape}"
            )
        return shape[self.axis]

    def foreground_per_slice(self, label: Any) -> np.ndarray:
        """Non-zero voxels (all channels) of every slice of ``label`` along ``axis``, (depth,) int64."""
        nonzero = torch.movedim(convert_to_tensor(label, track_meta=False) != 0, self.axis + 1, 0)
        return nonzero.flatten(1).sum(1).cpu().numpy()


class SliceStackd(AxisSlicingd):
    """Every stack of a volume (deterministic; for evaluation and inference).

    Args:
        keys: keys of the volumes to cut (all must share the spatial shape).
        num_slices: slices per stack (``n``).
        axis: spatial axis to slice along (0, 1 or 2; 2 is z for RAS volumes).
        stride: step between stack starts; the last stack is aligned to the volume's end.

    Returns:
        a list of stack items (see the module docstring).
    """

    def __init__(
        self,
        keys: KeysCollection,
        num_slices: int,
        axis: int = 2,
        stride: int = 1,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, axis, allow_missing_keys)
        self.num_slices, self.stride = int(num_slices), int(stride)

    def stack(self, d: Mapping[Hashable, Any], start: int, depth: int) -> dict[Hashable, Any]:
        out = {k: v for k, v in d.items() if k not in self.keys}
        for key in self.key_iterator(d):
            out[key] = cut_stack(d[key], self.axis, start, self.num_slices)
        out["z_index"] = torch.arange(start, start + self.num_slices)
        out["depth"] = depth
        return out

    def starts(self, d: Mapping[Hashable, Any], depth: int) -> list[int]:
        try:
            return stack_starts(depth, self.num_slices, self.stride)
        except DataError as err:
            raise DataError(f"subject {d.get('subject', '?')}: {err}") from None

    def __call__(self, data: Mapping[Hashable, Any]) -> list[dict[Hashable, Any]]:
        depth = self.depth_of(data)
        return [self.stack(data, s, depth) for s in self.starts(data, depth)]


class RandSliceStackd(Randomizable, SliceStackd):
    """``num_samples`` random stacks of a volume (for training).

    Starts are drawn uniformly among all ``depth - n + 1`` positions whose label stack has at
    least ``min_foreground`` of its voxels non-zero (all positions when none qualifies).

    Args:
        keys: keys of the volumes to cut.
        num_slices: slices per stack.
        axis: spatial axis to slice along.
        num_samples: stacks per volume.
        label_key: label map used for ``min_foreground``.
        min_foreground: least fraction of labelled voxels in a stack, in [0, 1).
    """

    def __init__(
        self,
        keys: KeysCollection,
        num_slices: int,
        axis: int = 2,
        num_samples: int = 1,
        label_key: str = "label",
        min_foreground: float = 0.0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, num_slices, axis, 1, allow_missing_keys)
        self.num_samples = check_positive_int("num_samples", num_samples)
        self.label_key = label_key
        self.min_foreground = check_fraction("min_foreground", min_foreground, upper_open=True)

    def eligible(self, d: Mapping[Hashable, Any], depth: int) -> np.ndarray:
        starts = np.asarray(self.starts(d, depth))
        label = d.get(self.label_key)
        if self.min_foreground <= 0 or label is None:
            return starts
        window = np.convolve(self.foreground_per_slice(label), np.ones(self.num_slices), mode="valid")
        voxels = label[0].numel() / depth * self.num_slices
        ok = starts[window[starts] >= self.min_foreground * voxels]
        return ok if ok.size else starts

    def __call__(self, data: Mapping[Hashable, Any]) -> list[dict[Hashable, Any]]:
        depth = self.depth_of(data)
        starts = self.eligible(data, depth)
        chosen = self.R.choice(starts, size=self.num_samples, replace=True)
        return [self.stack(data, int(s), depth) for s in chosen]
