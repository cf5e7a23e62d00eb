"""What each reported synthesis metric means, in one sentence or two, keyed by its report name.

The evaluation report (:class:`~anatosynth_components.anatomask.report.SynthesisReport`)
copies these into ``metrics.json`` so the numbers carry their definitions. The keys are the names
the bundles give the metric handlers.

"Foreground slices" are the 2-D slices along slice_axis whose label map (the input the volume was
synthesised from) holds at least one labelled voxel (id other than 0); ``psnr_slice``, ``ssim``,
``coherence``, ``lpips`` and ``st_lpips`` are computed over them (the paper's protocol, Eqs. 6-7),
``psnr`` over the whole volume.

>>> sorted(METRIC_DEFINITIONS)
['coherence', 'lpips', 'psnr', 'psnr_slice', 'ssim', 'st_lpips']
"""

from __future__ import annotations

_FOREGROUND = (
    "over the foreground slices along slice_axis (slices whose label map holds at least one labelled "
    "voxel; the same slices as psnr_slice)"
)

METRIC_DEFINITIONS: dict[str, str] = {
    "psnr_slice": (
        "Slice PSNR in dB, the paper's PSNR (Eqs. 6-7): for each foreground slice along slice_axis (a "
        "slice whose label map holds at least one labelled voxel), 10 log10(1 / MSE) with the MSE over "
        "that slice's pixels, intensities in [0, 1]; the mean over those slices (higher is better)."
    ),
    "psnr": (
        "Volume PSNR in dB, data range 1: 10 log10(1 / MSE) with the MSE over all voxels of the "
        "synthetic vs the real volume, background and empty slices included (higher is better; +inf "
        "only for identical volumes)."
    ),
    "ssim": (
        f"Slice SSIM: mean {_FOREGROUND} of MONAI's 2-D SSIM (data range 1, Gaussian window 11, sigma "
        "1.5, k1 0.01, k2 0.03); higher is better, 1 = identical."
    ),
    "coherence": (
        "Inter-slice coherence in dB: PSNR (peak 1) of the synthetic volume's through-plane difference "
        "x[k+1] - x[k] along slice_axis against the real volume's, over the pairs of neighbouring "
        "foreground slices (both slices hold labelled voxels). Higher = the synthetic slices change "
        "from one to the next the way the real anatomy does; a generator whose slices flicker scores low "
        "even when its PSNR is good (+inf for identical through-plane differences)."
    ),
    "lpips": (
        f"LPIPS v0.1 (AlexNet backbone, ImageNet weights): mean {_FOREGROUND}, slices mapped from [0, 1] "
        "to [-1, 1] and repeated to 3 channels; lower is better."
    ),
    "st_lpips": (
        "ST-LPIPS (shift-tolerant LPIPS, stlpips-pytorch, AlexNet, weights ST0.0, shipped with the "
        f"package): a different metric from LPIPS, computed like LPIPS per 2-D slice and averaged "
        f"{_FOREGROUND}; lower is better. Blur raises it, so it guards PSNR and SSIM, which reward "
        "smooth images."
    ),
}

#: What each reported baseline is; the report writes it beside the baseline's numbers.
BASELINE_DEFINITIONS: dict[str, str] = {
    "label_mean": (
        "Label-mean image: every voxel painted with the mean intensity of its label over the training "
        "subjects (through the same volume transforms, at the network's resolution; an id unseen in "
        "training gets the mean of all training voxels), scored with the same metrics on the same test "
        "subjects. A model below it has learned less than a lookup table."
    ),
}
