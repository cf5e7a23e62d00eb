"""Write files and folders under a temporary name, then rename, so a crash never leaves a
half-written file that looks valid.

Example::

    with atomic_path("out/vol.nii.gz") as tmp:
        nib.save(img, tmp)          # tmp ends in ".nii.gz" too, so the format is kept
    # out/vol.nii.gz now exists, complete, or not at all
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


def _suffix(path: Path) -> str:
    """The format suffix of ``path`` (``.nii.gz`` whole, else the last one), so that writers that pick
    a format by the file name still work on the temporary name."""
    from anatosynth_components.data.file_names import image_suffix  # the data package imports this module

    return image_suffix(path) or path.suffix


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".part{_suffix(path)}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder under a temporary sibling name and rename it to ``path`` when complete.

    Raises:
        FileExistsError: ``path`` exists and is not empty, and ``overwrite`` is False.
    """
    path = Path(path)
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise FileExistsError(f"{path} exists and is not empty; choose another folder or pass overwrite")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
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
