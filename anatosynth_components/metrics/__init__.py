"""Whole-volume evaluation metrics for synthesis, as MONAI ``CumulativeIterationMetric`` classes.

Each takes synthetic (``y_pred``) and real (``y``) volumes (B, 1, X, Y, Z) in [0, 1] and returns one
value per volume, (B, 1), so ``monai.handlers.IgniteMetricHandler(metric_fn=...,
output_transform=from_engine(["pred", "label"]), save_details=True)`` records per-subject values.
"""

from anatosynth_components.metrics.availability import unavailable_metrics
from anatosynth_components.metrics.coherence import CoherenceMetric
from anatosynth_components.metrics.definitions import METRIC_DEFINITIONS
from anatosynth_components.metrics.lpips_metric import (
    LPIPSMetric,
    load_lpips,
    lpips_backbone_path,
    lpips_status,
)
from anatosynth_components.metrics.perceptual_slices import PerceptualSliceMetric
from anatosynth_components.metrics.slice_ssim import SliceSSIMMetric
from anatosynth_components.metrics.stlpips_metric import STLPIPSMetric, load_stlpips, stlpips_status

__all__ = [
    "METRIC_DEFINITIONS",
    "CoherenceMetric",
    "LPIPSMetric",
    "PerceptualSliceMetric",
    "STLPIPSMetric",
    "SliceSSIMMetric",
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
