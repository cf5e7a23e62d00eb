"""Whole-volume PSNR: one value per volume from the MSE over all of its voxels.

This is MONAI's :class:`~monai.metrics.PSNRMetric` (``max_val`` 1 for images in [0, 1]) with the
volume checks of this package: PSNR = 10 log10(max_val^2 / MSE), MSE averaged over every voxel of
the (1, X, Y, Z) volume, not over slices. It is +inf only when the synthetic volume equals the
real one exactly (MSE 0); any difference, however small, gives a finite value.
"""

from __future__ import annotations

import torch
from monai.metrics import PSNRMetric
from monai.utils import MetricReduction

from anatosynth_components.metrics.volume_slices import check_volume_pair, plain_tensor


class VolumePSNRMetric(PSNRMetric):
    """PSNR in dB of synthetic vs real volumes (B, 1, X, Y, Z) in [0, 1] -> (B, 1).

    Args:
        max_val: the peak signal value (the data range); 1 for images in [0, 1].
        reduction: how :meth:`aggregate` reduces the per-volume values (MONAI ``MetricReduction``).
        get_not_nans: whether :meth:`aggregate` also returns the count of non-NaN values.

    Raises:
        DataError: the inputs are not matching one-channel 5-D volumes.

    Example:
        >>> real = torch.full((1, 1, 4, 4, 3), 0.5)
        >>> metric = VolumePSNRMetric()
        >>> metric(real + 0.1, real)  # MSE 0.01 -> 20 dB
        tensor([[20.0000]])
        >>> round(float(metric.aggregate()), 4)
        20.0
    """

    def __init__(
        self,
        max_val: float = 1.0,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__(max_val=max_val, reduction=reduction, get_not_nans=get_not_nans)

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        y_pred, y = plain_tensor(y_pred), plain_tensor(y)
        check_volume_pair(y_pred, y, "PSNR")
        return self._compute_metric(y_pred.float(), y.float())
