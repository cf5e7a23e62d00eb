"""Sample diversity as the mean pairwise MS-SSIM of a set of generated images (lower = more diverse).

For K sampled images, every one of the K (K - 1) / 2 unordered pairs is scored with MONAI's
:class:`~monai.metrics.MultiScaleSSIMMetric` (Wang, Simoncelli & Bovik 2003; data range 1, Gaussian
window ``kernel_size`` with sigma 1.5, k1 0.01, k2 0.03) and the scores are averaged.  1 means every
pair is identical (a collapsed generator); unrelated images score far lower.  This is the diversity
measure of GAN papers that report "mean pairwise MS-SSIM" of samples (Odena et al. 2017, AC-GAN).

**Scales.**  MS-SSIM computes SSIM / contrast terms at ``L`` scales, halving the image (2 x 2 average
pooling) between scales; the coarsest scale must still hold one window, so every spatial side ``S``
must satisfy ``S >= kernel_size * 2 ** (L - 1)``.  MONAI additionally checks
``S // max(1, L - 1) ** 2 > kernel_size - 1`` (its own bound; equal to the first one for L = 1, 3, 5,
stricter for L = 4).  :func:`ms_ssim_levels` picks the largest ``L <= max_levels`` (5, Wang's) that
passes both for every side, and :func:`ms_ssim_weights` takes the first ``L`` of Wang's five exponents
(0.0448, 0.2856, 0.3001, 0.2363, 0.1333; finest scale first) renormalised to sum to 1, so identical
images still score exactly 1.  With kernel 11: 2-D 256 x 256 -> 5 scales, 32 x 32 -> 2, 16 x 16 -> 1
(plain SSIM); 3-D 192 x 192 x 160 -> 4.  A side below ``kernel_size`` cannot hold even one window:
:class:`~anatosynth_components.errors.DataError` naming the size and the kernel.

Example:
    >>> g = torch.Generator().manual_seed(0)
    >>> images = torch.rand(4, 1, 32, 32, generator=g)
    >>> ms_ssim_levels((32, 32)), [round(w, 4) for w in ms_ssim_weights(2)]
    (2, [0.1356, 0.8644])
    >>> round(mean_pairwise_ms_ssim(images.new_ones(3, 1, 32, 32) * 0.5), 6)  # identical: collapse
    1.0
    >>> mean_pairwise_ms_ssim(images) < 0.2  # independent noise images: diverse
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.metrics import MultiScaleSSIMMetric

from anatosynth_components.checks import check_positive_int
from anatosynth_components.errors import DataError

#: Wang et al.'s MS-SSIM exponents, finest scale first (MONAI's default ``weights``)
WANG_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _fits(size: int, kernel_size: int, levels: int) -> bool:
    """Whether a side of ``size`` voxels supports ``levels`` scales (ours and MONAI's bound)."""
    return size >= kernel_size * 2 ** (levels - 1) and size // max(1, levels - 1) ** 2 > kernel_size - 1


def ms_ssim_levels(spatial_size: Sequence[int], kernel_size: int = 11, max_levels: int = 5) -> int:
    """The most MS-SSIM scales (``<= max_levels``) that images of ``spatial_size`` support.

    Raises:
        DataError: a side is smaller than ``kernel_size`` (not even one scale fits).
        ConfigError: ``kernel_size`` or ``max_levels`` is not a positive integer (``max_levels <= 5``).

    >>> ms_ssim_levels((256, 256)), ms_ssim_levels((192, 192, 160)), ms_ssim_levels((16, 16))
    (5, 4, 1)
    >>> ms_ssim_levels((8, 8))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    anatosynth_components.errors.DataError: MS-SSIM: images of spatial size (8, 8) are too small for ...
    """
    kernel_size = check_positive_int("kernel_size", kernel_size)
    max_levels = check_positive_int("max_levels", max_levels)
    if max_levels > len(WANG_WEIGHTS):
        max_levels = len(WANG_WEIGHTS)
    size = tuple(int(s) for s in spatial_size)
    levels = 0
    for candidate in range(1, max_levels + 1):
        if all(_fits(s, kernel_size, candidate) for s in size):
            levels = candidate
    if levels == 0:
        raise DataError(
            f"MS-SSIM: images of spatial size {size} are too small for kernel_size {kernel_size}: even one "
            f"scale needs every side >= {kernel_size} (a smaller kernel_size, or larger images)"
        )
    return levels


def ms_ssim_weights(levels: int) -> tuple[float, ...]:
    """The first ``levels`` of Wang's exponents (finest first), renormalised to sum to 1.

    >>> ms_ssim_weights(1), sum(ms_ssim_weights(3))
    ((1.0,), 1.0)
    """
    levels = check_positive_int("levels", levels)
    chosen = WANG_WEIGHTS[: min(levels, len(WANG_WEIGHTS))]
    total = sum(chosen)
    return tuple(w / total for w in chosen)


def pairwise_ms_ssim(
    images: torch.Tensor,
    kernel_size: int = 11,
    max_levels: int = 5,
    data_range: float = 1.0,
    pair_batch: int = 16,
) -> torch.Tensor:
    """MS-SSIM of every unordered pair of ``images`` (K, C, *S) (2-D or 3-D, K >= 2).

    Returns:
        (K (K - 1) / 2,) float32 on ``images``' device, the pairs in the order of
        ``itertools.combinations(range(K), 2)``: (0, 1), (0, 2), ..., (K - 2, K - 1).

    Args:
        images: the samples, values in ``[0, data_range]``.
        kernel_size: Gaussian window size (sigma 1.5).
        max_levels: most scales used (:func:`ms_ssim_levels` may use fewer for small images).
        data_range: value range of the images.
        pair_batch: pairs scored per call of the metric (bounds memory for 3-D volumes).

    Raises:
        DataError: fewer than 2 images, not (K, C, *S) with 2 or 3 spatial dims, or too small.
    """
    if images.ndim not in (4, 5):
        raise DataError(
            f"MS-SSIM diversity: images must be (K, C, H, W) or (K, C, H, W, D), got {tuple(images.shape)}"
        )
    count = images.shape[0]
    if count < 2:
        raise DataError(f"MS-SSIM diversity needs at least 2 images to pair, got {count}")
    pair_batch = check_positive_int("pair_batch", pair_batch)
    levels = ms_ssim_levels(images.shape[2:], kernel_size, max_levels)
    metric = MultiScaleSSIMMetric(
        spatial_dims=images.ndim - 2,
        data_range=data_range,
        kernel_size=kernel_size,
        weights=ms_ssim_weights(levels),
    )
    first, second = torch.triu_indices(count, count, offset=1, device=images.device)
    images = images.float()
    scores = [
        metric(y_pred=images[first[k : k + pair_batch]], y=images[second[k : k + pair_batch]]).reshape(-1)
        for k in range(0, first.numel(), pair_batch)
    ]
    metric.reset()
    return torch.cat(scores)


def mean_pairwise_ms_ssim(
    images: torch.Tensor,
    kernel_size: int = 11,
    max_levels: int = 5,
    data_range: float = 1.0,
    pair_batch: int = 16,
) -> float:
    """The mean of :func:`pairwise_ms_ssim`: the diversity of a set of samples (1 = all identical,
    lower = more diverse)."""
    return float(pairwise_ms_ssim(images, kernel_size, max_levels, data_range, pair_batch).mean())
