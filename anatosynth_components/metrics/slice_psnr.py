"""Slice PSNR, the paper's PSNR (AnatoMaskGAN Eqs. 6-7): per H x W slice, averaged over the slices
that hold anatomy.

For each 2-D slice k along ``slice_axis`` of a synthetic volume ``s`` and the real volume ``r``
(intensities in [0, 1]):

    PSNR_k = 10 log10(max_val^2 / MSE_k),   MSE_k = mean over the slice's H x W pixels of (s - r)^2

and the volume's ``psnr_slice`` is the mean of PSNR_k over the slices whose label map has foreground
(at least one voxel with a label id other than 0). Without a label map every slice counts. This is
not the volume PSNR (one MSE over every voxel, background included, MONAI's ``PSNRMetric``): the
mean of logarithms is not the logarithm of a mean, and empty slices, which any model paints black,
are left out. A slice synthesised exactly gives +inf, so the mean is +inf only if one slice is exact.
"""

from __future__ import annotations

import torch

from anatosynth_components.metrics.volume_slices import (
    SliceAxisPSNRMetric,
    check_volume_pair,
    scatter_scores,
    slice_selection,
)


class SlicePSNRMetric(SliceAxisPSNRMetric):
    """Mean per-slice PSNR (dB) of synthetic vs real volumes (B, 1, X, Y, Z) in [0, 1] -> (B, 1),
    over the foreground slices of ``label_map`` when it is given.

    Call it as ``metric(y_pred, y, label_map=label_map)`` (the label map (B, 1, X, Y, Z) the volumes
    were synthesised from), or attach it with
    :class:`~anatosynth_components.metrics.LabelMapMetricHandler`, which passes the label map. A
    volume without a foreground slice scores NaN.

    Args:
        slice_axis: the spatial axis (0, 1 or 2) the slices were synthesised along.
        max_val: the peak value (1 for images in [0, 1]).
        reduction: how :meth:`aggregate` reduces the per-volume values (MONAI ``MetricReduction``).
        get_not_nans: whether :meth:`aggregate` also returns the count of non-NaN values.

    Raises:
        ConfigError: bad ``slice_axis``.
        DataError: the inputs are not matching one-channel 5-D volumes, or the label map's shape
            differs from theirs.

    Example:
        >>> real = torch.zeros(1, 1, 2, 2, 3)
        >>> synthetic = real.clone()
        >>> synthetic[..., 0] += 0.1  # slice 0: MSE 0.01 -> 20 dB
        >>> synthetic[..., 1] += 0.01  # slice 1: MSE 1e-4 -> 40 dB; slice 2 exact but empty below
        >>> labels = torch.zeros(1, 1, 2, 2, 3)
        >>> labels[..., :2] = 1
        >>> round(float(SlicePSNRMetric(slice_axis=2)(synthetic, real, label_map=labels)), 3)
        30.0
    """

    def _compute_tensor(  # type: ignore[override]
        self, y_pred: torch.Tensor, y: torch.Tensor, label_map: torch.Tensor | None = None
    ) -> torch.Tensor:
        y_pred, y = check_volume_pair(y_pred, y, "slice PSNR", self.slice_axis)
        pred_slices, real_slices, mask = slice_selection(y_pred, y, self.slice_axis, label_map, "slice PSNR")
        # PSNRMetric's own formula, on a batch of 2-D slices: one value per slice, in float64 so that
        # nearly exact slices keep their precision
        per_slice = self._compute_metric(pred_slices.double(), real_slices.double())
        return scatter_scores(per_slice, mask, batch=y.shape[0]).float()
