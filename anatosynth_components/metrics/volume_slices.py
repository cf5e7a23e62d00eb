"""Checks and slicing shared by the whole-volume synthesis metrics.

Every metric here compares a synthetic volume with the real one, both batch-first tensors of shape
(B, 1, X, Y, Z) with values in [0, 1]. AnatoMaskGAN synthesises 2-D slices along ``slice_axis``
(spatial axis 0, 1 or 2, i.e. tensor dimension ``2 + slice_axis``); the per-slice metrics cut the
volumes into those slices, score them as a batch of 2-D images and average the scores per volume.

Foreground slices (the paper's protocol, Eqs. 6-7): given the label map of each volume (same shape,
integer ids, 0 = background), a slice counts when its label map holds at least one labelled voxel;
the per-slice metrics then average over those slices only (:func:`foreground_slices`), so the empty
slices above and below the anatomy, which any model paints black, do not inflate the scores.

>>> x = torch.zeros(2, 1, 4, 5, 6)
>>> to_slices(x, slice_axis=0).shape  # 2 volumes x 4 slices of 5 x 6
torch.Size([8, 1, 5, 6])
>>> per_volume_mean(torch.arange(8.0), batch=2)
tensor([[1.5000],
        [5.5000]])
>>> labels = torch.zeros(2, 1, 4, 5, 6)
>>> labels[0, 0, 1:3] = 1  # volume 0: slices 1 and 2 hold anatomy; volume 1: none
>>> foreground_slices(labels, slice_axis=0)
tensor([[False,  True,  True, False],
        [False, False, False, False]])
>>> per_volume_mean(torch.arange(8.0), batch=2, mask=foreground_slices(labels, slice_axis=0))
tensor([[1.5000],
        [   nan]])
"""

from __future__ import annotations

import torch
from monai.metrics import PSNRMetric
from monai.utils import MetricReduction, convert_to_tensor

from anatosynth_components.checks import check_spatial_axis
from anatosynth_components.errors import DataError


class SliceAxisPSNRMetric(PSNRMetric):
    """MONAI's ``PSNRMetric`` that knows the slice axis of the volumes it scores: the shared base of
    the metrics that compute PSNR slice by slice (``SlicePSNRMetric``) or along the slices
    (``CoherenceMetric``); subclasses write ``_compute_tensor``.

    Args:
        slice_axis: the spatial axis (0, 1 or 2) that indexes the slices.
        max_val, reduction, get_not_nans: as for ``PSNRMetric``.
    """

    def __init__(
        self,
        slice_axis: int = 2,
        max_val: float = 1.0,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__(max_val=max_val, reduction=reduction, get_not_nans=get_not_nans)
        self.slice_axis = check_spatial_axis(slice_axis, "slice_axis")


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


def per_volume_mean(slice_scores: torch.Tensor, batch: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Average per-slice scores (B * S,) or (B * S, 1), ordered as :func:`to_slices`, -> (B, 1).

    With ``mask`` (B, S) only the slices where it is True count; a volume with none gives NaN (the
    reports' summaries ignore NaN).
    """
    scores = slice_scores.reshape(batch, -1)
    if mask is None:
        return scores.mean(dim=1, keepdim=True)
    mask = mask.reshape(batch, -1).to(scores.device)
    total = torch.where(mask, scores, torch.zeros_like(scores)).sum(dim=1, keepdim=True)
    return total / mask.sum(dim=1, keepdim=True).to(scores.dtype)


def check_label_map(label_map: torch.Tensor, like: torch.Tensor, metric: str) -> torch.Tensor:
    """Check that ``label_map`` is a (B, 1, X, Y, Z) tensor of the volumes' shape ``like.shape`` and
    return it without MONAI metadata.

    Raises:
        DataError: not a tensor, or its shape differs from the volumes'.
    """
    if not isinstance(label_map, torch.Tensor):
        raise DataError(f"{metric}: label_map must be a torch.Tensor, got {type(label_map).__name__}")
    if tuple(label_map.shape) != tuple(like.shape):
        raise DataError(
            f"{metric}: the label map {tuple(label_map.shape)} and the volumes {tuple(like.shape)} differ "
            "in shape; pass the label map the volumes were synthesised from"
        )
    return convert_to_tensor(label_map, track_meta=False)


def foreground_slices(label_map: torch.Tensor, slice_axis: int) -> torch.Tensor:
    """(B, S) bool: which slices along ``slice_axis`` of label maps (B, 1, X, Y, Z) hold foreground
    (at least one voxel with a label id other than 0), in :func:`to_slices` order."""
    slices = to_slices(label_map, slice_axis)  # (B * S, 1, H, W)
    return (slices.reshape(len(slices), -1) != 0).any(dim=1).reshape(label_map.shape[0], -1)


def slice_selection(
    y_pred: torch.Tensor, y: torch.Tensor, slice_axis: int, label_map: torch.Tensor | None, metric: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The 2-D slices (N, 1, H, W) of synthetic and real volumes to score, and the (B, S) mask of the
    slices kept: all slices when ``label_map`` is None (mask None), else the foreground ones."""
    pred_slices = to_slices(y_pred.float(), slice_axis)
    real_slices = to_slices(y.float(), slice_axis)
    if label_map is None:
        return pred_slices, real_slices, None
    mask = foreground_slices(check_label_map(label_map, y, metric), slice_axis)
    keep = mask.reshape(-1).to(pred_slices.device)
    return pred_slices[keep], real_slices[keep], mask


def scatter_scores(scores: torch.Tensor, mask: torch.Tensor | None, batch: int) -> torch.Tensor:
    """Per-volume means (B, 1) of the per-slice ``scores`` of :func:`slice_selection`'s slices."""
    scores = scores.reshape(-1)
    if mask is None:
        return per_volume_mean(scores, batch)
    full = torch.zeros(mask.numel(), dtype=scores.dtype, device=scores.device)
    full[mask.reshape(-1).to(scores.device)] = scores
    return per_volume_mean(full, batch, mask)
