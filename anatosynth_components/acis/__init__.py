"""ACIS workflow parts that are neither networks, losses nor engines: 2-D slices with their affine,
PENet's threshold annotation, fixed-seed pseudo-masks, the training data grid, sampling of pairs,
realism statistics, the evaluation report and TensorBoard grids (paper: ../shared/papers/acis.txt)."""

from anatosynth_components.acis.check_headers import check_headers
from anatosynth_components.acis.chest_labels import (
    CHEST_THRESHOLD_LABELS,
    ChestThresholdLabelsd,
    chest_threshold_labels,
)
from anatosynth_components.acis.data_grid import DataGridWriter, grid_of, read_data_grid
from anatosynth_components.acis.image_grid import AcisImageGrid, grid_image
from anatosynth_components.acis.realism import class_intensities, label_fractions, realism_statistics
from anatosynth_components.acis.report import AcisReport
from anatosynth_components.acis.sampling import (
    LatentNoised,
    PairDatalistWriter,
    SavePaird,
    sample_items,
    sample_pairs,
    to_range,
)
from anatosynth_components.acis.seeded_pseudomask import SeededPseudoMaskd
from anatosynth_components.acis.slices import RandSlicesd, Slicesd, cut_slice, slice_affine
from anatosynth_components.acis.validation import PhaseValidationHandler

__all__ = [
    "CHEST_THRESHOLD_LABELS",
    "AcisImageGrid",
    "AcisReport",
    "ChestThresholdLabelsd",
    "DataGridWriter",
    "LatentNoised",
    "PairDatalistWriter",
    "PhaseValidationHandler",
    "RandSlicesd",
    "SavePaird",
    "SeededPseudoMaskd",
    "Slicesd",
    "check_headers",
    "chest_threshold_labels",
    "class_intensities",
    "cut_slice",
    "grid_image",
    "grid_of",
    "label_fractions",
    "read_data_grid",
    "realism_statistics",
    "sample_items",
    "sample_pairs",
    "slice_affine",
    "to_range",
]
