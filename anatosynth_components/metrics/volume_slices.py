"""Checks and slicing shared by the whole-volume synthesis metrics.

Every metric here compares a synthetic volume with the real one, both batch-first tensors of shape
(B, 1, X, Y, Z) with values in [0, 1]. AnatoMaskGAN synthesises 2-D slices along ``slice_axis``
(spatial axis 0, 1 or 2, i.e. tensor dimension ``2 + slice_axis``); the per-slice metrics cut the
volumes into those slices, score them as a batch of 2-D images and average the scores per volume.

>>> x = torch.zeros(2, 1, 4, 5, 6)
>>> to_slices(x, slice_axis=0).shape  # 2 volumes x 4 slices of 5 x 6
torch.Size([8, 1, 5, 6])
>>> per_volume_mean(torch.arange(8.0), batch=2)
tensor([[1.5000],
        [5.5000]])
"""

from __future__ import annotations

import torch
from monai.utils import convert_to_tensor

from anatosynth_components.errors import DataError


def check_volume_pair(
    y_pred: torch.Tensor, y: torch.Tensor, metric: str, slice_axis: int | None = None, min_slices: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check that ``y_pred`` (synthetic) and ``y`` (real) are matching (B, 1, X, Y, Z) tensors and
    return them without MONAI metadata (``MetaTensor`` -> ``torch.Tensor``, sharing the data).

    MONAI's metrics accept any matching shapes; these checks name the metric and what a whole-volume
    synthesis metric expects, so a 4-D batch of slices is refused instead of scored.

    Args:
        y_pred: synthetic volumes, (B, 1, X, Y, Z).
        y: real volumes, same shape.
        metric: the metric's name, used in the messages.
        slice_axis: if given, the axis the volumes are sliced along; it must hold ``min_slices``.
        min_slices: the fewest slices along ``slice_axis`` the metric can work with.

    Returns:
        ``(y_pred, y)`` as plain tensors.

    Raises:
        DataError: not tensors, not 5-D, not one channel, shapes differ, or too few slices.
    """
    for name, t in (("y_pred (synthetic)", y_pred), ("y (real)", y)):
        if not isinstance(t, torch.Tensor):
            raise DataError(f"{metric}: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim != 5:
            raise DataError(
                f"{metric}: {name} must be a batch of whole volumes (B, 1, X, Y, Z), got shape "
                f"{tuple(t.shape)} ({t.ndim}-D)"
            )
        if t.shape[1] != 1:
            raise DataError(f"{metric}: {name} must have 1 channel, got shape {tuple(t.shape)}")
    if y_pred.shape != y.shape:
        raise DataError(
            f"{metric}: synthetic and real volumes differ in shape: y_pred {tuple(y_pred.shape)} "
            f"vs y {tuple(y.shape)}"
        )
    if slice_axis is not None and y.shape[2 + slice_axis] < min_slices:
        raise DataError(
            f"{metric}: needs at least {min_slices} slices along slice_axis {slice_axis}, the volumes "
            f"have shape {tuple(y.shape)}"
        )
    return convert_to_tensor(y_pred, track_meta=False), convert_to_tensor(y, track_meta=False)


def to_slices(x: torch.Tensor, slice_axis: int) -> torch.Tensor:
    """Cut volumes (B, C, X, Y, Z) into 2-D slices along ``slice_axis`` -> (B * S, C, H, W).

    Slices of volume b are rows ``b * S`` .. ``(b + 1) * S - 1``, in order along the axis.
    """
    b, c = x.shape[:2]
    moved = x.movedim(2 + slice_axis, 1)  # (B, S, C, H, W)
    return moved.reshape(b * moved.shape[1], c, *moved.shape[3:])


def per_volume_mean(slice_scores: torch.Tensor, batch: int) -> torch.Tensor:
    """Average per-slice scores (B * S,) or (B * S, 1), ordered as :func:`to_slices`, -> (B, 1)."""
    return slice_scores.reshape(batch, -1).mean(dim=1, keepdim=True)
