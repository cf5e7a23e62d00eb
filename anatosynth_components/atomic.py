"""Write files and folders under a temporary name, then rename, so a crash never leaves a
half-written file that looks valid.

Example::

    with atomic_path("out/vol.nii.gz") as tmp:
        nib.save(img, tmp)          # tmp ends in ".nii.gz" too, so the format is kept
    # out/vol.nii.gz now exists, complete, or not at all

A failure to write raises :class:`~anatosynth_components.errors.DataError` naming the final path and
the reason; the temporary name never appears in a message.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from anatosynth_components.errors import AnatoSynthError, DataError

#: volume suffix -> the library that writes it (``write_volume``); detached-header formats (``.nhdr``,
#: ``.mhd``) are left out: their header names the data file, which the rename would break
VOLUME_WRITERS: dict[str, str] = {".nii.gz": "nibabel", ".nii": "nibabel", ".nrrd": "itk", ".mha": "itk"}


def _suffix(path: Path) -> str:
    """The format suffix of ``path`` (``.nii.gz`` whole, else the last one), so that writers that pick
    a format by the file name still work on the temporary name."""
    from anatosynth_components.data.file_names import image_suffix  # the data package imports this module

    return image_suffix(path) or path.suffix


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_error(path: Path, err: BaseException, tmp: Path | None = None) -> BaseException:
    """The error to raise for a failed write of ``path``: a ``DataError`` naming ``path`` and the reason
    when ``err`` is an ``OSError`` or its message names the temporary file ``tmp`` (whose name is then
    replaced by ``path``); ``err`` itself otherwise (a bug in the writer stays what it is)."""
    text = str(err)
    names_tmp = tmp is not None and tmp.name in text
    if isinstance(err, AnatoSynthError) or not (isinstance(err, OSError) or names_tmp):
        return err
    if isinstance(err, OSError) and err.strerror:
        reason = err.strerror
    else:
        reason = text.replace(str(tmp), str(path)).replace(tmp.name, path.name) if tmp else text
    return DataError(f"{path}: cannot write the file ({reason or type(err).__name__})")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on error delete it.

    Raises:
        DataError: the folder cannot be created or written, or the writer failed on the file; the
            message names ``path``, never the temporary name.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".part{_suffix(path)}", dir=path.parent)
    except OSError as err:
        raise write_error(path, err) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        os.replace(tmp_path, path)
    except BaseException as err:
        tmp_path.unlink(missing_ok=True)
        translated = write_error(path, err, tmp_path) if isinstance(err, Exception) else err
        if translated is err:
            raise
        raise translated from None


@contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder under a temporary sibling name and rename it to ``path`` when complete.

    Raises:
        FileExistsError: ``path`` exists and is not empty, and ``overwrite`` is False.
    """
    path = Path(path)
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise FileExistsError(f"{path} exists and is not empty; choose another folder or pass overwrite")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    except OSError as err:
        raise write_error(path, err) from None
    try:
        yield tmp_path
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp_path, path)
    except BaseException:
        shutil.rmtree(tmp_path, ignore_errors=True)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically. Returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")
    return Path(path)


def write_nifti(path: str | os.PathLike, array: np.ndarray, affine: np.ndarray) -> Path:
    """Write ``array`` (spatial axes first) as NIfTI with ``affine``, atomically. Returns the path."""
    img = nib.Nifti1Image(np.asarray(array), np.asarray(affine, dtype=np.float64))
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return Path(path)


def write_volume(path: str | os.PathLike, array: np.ndarray, affine: np.ndarray) -> Path:
    """Write ``array`` (spatial axes first, 2D or 3D) with the RAS ``affine`` in the format its suffix
    names (:data:`VOLUME_WRITERS`: NIfTI through nibabel, NRRD and MHA through MONAI's ``ITKWriter``,
    which stores the affine in the file's LPS convention), atomically, keeping the array's dtype.

    Example::

        write_volume("pm.nrrd", mask, affine)   # LoadVolumed("image")({"image": "pm.nrrd"}) gives it back

    Raises:
        DataError: the suffix has no writer, or the file cannot be written; the message names ``path``.
    """
    from anatosynth_components.data.file_names import image_suffix

    path = Path(path)
    writer = VOLUME_WRITERS.get(image_suffix(path))
    if writer is None:
        raise DataError(f"{path}: no writer for this suffix; use one of {', '.join(VOLUME_WRITERS)}")
    if writer == "nibabel":
        return write_nifti(path, array, affine)
    import itk
    from monai.data import ITKWriter
    from monai.data.utils import to_affine_nd

    array = np.asarray(array)
    nd_affine = to_affine_nd(array.ndim, np.asarray(affine, dtype=np.float64))  # 2D: the 3x3 in-plane part
    # the writer's backend object directly: its set_metadata resamples, which fails on 2D arrays
    image = ITKWriter.create_backend_obj(
        array, channel_dim=None, affine=nd_affine, dtype=array.dtype, affine_lps_to_ras=True
    )
    with atomic_path(path) as tmp:
        itk.imwrite(image, str(tmp))
    return path
