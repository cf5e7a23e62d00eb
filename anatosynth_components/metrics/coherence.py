"""Inter-slice coherence: does the synthetic volume change from slice to slice like the real one?

Definition. Let ``d(x)[k] = x[k + 1] - x[k]`` be the through-plane intensity difference of a volume
``x`` between neighbouring slices along ``slice_axis`` (k = 0 .. S - 2). The coherence of a
synthetic volume ``s`` against the real volume ``r`` is the PSNR, with peak 1, of ``d(s)`` against
``d(r)``:

    coherence = 10 log10(1 / MSE),  MSE = mean over all voxels of (d(s) - d(r))^2  [dB]

Rationale. A generator that works on 2-D slices can produce slices that each look right, and so
score well on PSNR / SSIM / LPIPS, yet jump from one slice to the next ("flicker"): through-plane
profiles become noisy and reformatted views show stripes. Real anatomy changes smoothly across
slices, so its through-plane difference is small and structured. Comparing d(s) with d(r) measures
exactly that through-plane behaviour: an error that is constant along the axis cancels out, while an
error that alternates between slices is doubled. Higher is better; identical through-plane
differences give +inf. Two synthetic volumes with the same voxel-wise MSE (same PSNR) can differ
widely here: the one whose errors flicker between slices scores lower. This is the score used to
test AnatoMaskGAN's claim of slice continuity (GNN-SIF, 3D-SNI).

Foreground slices. With the label map the volumes were synthesised from (``label_map=``, passed by
:class:`~anatosynth_components.metrics.LabelMapMetricHandler`) only the differences between two
neighbouring slices that both hold foreground count (the slices of ``psnr_slice``); without it every
pair of neighbours counts.
"""

from __future__ import annotations

import math

import torch

from anatosynth_components.metrics.volume_slices import (
    SliceAxisPSNRMetric,
    check_label_map,
    check_volume_pair,
    foreground_slices,
    per_volume_mean,
    to_slices,
)


class CoherenceMetric(SliceAxisPSNRMetric):
    """Inter-slice coherence in dB of synthetic vs real volumes (B, 1, X, Y, Z) in [0, 1] -> (B, 1);
    over the neighbouring foreground slices of ``label_map`` when it is given.

    The PSNR (peak ``max_val``, default 1) of the synthetic volume's through-plane difference
    ``x[..., k + 1] - x[..., k]`` along ``slice_axis`` against the real volume's; see the module
    docstring for the definition and rationale. Needs at least 2 slices.

    Args:
        slice_axis: the spatial axis (0, 1 or 2) the slices were synthesised along.
        max_val: the peak used in the PSNR.
        reduction: how :meth:`aggregate` reduces the per-volume values (MONAI ``MetricReduction``).
        get_not_nans: whether :meth:`aggregate` also returns the count of non-NaN values.

    Raises:
        ConfigError: bad ``slice_axis``.
        DataError: the inputs are not matching one-channel 5-D volumes with 2 or more slices.

    Example:
        >>> real = torch.tensor([0.25, 0.5, 0.5, 0.75]).view(1, 1, 1, 1, 4).expand(1, 1, 3, 3, 4)
        >>> metric = CoherenceMetric(slice_axis=2)
        >>> metric(real + 0.125, real)  # an offset constant along the axis: same differences
        tensor([[inf]])
        >>> flicker = real + 0.125 * torch.tensor([1.0, -1.0, 1.0, -1.0])  # errors of +-0.125
        >>> metric(flicker, real)  # difference errors of 0.25 -> 10 log10(1 / 0.0625)
        tensor([[12.0412]])
        >>> labels = torch.zeros_like(flicker)
        >>> labels[..., 1:3] = 1  # slices 1 and 2 hold anatomy: one pair of neighbours counts
        >>> metric(flicker, real, label_map=labels)
        tensor([[12.0412]])
    """

    def _compute_tensor(  # type: ignore[override]
        self, y_pred: torch.Tensor, y: torch.Tensor, label_map: torch.Tensor | None = None
    ) -> torch.Tensor:
        y_pred, y = check_volume_pair(y_pred, y, "coherence", self.slice_axis, min_slices=2)
        dim = 2 + self.slice_axis
        d_pred, d_real = torch.diff(y_pred.float(), dim=dim), torch.diff(y.float(), dim=dim)
        if label_map is None:
            return self._compute_metric(d_pred, d_real)
        fg = foreground_slices(check_label_map(label_map, y, "coherence"), self.slice_axis)
        pairs = (fg[:, :-1] & fg[:, 1:]).to(y.device)  # (B, S - 1): both neighbours hold foreground
        # mean squared difference error per pair of neighbours (all pairs have the same voxel count)
        sq = to_slices((d_pred.double() - d_real.double()) ** 2, self.slice_axis)
        per_pair = sq.reshape(len(sq), -1).mean(dim=1)
        mse = per_volume_mean(per_pair, batch=y.shape[0], mask=pairs)
        return (20 * math.log10(self.max_val) - 10 * torch.log10(mse)).float()
