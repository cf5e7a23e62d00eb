"""Data layer: readers for the real on-disk layouts, subject splits, MONAI transforms, demo data.

Readers (each returns a :class:`DatasetIndex`): :func:`read_learn2reg`, :func:`read_neurite_oasis`,
:func:`read_penet`, :func:`read_datalist`, and :func:`read_dataset` which detects the layout.

Transforms (MONAI dictionary transforms): :class:`LoadVolumed`, :class:`ValidateVolumed`,
:class:`RemapLabelsd`, :class:`ResizeSlicesd`, :class:`SliceStackd`, :class:`RandSliceStackd`,
:class:`SaveSynthesisd`.

Orientation and anatomy-safe flips: :class:`OrientToRASd` reorients loaded volumes to RAS (spatial
axis 0 = left -> right) before any spatial transform, :class:`RestoreOrientationd` brings a
prediction back to the input file's axis order before it is written, and :class:`RandLateralFlipd`
mirrors RAS volumes left-right and swaps the left / right ids of :data:`LATERAL_PAIRS`
(:func:`anatomy_safe_flips` builds the flips of an augmentation from a list of axes).

A typical pipeline, as a bundle config wires it::

    index = read_dataset(dataset_dir)
    parts = split_subjects(index.items, f"{output_dir}/split.json", seed=0)
    volume = Compose([LoadVolumed(["image", "label"]), RemapLabelsd("label", "aseg_to_oasis35"),
                      ValidateVolumed(label_ids=range(1, 36)), OrientToRASd(["image", "label"]),
                      ScaleIntensityRangePercentilesd("image", lower=0.5, upper=99.5, b_min=0, b_max=1,
                                                      clip=True),
                      ResizeSlicesd(["image", "label"], (224, 224), axis=2)])
    flip = RandLateralFlipd(["image", "label"], "oasis35", prob=0.5, label_ids=range(1, 36))
    stacks = RandSliceStackd(["image", "label"], 5)
    train_ds = CacheDataset(parts["training"], Compose([volume, flip, stacks]))

Intensity normalisation is MONAI's, written in the configs: ``ScaleIntensityRangePercentilesd`` (MRI,
percentiles 0.5 / 99.5 -> [0, 1]) and ``ScaleIntensityRanged`` (CT, a Hounsfield window -> [0, 1]:
[-1000, 600] for the ACIS chest CT, [-175, 250] for the abdominal organs), both clipped.
"""

from anatosynth_components.data.datalist import read_datalist
from anatosynth_components.data.dataset_index import LAYOUTS, DatasetIndex, detect_layout, read_dataset
from anatosynth_components.data.label_tables import (
    LABEL_SETS,
    LABEL_TABLES,
    LATERAL_PAIRS,
    LabelTable,
    LateralPairs,
    get_label_table,
    get_lateral_pairs,
)
from anatosynth_components.data.lateral_flip import RandLateralFlipd, anatomy_safe_flips, swap_labels
from anatosynth_components.data.learn2reg import read_learn2reg
from anatosynth_components.data.load_volume import LoadVolumed
from anatosynth_components.data.neurite_oasis import read_neurite_oasis
from anatosynth_components.data.orientation import (
    OrientToRASd,
    RequireRASd,
    RestoreOrientationd,
    orientation_unknown,
    require_ras,
)
from anatosynth_components.data.penet import PENetReader, read_penet
from anatosynth_components.data.remap_labels import RemapLabelsd, remap_labels
from anatosynth_components.data.resize_slices import ResizeSlicesd
from anatosynth_components.data.resize_to_source import ResizeToSourced
from anatosynth_components.data.save_synthesis import SaveSynthesisd
from anatosynth_components.data.slice_stack import RandSliceStackd, SliceStackd, stack_starts
from anatosynth_components.data.split import split_subjects
from anatosynth_components.data.validate_volume import ValidateVolumed

__all__ = [
    "LAYOUTS",
    "LABEL_SETS",
    "LABEL_TABLES",
    "LATERAL_PAIRS",
    "DatasetIndex",
    "LabelTable",
    "LateralPairs",
    "LoadVolumed",
    "OrientToRASd",
    "PENetReader",
    "RandLateralFlipd",
    "RandSliceStackd",
    "RemapLabelsd",
    "ResizeSlicesd",
    "RequireRASd",
    "ResizeToSourced",
    "RestoreOrientationd",
    "SaveSynthesisd",
    "SliceStackd",
    "ValidateVolumed",
    "anatomy_safe_flips",
    "detect_layout",
    "get_label_table",
    "get_lateral_pairs",
    "orientation_unknown",
    "read_datalist",
    "read_dataset",
    "read_learn2reg",
    "read_neurite_oasis",
    "read_penet",
    "remap_labels",
    "require_ras",
    "split_subjects",
    "stack_starts",
    "swap_labels",
]
