"""Base of the per-slice perceptual metrics (LPIPS, ST-LPIPS): volumes -> slices -> network -> mean.

A perceptual network compares RGB images in [-1, 1]. The volumes (B, 1, X, Y, Z) in [0, 1] are cut
into slices along ``slice_axis``, mapped to [-1, 1] (2 x - 1), repeated to 3 channels, scored in
batches of ``slice_batch`` slices, and the scores averaged per volume. With the label map the volumes
were synthesised from (``label_map=``, passed by
:class:`~anatosynth_components.metrics.LabelMapMetricHandler`) only the slices whose label map holds
foreground are scored, the slices of ``psnr_slice``. Subclasses build the network.
"""

from __future__ import annotations

import torch
from monai.metrics.regression import RegressionMetric
from monai.utils import MetricReduction
from torch import nn

from anatosynth_components.checks import check_positive_int, check_spatial_axis
from anatosynth_components.errors import DataError
from anatosynth_components.metrics.volume_slices import check_volume_pair, scatter_scores, slice_selection


class PerceptualSliceMetric(RegressionMetric):
    """Mean over slices of a perceptual distance ``network(a, b) -> (N, 1, 1, 1)``; (B, 1) per call.

    Args:
        network: the distance network, taking two (N, 3, H, W) batches in [-1, 1]; it is put in
            eval mode, frozen, and moved to the inputs' device when needed.
        name: the metric's display name, used in messages.
        slice_axis: the spatial axis (0, 1 or 2) the slices were synthesised along.
        slice_batch: how many slices go through the network at once (bounds memory).
        min_slice_size: the smallest in-plane slice size the network accepts (checked up front).
        reduction: how :meth:`aggregate` reduces the per-volume values (MONAI ``MetricReduction``).
        get_not_nans: whether :meth:`aggregate` also returns the count of non-NaN values.

    Example:
        >>> class L1(torch.nn.Module):  # a stand-in distance: mean absolute difference per image
        ...     def forward(self, a, b):
        ...         return (a - b).abs().mean(dim=(1, 2, 3), keepdim=True)
        >>> metric = PerceptualSliceMetric(L1(), "L1")
        >>> real = torch.zeros(1, 1, 4, 4, 3)
        >>> metric(real + 0.25, real)  # 0.25 in [0, 1] is 0.5 in [-1, 1]
        tensor([[0.5000]])
        >>> labels = torch.zeros_like(real)
        >>> labels[..., 1] = 3  # only slice 1 holds anatomy
        >>> synthetic = real.clone()
        >>> synthetic[..., 1] = 0.25
        >>> metric(synthetic, real, label_map=labels)  # slices 0 and 2 (exact, empty) left out
        tensor([[0.5000]])
    """

    def __init__(
        self,
        network: nn.Module,
        name: str,
        slice_axis: int = 2,
        slice_batch: int = 32,
        min_slice_size: int = 1,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__(reduction=reduction, get_not_nans=get_not_nans)
        self.slice_axis = check_spatial_axis(slice_axis, "slice_axis")
        self.slice_batch = check_positive_int(f"{name}: slice_batch", slice_batch)
        self.min_slice_size = min_slice_size
        self.name = name
        self.network = network.eval().requires_grad_(False)

    def _network_on(self, device: torch.device) -> nn.Module:
        first = next(iter(self.network.parameters()), None)
        if first is not None and first.device != device:
            self.network.to(device)
        return self.network

    def _compute_tensor(  # type: ignore[override]
        self, y_pred: torch.Tensor, y: torch.Tensor, label_map: torch.Tensor | None = None
    ) -> torch.Tensor:
        y_pred, y = check_volume_pair(y_pred, y, self.name, self.slice_axis)
        return self._compute_metric(y_pred, y, label_map)

    def _compute_metric(
        self, y_pred: torch.Tensor, y: torch.Tensor, label_map: torch.Tensor | None = None
    ) -> torch.Tensor:
        pred_slices, real_slices, mask = slice_selection(y_pred, y, self.slice_axis, label_map, self.name)
        if min(real_slices.shape[2:]) < self.min_slice_size:
            raise DataError(
                f"{self.name}: slices along slice_axis {self.slice_axis} are {tuple(real_slices.shape[2:])}, "
                f"smaller than the {self.min_slice_size} x {self.min_slice_size} its network accepts "
                f"(volume shape {tuple(y.shape)})"
            )
        network = self._network_on(y.device)
        scores = []
        with torch.no_grad():
            for i in range(0, len(real_slices), self.slice_batch):
                a = pred_slices[i : i + self.slice_batch].mul(2).sub(1).expand(-1, 3, -1, -1)
                b = real_slices[i : i + self.slice_batch].mul(2).sub(1).expand(-1, 3, -1, -1)
                scores.append(network(a, b).reshape(-1).float())
        scores = torch.cat(scores) if scores else real_slices.new_zeros(0)
        return scatter_scores(scores, mask, batch=y.shape[0])
