"""Slice SSIM: the mean over a volume's 2-D slices of MONAI's 2-D SSIM.

The paper scores 2-D slices (224 x 224), so a volume's SSIM is the average of the 2-D SSIM of each
synthetic slice against the real slice at the same position along ``slice_axis``. The 2-D SSIM is
MONAI's (:class:`~monai.metrics.SSIMMetric` with ``spatial_dims=2``): data range 1, Gaussian window
11 x 11 with sigma 1.5, k1 0.01, k2 0.03, SSIM map averaged over the valid (unpadded) window
positions. With the label map the volumes were synthesised from (``label_map=``, passed by
:class:`~anatosynth_components.metrics.LabelMapMetricHandler`), only the slices whose label map holds
foreground count, as for ``psnr_slice``; without it every slice counts, background-only slices
included (they score 1 when both are flat and equal).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.metrics import SSIMMetric
from monai.metrics.regression import KernelType
from monai.utils import MetricReduction

from anatosynth_components.checks import check_positive_int, check_spatial_axis
from anatosynth_components.errors import DataError
from anatosynth_components.metrics.volume_slices import check_volume_pair, scatter_scores, slice_selection


class SliceSSIMMetric(SSIMMetric):
    """Mean 2-D SSIM over the slices of volumes (B, 1, X, Y, Z) in [0, 1] -> (B, 1); over the
    foreground slices of ``label_map`` when it is given (``metric(y_pred, y, label_map=...)``).

    Args:
        slice_axis: the spatial axis (0, 1 or 2) the slices were synthesised along.
        data_range: value range of the images.
        kernel_type: ``"gaussian"`` or ``"uniform"`` window.
        win_size: window size (both in-plane axes); slices must be at least this big.
        kernel_sigma: Gaussian window sigma.
        k1, k2: SSIM stability constants.
        slice_batch: how many slices go through the SSIM at once (bounds memory); ``None`` = all.
        reduction: how :meth:`aggregate` reduces the per-volume values (MONAI ``MetricReduction``).
        get_not_nans: whether :meth:`aggregate` also returns the count of non-NaN values.

    Raises:
        ConfigError: bad ``slice_axis`` or ``slice_batch``.
        DataError: the inputs are not matching one-channel 5-D volumes, or the slices are smaller
            than the window.

    Example:
        >>> real = torch.rand(2, 1, 16, 16, 5, generator=torch.Generator().manual_seed(0))
        >>> metric = SliceSSIMMetric(slice_axis=2)
        >>> metric(real, real)  # identical volumes
        tensor([[1.],
                [1.]])
        >>> bool((metric(0.5 * real, real) < 1).all())
        True
        >>> labels = torch.zeros_like(real)
        >>> labels[..., 2] = 1  # only slice 2 holds anatomy
        >>> synthetic = real.clone()
        >>> synthetic[..., 2] = 0.5 * real[..., 2]
        >>> bool((metric(synthetic, real, label_map=labels) < metric(synthetic, real)).all())
        True
    """

    def __init__(
        self,
        slice_axis: int = 2,
        data_range: float = 1.0,
        kernel_type: KernelType | str = KernelType.GAUSSIAN,
        win_size: int | Sequence[int] = 11,
        kernel_sigma: float | Sequence[float] = 1.5,
        k1: float = 0.01,
        k2: float = 0.03,
        slice_batch: int | None = 64,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__(
            spatial_dims=2,
            data_range=data_range,
            kernel_type=kernel_type,
            win_size=win_size,
            kernel_sigma=kernel_sigma,
            k1=k1,
            k2=k2,
            reduction=reduction,
            get_not_nans=get_not_nans,
        )
        self.slice_axis = check_spatial_axis(slice_axis, "slice_axis")
        self.slice_batch = None if slice_batch is None else check_positive_int("slice_batch", slice_batch)

    def _compute_tensor(  # type: ignore[override]
        self, y_pred: torch.Tensor, y: torch.Tensor, label_map: torch.Tensor | None = None
    ) -> torch.Tensor:
        y_pred, y = check_volume_pair(y_pred, y, "SSIM", self.slice_axis)
        pred_slices, real_slices, mask = slice_selection(y_pred, y, self.slice_axis, label_map, "SSIM")
        if any(s < k for s, k in zip(real_slices.shape[2:], self.kernel_size, strict=True)):
            raise DataError(
                f"SSIM: slices along slice_axis {self.slice_axis} are {tuple(real_slices.shape[2:])}, "
                f"smaller than the {tuple(self.kernel_size)} SSIM window (volume shape {tuple(y.shape)})"
            )
        step = self.slice_batch or max(len(real_slices), 1)
        scores = [
            self._compute_metric(pred_slices[i : i + step], real_slices[i : i + step]).reshape(-1)
            for i in range(0, len(real_slices), step)
        ]
        scores = torch.cat(scores) if scores else real_slices.new_zeros(0)
        return scatter_scores(scores, mask, batch=y.shape[0])
