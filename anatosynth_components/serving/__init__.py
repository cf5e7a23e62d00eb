"""Serving the bundles (MONAI Label's bundle app, ``configs/inference.json``): what a served request
needs beyond training and sampling.

- :class:`AcisLabelInferer`: an ACIS image for a given label volume (the paper samples pairs from
  noise; a served request brings its own annotation);
- :class:`ResizeToSourced`: the prediction back on the input volume's grid.
"""

from anatosynth_components.serving.acis_label_inferer import (
    AcisLabelInferer,
    class_statistics,
    label_pseudo_mask,
)
from anatosynth_components.serving.resize_to_source import ResizeToSourced

__all__ = ["AcisLabelInferer", "ResizeToSourced", "class_statistics", "label_pseudo_mask"]
