"""Image file names: the suffix that names the format (``.nii.gz`` is one suffix) and the stem before it.

``Path.suffix`` / ``Path.stem`` see only the last dot (``a.nii.gz`` -> ``.gz`` / ``a.nii``), and
``Path.suffixes`` every dot (``OASIS_0001.v2.nii.gz`` -> ``.v2.nii.gz``); these helpers know the
multi-part suffixes of the medical formats the readers load and leave any other name whole (a DICOM
series folder named by its UID keeps its dots).

>>> image_suffix("imagesTr/OASIS_0001_0000.nii.gz"), image_stem("imagesTr/OASIS_0001_0000.nii.gz")
('.nii.gz', 'OASIS_0001_0000')
>>> image_stem("ct_seg.nrrd"), image_stem("1.2.840.113619.2.55"), image_suffix("notes.txt")
('ct_seg', '1.2.840.113619.2.55', '')
>>> is_nifti("a/b.nii"), is_nifti("a/b.nrrd")
(True, False)
"""

from __future__ import annotations

import os
from pathlib import Path

#: NIfTI suffixes (what nibabel reads and writes)
NIFTI_SUFFIXES = (".nii.gz", ".nii")
#: the suffixes the readers know, longest first so that ``.nii.gz`` wins over ``.gz``; a bare ``.gz``
#: (a compressed file of a format named before it) counts too
IMAGE_SUFFIXES = (*NIFTI_SUFFIXES, ".nrrd", ".nhdr", ".mha", ".mhd", ".gz")


def image_suffix(path: str | os.PathLike) -> str:
    """The known image suffix (:data:`IMAGE_SUFFIXES`) that ends the file name of ``path``, else ``""``."""
    name = Path(path).name
    return next((s for s in IMAGE_SUFFIXES if name.endswith(s) and len(name) > len(s)), "")


def image_stem(path: str | os.PathLike) -> str:
    """The file name of ``path`` without its :func:`image_suffix`."""
    name = Path(path).name
    return name[: len(name) - len(image_suffix(name))]


def is_nifti(path: str | os.PathLike) -> bool:
    """Whether the file name of ``path`` ends in ``.nii`` or ``.nii.gz``."""
    return Path(path).name.endswith(NIFTI_SUFFIXES)
