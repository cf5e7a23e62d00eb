"""Helpers the bundle configs call: the bundle folder, the data source, checkpoints, inputs, loader sizes,
output units, errors a MONAI Label client can read.

Importing this package (every bundle config does, through ``bundle_root()``) installs
:func:`~anatosynth_components.errors.install_excepthook`: a bundle run that fails on an AnatoSynth
error ends its output with that error's file or key and problem."""

from anatosynth_components.bundle.checkpoints import required_file
from anatosynth_components.bundle.dataset import dataset_or_demo
from anatosynth_components.bundle.flags import flag
from anatosynth_components.bundle.inputs import label_files, synthesis_items
from anatosynth_components.bundle.loading import label_dtype, loader_workers, on_cuda, volumes_per_batch
from anatosynth_components.bundle.overlay import require_base
from anatosynth_components.bundle.removed import removed_keys
from anatosynth_components.bundle.root import bundle_root
from anatosynth_components.bundle.serving import ReportErrors, client_error
from anatosynth_components.bundle.skip_failed import SkipFailedDataset, SkipFailedEvaluator
from anatosynth_components.bundle.units import OutputRanged, output_range_of, window_range
from anatosynth_components.errors import install_excepthook

install_excepthook()

__all__ = [
    "OutputRanged",
    "ReportErrors",
    "SkipFailedDataset",
    "SkipFailedEvaluator",
    "bundle_root",
    "client_error",
    "dataset_or_demo",
    "flag",
    "label_dtype",
    "label_files",
    "loader_workers",
    "on_cuda",
    "output_range_of",
    "removed_keys",
    "require_base",
    "required_file",
    "synthesis_items",
    "volumes_per_batch",
    "window_range",
]
