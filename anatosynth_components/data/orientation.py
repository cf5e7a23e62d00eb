"""One anatomical orientation for every volume: reorient to RAS after loading, and back before writing.

The axis codes are MONAI's and nibabel's: each letter names the direction an array axis points *to*
in the patient (NIfTI's RAS+ world, x toward the patient's Right).  After :class:`OrientToRASd`
spatial axis 0 runs from the patient's left to the right, axis 1 from posterior to anterior and
axis 2 from inferior to superior.  So axis 0 is the left-right axis that
:class:`~anatosynth_components.data.lateral_flip.RandLateralFlipd` mirrors, ``slice_axis`` 2 cuts
axial slices, and volumes stored in any orientation (LPS DICOM conversions, FreeSurfer's LIA,
permuted axes) reach the networks with the same layout.

- :class:`OrientToRASd`: MONAI's ``Orientation`` to ``"RAS"`` (``"RA"`` for 2-D arrays), aware of a
  ``MetaTensor``'s ``space`` (an LPS affine is read as LPS).  Volumes whose reader has no real
  affine cannot be reoriented: a ``.npy`` / ``.npz`` array (MONAI's numpy reader gives the identity)
  and a PENet HDF5 study (:class:`~anatosynth_components.data.penet.PENetReader` gives the nominal
  diag(1, 1, 1.25)).  Their identity-like affine already reads as RAS, so the array keeps its
  stored axis order; the transform logs that once, with the reason (:func:`orientation_unknown`),
  and :class:`RandLateralFlipd` refuses them, since their left-right axis is unknown.
- :class:`RestoreOrientationd`: brings a prediction made on the reoriented grid back to the input
  file's axis order (the inverse permutation and flips), before ``ResizeToSourced`` /
  ``SaveSynthesisd`` / MONAI Label's writer put it on the input's grid with the input's affine.
- :class:`RequireRASd` and :func:`require_ras`: refuse a volume that is not RAS before a transform
  that relies on its axes meaning R, A, S.

Example::

    pre = Compose([LoadVolumed("image"), OrientToRASd("image")])   # LPS file -> RAS array
    item = pre({"image": "lps_labels.nii.gz"})
    item["pred"] = synthesize(item["image"])                       # same grid as item["image"]
    RestoreOrientationd("pred", source_key="image")(item)          # back in the file's axis order
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from typing import Any

import nibabel as nib
import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.data.utils import to_affine_nd
from monai.transforms import MapTransform, Orientation
from monai.utils import SpaceKeys, convert_to_tensor

from anatosynth_components.data.penet import PENetReader
from anatosynth_components.errors import DataError

logger = logging.getLogger(__name__)

#: the target orientation; its first ``n`` letters for an ``n``-D array
RAS = "RAS"
#: MONAI's axis labels for a ``MetaTensor`` whose ``space`` is LPS
_LPS_LABELS = (("R", "L"), ("A", "P"), ("I", "S"))


def source_of(x: Any, key: Hashable) -> str:
    """The file ``x`` was loaded from, or the key, for messages."""
    meta = getattr(x, "meta", None) or {}
    return str(meta.get("filename_or_obj") or key)


def orientation_unknown(x: Any) -> str | None:
    """Why ``x``'s affine says nothing about the patient's orientation, or None when it does.

    Unknown: a plain tensor or array (no affine), a PENet HDF5 study (``"<file>.hdf5::<study>"``: the
    file stores no orientation, the reader's affine only records the spacing) and a volume whose file
    stores no affine (MONAI's numpy reader: no ``original_affine``).

    Example::

        >>> orientation_unknown(torch.zeros(1, 4, 4, 4))
        'it is a plain array without an affine'
    """
    meta = getattr(x, "meta", None)
    if not isinstance(x, MetaTensor) or meta is None:
        return "it is a plain array without an affine"
    name = str(meta.get("filename_or_obj", ""))
    if PENetReader._split(name) is not None:
        return (
            "PENet HDF5 studies store no orientation; the reader's affine diag(1, 1, 1.25) only "
            "records the spacing"
        )
    if meta.get("original_affine") is None:
        return "its file stores no affine (a .npy / .npz array, say)"
    return None


def axis_codes(x: MetaTensor) -> str:
    """The orientation of ``x``'s spatial axes as axis codes (``"RAS"``, ``"LPS"``, ``"LIA"``, ...),
    read in its ``space`` (an LPS ``MetaTensor``'s affine is LPS)."""
    spatial = x.ndim - 1
    affine = to_affine_nd(
        spatial, np.asarray(convert_to_tensor(x.affine, track_meta=False), dtype=np.float64)
    )
    codes = nib.aff2axcodes(affine)
    if x.meta.get("space") is not None and SpaceKeys(x.meta["space"]) == SpaceKeys.LPS:
        opposite = {"R": "L", "L": "R", "A": "P", "P": "A", "I": "I", "S": "S"}
        codes = tuple(opposite[c] for c in codes)
    return "".join(str(c) for c in codes)


def require_ras(x: Any, key: Hashable, what: str) -> None:
    """A ``DataError`` naming the file and ``key`` unless ``x`` is a RAS-oriented ``MetaTensor``
    whose orientation is known (see :func:`orientation_unknown`); ``what`` names the caller."""
    reason = orientation_unknown(x)
    name = source_of(x, key)
    if reason is not None:
        raise DataError(
            f"{name}: {what} needs to know the {key} volume's left-right axis, and its orientation is "
            f"unknown ({reason}); store the volumes as NIfTI with their affine, or leave the flip out"
        )
    codes = axis_codes(x)
    if codes != RAS[: x.ndim - 1]:
        raise DataError(
            f"{name}: {what} needs a RAS volume, but {key} is oriented {codes}: reorient it right after "
            "loading (anatosynth_components.data.OrientToRASd, or MONAI's Orientationd(axcodes='RAS'))"
        )


class OrientToRASd(MapTransform):
    """Reorient channel-first ``MetaTensor`` s (C, *S) to RAS with MONAI's ``Orientation``.

    A volume stored LPS, LIA or with permuted axes comes out with axis 0 = left -> right, 1 =
    posterior -> anterior, 2 = inferior -> superior, its affine updated so that every voxel keeps its
    world position (``meta["original_affine"]`` and ``meta["spatial_shape"]`` still describe the
    file, for :class:`RestoreOrientationd`).  2-D arrays are reoriented to ``"RA"``.  A volume whose
    orientation is unknown (:func:`orientation_unknown`: numpy arrays, PENet studies) keeps its
    axis order; that is logged once per reason.

    Args:
        keys: keys of the loaded volumes (``LoadVolumed``'s ``MetaTensor`` s).

    Example::

        OrientToRASd(["image", "label"])(LoadVolumed(["image", "label"])(item))
        # an LPS (X, Y, Z) file -> the same voxels with axes 0 and 1 reversed, affine RAS
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self._orient = {n: Orientation(axcodes=RAS[:n], labels=None) for n in (1, 2, 3)}
        self._logged: set[str] = set()

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            x = d[key]
            if not isinstance(x, MetaTensor):
                raise DataError(
                    f"{key}: OrientToRASd needs a loaded volume (a MetaTensor with its affine, from "
                    f"LoadVolumed), got {type(x).__name__}"
                )
            spatial = x.ndim - 1
            if spatial not in self._orient:
                raise DataError(
                    f"{source_of(x, key)}: {key} has shape {tuple(x.shape)} (channel first); OrientToRASd "
                    "reorients 1 to 3 spatial dimensions"
                )
            reason = orientation_unknown(x)
            if reason is not None and reason not in self._logged:
                self._logged.add(reason)
                logger.warning(
                    "%s: %s is not reoriented to RAS (%s); its axes are used in their stored order",
                    source_of(x, key), key, reason,
                )  # fmt: skip
            d[key] = self._orient[spatial](x)
        return d


def orientation_back(current: np.ndarray, original: np.ndarray) -> np.ndarray:
    """The nibabel orientation transform from an array on ``current``'s axes to ``original``'s."""
    return nib.orientations.ornt_transform(nib.io_orientation(current), nib.io_orientation(original))


def apply_orientation(x: torch.Tensor, ornt: np.ndarray) -> torch.Tensor:
    """nibabel's ``apply_orientation`` on the spatial axes of a channel-first tensor (C, *S)."""
    flips = [axis + 1 for axis, flip in enumerate(ornt[:, 1]) if flip == -1]
    out = torch.flip(x, dims=flips) if flips else x
    order = [0, *(int(a) + 1 for a in np.argsort(ornt[:, 0]))]
    return out.permute(order).contiguous()


class RestoreOrientationd(MapTransform):
    """Bring ``d[key]`` (C, *S), made on the grid of ``d[source_key]`` after :class:`OrientToRASd`,
    back to the axis order of ``d[source_key]``'s file.

    The inverse of the reorientation is a permutation and reversal of axes (no resampling), read from
    the source's current affine and its ``meta["original_affine"]``; a volume whose file stored no
    affine was not reoriented and passes unchanged.  The result is a ``MetaTensor`` with the source's
    metadata and the affine of the restored axes, so that ``ResizeToSourced``, ``SaveSynthesisd``
    and MONAI Label's writer put it on the input's grid with the input's affine.

    Args:
        keys: keys of the predictions.
        source_key: key of the reoriented input volume.

    Example::

        RestoreOrientationd("pred", source_key="image")(d)   # d["pred"] (1, 122, 101, 30) RAS -> LPS
    """

    def __init__(
        self, keys: KeysCollection, source_key: str = "image", allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.source_key = source_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        source = d[self.source_key]
        if not isinstance(source, MetaTensor):
            raise DataError(
                f"RestoreOrientationd: {self.source_key!r} is a {type(source).__name__}, not a loaded "
                "volume with its affine (load it with LoadVolumed)"
            )
        original = source.meta.get("original_affine")
        spatial = source.ndim - 1
        current = to_affine_nd(
            spatial, np.asarray(convert_to_tensor(source.affine, track_meta=False), np.float64)
        )
        for key in self.key_iterator(d):
            pred = d[key]
            plain = convert_to_tensor(pred, track_meta=False)
            if tuple(plain.shape[1:]) != tuple(source.shape[1:]):
                raise DataError(
                    f"{source_of(source, self.source_key)}: {key} has spatial shape "
                    f"{tuple(plain.shape[1:])}, but RestoreOrientationd needs the grid of "
                    f"{self.source_key} {tuple(source.shape[1:])}"
                )
            if original is None:
                continue
            ornt = orientation_back(current, to_affine_nd(spatial, np.asarray(original, np.float64)))
            affine = current @ nib.orientations.inv_ornt_aff(ornt, tuple(plain.shape[1:]))
            out = MetaTensor(apply_orientation(plain, ornt), meta=dict(source.meta))
            out.affine = torch.as_tensor(
                to_affine_nd(3, affine) if spatial < 3 else affine, dtype=torch.float64
            )
            d[key] = out
        return d


class RequireRASd(MapTransform):
    """Pass data through unchanged; a ``DataError`` naming the file and key for a volume that is not
    RAS (or whose orientation is unknown), before transforms whose axes must mean R, A, S (e.g.
    ``RandFlipd(spatial_axis=[1, 2])`` as "never left-right").

    Example::

        Compose([RequireRASd(["image", "label"]), RandFlipd(["image", "label"], 0.5, spatial_axis=[1, 2])])
    """

    def __call__(self, data: Mapping[Hashable, Any]) -> Mapping[Hashable, Any]:
        for key in self.key_iterator(dict(data)):
            require_ras(data[key], key, "RequireRASd")
        return data
