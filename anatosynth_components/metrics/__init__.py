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
from anatosynth_components.metrics.volume_psnr import VolumePSNRMetric

__all__ = [
    "METRIC_DEFINITIONS",
    "CoherenceMetric",
    "LPIPSMetric",
    "PerceptualSliceMetric",
    "STLPIPSMetric",
    "SliceSSIMMetric",
    "VolumePSNRMetric",
    "load_lpips",
    "load_stlpips",
    "lpips_backbone_path",
    "lpips_status",
    "stlpips_status",
    "unavailable_metrics",
]
