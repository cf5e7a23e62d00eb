"""Helpers the bundle configs call: the bundle folder, the data source, checkpoints, inputs, loader sizes."""

from anatosynth_components.bundle.checkpoints import required_file
from anatosynth_components.bundle.dataset import dataset_or_demo
from anatosynth_components.bundle.flags import flag
from anatosynth_components.bundle.inputs import label_files, synthesis_items
from anatosynth_components.bundle.loading import label_dtype, loader_workers, on_cuda, volumes_per_batch
from anatosynth_components.bundle.overlay import require_base
from anatosynth_components.bundle.root import bundle_root

__all__ = [
    "bundle_root",
    "dataset_or_demo",
    "flag",
    "label_dtype",
    "label_files",
    "loader_workers",
    "on_cuda",
    "require_base",
    "required_file",
    "synthesis_items",
    "volumes_per_batch",
]
