"""``ChestThresholdLabelsd``: an annotation for chest CT that has none (PENet), from Hounsfield units.

PENet (CT pulmonary angiography) ships images and PE labels per study, no segmentation.  ACIS needs an
annotation for its annotation generator; on PENet the paper evaluates reconstruction only, so any
anatomically meaningful label map serves.  This one is derived from HU by thresholds and morphology,
per axial slice where hole filling needs closed outlines (the airway leaves the volume at the top, so
3-D hole filling would not close the lungs):

- **body**: voxels above ``body_hu`` (-500 HU: fat is about -100, air -1000), largest 3-D connected
  component (drops the table, blankets, noise), holes filled per slice;
- **2, lungs and airways**: voxels below ``lung_hu`` (-400 HU) inside the body, in 3-D components whose
  median is above ``gas_hu`` (-950 HU: aerated lung is about -850 HU, bowel and stomach gas is pure air,
  about -1000 HU; in TotalSegmentator's example thorax-abdomen CT the colon gas has median -967 HU, the
  lung bases -780 HU) and of at least ``min_lung_fraction`` of the largest such component (drops noise), holes
  filled per slice (vessels and nodules inside the lung belong to it).  Severely emphysematous lungs,
  whose median approaches -950 HU, would need a lower ``gas_hu``;
- **3, dense**: voxels at or above ``dense_hu`` (300 HU) in the body outside the lungs: bone, and in CTPA
  the contrast-filled heart and great vessels;
- **1, soft tissue**: the rest of the body.  0 is outside the body.

The thresholds are the fields of :class:`ChestThresholds`, which both :func:`chest_threshold_labels`
and ``ChestThresholdLabelsd`` take.

Example::

    >>> import torch
    >>> hu = torch.full((1, 20, 20, 4), -1000.0)
    >>> hu[:, 2:18, 2:18] = 40.0; hu[:, 5:10, 5:15] = -850.0; hu[:, 12:15, 8:11] = 700.0
    >>> out = ChestThresholdLabelsd()({"image": hu})["label"]
    >>> [int((out == k).sum()) for k in range(4)]
    [576, 788, 200, 36]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform
from monai.utils import convert_to_numpy
from scipy import ndimage

from anatosynth_components.checks import check_spatial_axis
from anatosynth_components.data.validate_volume import source_name
from anatosynth_components.errors import ConfigError, DataError

#: Label ids and names of the derived annotation.
CHEST_THRESHOLD_LABELS: dict[int, str] = {
    1: "soft tissue",
    2: "lungs and airways",
    3: "dense (bone, contrast-enhanced blood >= 300 HU)",
}


def _fill_per_slice(mask: np.ndarray, axis: int) -> np.ndarray:
    moved = np.moveaxis(mask, axis, 0)
    filled = np.stack([ndimage.binary_fill_holes(s) for s in moved])
    return np.moveaxis(filled, 0, axis)


@dataclass(frozen=True)
class ChestThresholds:
    """The settings of :func:`chest_threshold_labels` (see the module docstring), checked.

    Args:
        axis: spatial axis of the slices in which holes are filled (2: axial for RAS CT).
        body_hu: body above this (HU).
        lung_hu: lungs and airways below this, inside the body.
        dense_hu: bone and contrast at or above this; must exceed ``body_hu`` and ``lung_hu``.
        min_lung_fraction: smallest kept air component, as a fraction of the largest aerated one.
        gas_hu: an air component is aerated lung when its median is above this (bowel gas is below).

    >>> ChestThresholds(lung_hu=400.0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    anatosynth_components.errors.ConfigError: thresholds need ... lung_hu (400.0) < dense_hu (300.0)
    """

    axis: int = 2
    body_hu: float = -500.0
    lung_hu: float = -400.0
    dense_hu: float = 300.0
    min_lung_fraction: float = 0.1
    gas_hu: float = -950.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "axis", check_spatial_axis(self.axis))
        for field in dataclasses.fields(self)[1:]:
            object.__setattr__(self, field.name, float(getattr(self, field.name)))
        if not self.body_hu < self.dense_hu or not self.lung_hu < self.dense_hu:
            raise ConfigError(
                f"thresholds need body_hu ({self.body_hu}) and lung_hu ({self.lung_hu}) < dense_hu "
                f"({self.dense_hu})"
            )

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> ChestThresholds:
        """From keyword settings; an unknown key is a ``ConfigError`` naming it."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ConfigError(f"unknown chest threshold settings {unknown}; known: {sorted(known)}")
        return cls(**settings)


def chest_threshold_labels(hu: np.ndarray, **thresholds: Any) -> np.ndarray:
    """Label map (uint8, ids of :data:`CHEST_THRESHOLD_LABELS`) of a 3-D CT ``hu`` (X, Y, Z) in HU;
    ``thresholds``: fields of :class:`ChestThresholds` (its defaults otherwise)."""
    t = ChestThresholds.of(thresholds)
    body = hu > t.body_hu
    components, count = ndimage.label(body)
    if count == 0:
        return np.zeros(hu.shape, np.uint8)
    sizes = np.bincount(components.ravel())[1:]
    body = _fill_per_slice(components == 1 + int(np.argmax(sizes)), t.axis)
    air = (hu < t.lung_hu) & body
    components, count = ndimage.label(air)
    lungs = np.zeros_like(air)
    if count:
        index = np.arange(1, count + 1)
        sizes = np.bincount(components.ravel())[1:]
        aerated = np.asarray(ndimage.median(hu, components, index)) > t.gas_hu
        if aerated.any():
            keep = index[aerated & (sizes >= t.min_lung_fraction * sizes[aerated].max())]
            lungs = _fill_per_slice(np.isin(components, keep), t.axis) & body
    labels = np.zeros(hu.shape, np.uint8)
    labels[body] = 1
    labels[lungs] = 2
    labels[body & ~lungs & (hu >= t.dense_hu)] = 3
    return labels


class ChestThresholdLabelsd(MapTransform):
    """Write :func:`chest_threshold_labels` of ``data[image_key]`` (1, X, Y, Z) in HU to ``data[label_key]``.

    Run it before the HU window.  The label is a ``MetaTensor`` with the image's affine and meta data.

    Args:
        image_key: the CT in HU.
        label_key: where the label map goes.
        thresholds: fields of :class:`ChestThresholds` (``axis``, ``body_hu``, ``lung_hu``, ``dense_hu``,
            ``min_lung_fraction``, ``gas_hu``), its defaults otherwise.
    """

    def __init__(self, image_key: str = "image", label_key: str = "label", **thresholds: Any) -> None:
        super().__init__([image_key])
        self.image_key, self.label_key = image_key, label_key
        self.settings = dataclasses.asdict(ChestThresholds.of(thresholds))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        image = d[self.image_key]
        if image.ndim != 4 or image.shape[0] != 1:
            raise DataError(
                f"{source_name(image, self.image_key)}: expected a (1, X, Y, Z) CT volume in HU, "
                f"got shape {tuple(image.shape)}"
            )
        array = convert_to_numpy(image)
        labels = torch.from_numpy(chest_threshold_labels(array[0], **self.settings)[None])
        d[self.label_key] = (
            MetaTensor(labels, meta=dict(image.meta)) if isinstance(image, MetaTensor) else labels
        )
        return d
