"""What each reported synthesis metric means, in one sentence or two, keyed by its report name.

The evaluation report (:class:`~anatosynth_components.anatomask.report.SynthesisReport`)
copies these into ``metrics.json`` so the numbers carry their definitions. The keys are the names
the bundles give the metric handlers.

>>> sorted(METRIC_DEFINITIONS)
['coherence', 'lpips', 'psnr', 'ssim', 'st_lpips']
"""

from __future__ import annotations

METRIC_DEFINITIONS: dict[str, str] = {
    "psnr": (
        "Volume PSNR in dB, data range 1: 10 log10(1 / MSE) with the MSE over all voxels of the "
        "synthetic vs the real volume (higher is better; +inf only for identical volumes)."
    ),
    "ssim": (
        "Slice SSIM: mean over the volume's 2-D slices along slice_axis of MONAI's 2-D SSIM "
        "(data range 1, Gaussian window 11, sigma 1.5, k1 0.01, k2 0.03); higher is better, 1 = identical."
    ),
    "coherence": (
        "Inter-slice coherence in dB: PSNR (peak 1) of the synthetic volume's through-plane difference "
        "x[k+1] - x[k] along slice_axis against the real volume's. Higher = the synthetic slices change "
        "from one to the next the way the real anatomy does; a generator whose slices flicker scores low "
        "even when its PSNR is good (+inf for identical through-plane differences)."
    ),
    "lpips": (
        "LPIPS v0.1 (AlexNet backbone, ImageNet weights): mean over the volume's 2-D slices along "
        "slice_axis, slices mapped from [0, 1] to [-1, 1] and repeated to 3 channels; lower is better."
    ),
    "st_lpips": (
        "ST-LPIPS (shift-tolerant LPIPS, version ST0.0, AlexNet): a different metric from LPIPS, computed "
        "per 2-D slice like LPIPS and averaged over the volume; lower is better."
    ),
}
