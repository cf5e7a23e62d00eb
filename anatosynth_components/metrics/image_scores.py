"""Per-image PSNR and SSIM of reconstructed images (ACIS Table 2), with MONAI's metrics.

- PSNR: MONAI ``PSNRMetric(max_val=data_range)``, 10 log10(max_val^2 / MSE) with the MSE over
  every pixel of one image.
- SSIM: MONAI ``SSIMMetric(data_range, spatial_dims)``, Gaussian window 11 with sigma 1.5,
  k1 0.01, k2 0.03, the SSIM map averaged over the valid window positions (ref. [34] of the paper,
  Wang et al. 2004).

Both take batches (B, 1, *spatial) and return one value per image.

Example:
    >>> real = torch.full((1, 1, 16, 16), 0.5)
    >>> [round(v, 4) for v in image_scores(real + 0.1, real)["psnr"]]  # MSE 0.01 -> 20 dB
    [20.0]
"""

from __future__ import annotations

import torch
from monai.metrics import PSNRMetric, SSIMMetric

from anatosynth_components.errors import DataError


def image_scores(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> dict[str, list[float]]:
    """``{"psnr": [...], "ssim": [...]}``, one value per image of the batch."""
    if pred.shape != target.shape or pred.ndim not in (4, 5) or pred.shape[1] != 1:
        raise DataError(
            f"image scores: expected matching one-channel batches, got {tuple(pred.shape)} "
            f"and {tuple(target.shape)}"
        )
    pred, target = pred.float(), target.float()
    psnr = PSNRMetric(max_val=data_range, reduction="none")(pred, target)
    ssim = SSIMMetric(spatial_dims=pred.ndim - 2, data_range=data_range, reduction="none")(pred, target)
    return {"psnr": [float(v) for v in psnr.flatten()], "ssim": [float(v) for v in ssim.flatten()]}
