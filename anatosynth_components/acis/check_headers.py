"""``check_headers``: every image / label pair of a dataset checked from its NIfTI headers, before training.

``ValidateVolumed`` checks a pair when it is loaded, so a bad pair of a test subject would surface only
at evaluation, after hours of training.  NIfTI headers hold the shape and the affine, so all pairs are
checked at start-up for the cost of reading the headers.  The messages are ``ValidateVolumed``'s.
Other formats (NRRD, MHA, DICOM, PENet HDF5 studies) are left to ``ValidateVolumed`` at load time.

Example (``train.json``)::

    "dataset_index": "$anatosynth_components.acis.check_headers(
        anatosynth_components.data.read_dataset(@data_root))"
"""

from __future__ import annotations

import nibabel as nib
import numpy as np

from anatosynth_components.data.dataset_index import DatasetIndex
from anatosynth_components.data.file_names import is_nifti
from anatosynth_components.errors import DataError


def _header(path: str) -> tuple[tuple[int, ...], np.ndarray]:
    try:
        img = nib.load(path)
    except Exception as err:  # nibabel raises many kinds for a corrupt header
        raise DataError(f"{path}: cannot read the NIfTI header ({err})") from err
    shape = tuple(int(s) for s in img.shape)
    while len(shape) > 3 and shape[-1] == 1:  # (X, Y, Z, 1) is one channel
        shape = shape[:-1]
    return shape, np.asarray(img.affine)


def check_headers(index: DatasetIndex, affine_atol: float = 1e-3) -> DatasetIndex:
    """``index`` unchanged if the image and label of every NIfTI item agree in shape and affine."""
    for item in index.items:
        image, label = item.get("image"), item.get("label")
        if not (isinstance(image, str) and isinstance(label, str)):
            continue
        if not (is_nifti(image) and is_nifti(label)):
            continue
        (ishape, iaffine), (lshape, laffine) = _header(image), _header(label)
        if ishape != lshape:
            raise DataError(f"image {image} has spatial shape {ishape} but label {label} has {lshape}")
        if not np.allclose(iaffine, laffine, atol=affine_atol):
            raise DataError(
                f"image {image} and label {label} have different affines:\n"
                f"{np.round(iaffine, 4)}\nvs\n{np.round(laffine, 4)}"
            )
    return index
