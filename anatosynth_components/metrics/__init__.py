"""Whole-volume evaluation metrics for synthesis, as MONAI ``CumulativeIterationMetric`` classes.

Each takes synthetic (``y_pred``) and real (``y``) volumes (B, 1, X, Y, Z) in [0, 1] and returns one
value per volume, (B, 1), so ``monai.handlers.IgniteMetricHandler(metric_fn=...,
output_transform=from_engine(["pred", "label"]), save_details=True)`` records per-subject values.
The per-slice metrics (``SlicePSNRMetric``, ``SliceSSIMMetric``, ``CoherenceMetric``, ``LPIPSMetric``,
``STLPIPSMetric``) also take ``label_map=`` and then score only the slices that hold anatomy (the
paper's protocol); :class:`LabelMapMetricHandler` passes it from
``from_engine(["pred", "label", "image"])``.
"""

from anatosynth_components.metrics.availability import unavailable_metrics
from anatosynth_components.metrics.coherence import CoherenceMetric
from anatosynth_components.metrics.definitions import BASELINE_DEFINITIONS, METRIC_DEFINITIONS
from anatosynth_components.metrics.label_map_handler import (
    LabelMapMetricHandler,
    baseline_metric_handlers,
    baseline_metric_name,
)
from anatosynth_components.metrics.lpips_metric import (
    LPIPSMetric,
    load_lpips,
    lpips_backbone_path,
    lpips_status,
)
from anatosynth_components.metrics.perceptual_slices import PerceptualSliceMetric
from anatosynth_components.metrics.slice_psnr import SlicePSNRMetric
from anatosynth_components.metrics.slice_ssim import SliceSSIMMetric
from anatosynth_components.metrics.stlpips_metric import STLPIPSMetric, load_stlpips, stlpips_status
from anatosynth_components.metrics.volume_slices import foreground_slices

__all__ = [
    "BASELINE_DEFINITIONS",
    "METRIC_DEFINITIONS",
    "CoherenceMetric",
    "LPIPSMetric",
    "LabelMapMetricHandler",
    "PerceptualSliceMetric",
    "STLPIPSMetric",
    "SlicePSNRMetric",
    "SliceSSIMMetric",
    "baseline_metric_handlers",
    "baseline_metric_name",
    "foreground_slices",
    "load_lpips",
    "load_stlpips",
    "lpips_backbone_path",
    "lpips_status",
    "stlpips_status",
    "unavailable_metrics",
]

# per-image / per-subject scores and the significance test of the paper-table experiments
from anatosynth_components.metrics.image_scores import image_scores  # noqa: E402
from anatosynth_components.metrics.segmentation_scores import segmentation_scores  # noqa: E402
from anatosynth_components.metrics.wilcoxon import one_sided_wilcoxon  # noqa: E402

__all__ += ["image_scores", "one_sided_wilcoxon", "segmentation_scores"]

# diversity of a set of samples: mean pairwise MS-SSIM (the ACIS refinement report)
from anatosynth_components.metrics.diversity import (  # noqa: E402
    mean_pairwise_ms_ssim,
    ms_ssim_levels,
    ms_ssim_weights,
    pairwise_ms_ssim,
)

__all__ += ["mean_pairwise_ms_ssim", "ms_ssim_levels", "ms_ssim_weights", "pairwise_ms_ssim"]
