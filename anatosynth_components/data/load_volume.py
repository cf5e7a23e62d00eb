"""``LoadVolumed``: MONAI's ``LoadImaged`` with PENet HDF5 studies and errors that name the file."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

from monai.config import KeysCollection
from monai.transforms import LoadImaged

from anatosynth_components.data.penet import PENetReader
from anatosynth_components.errors import DataError


def gzip_problem(name: Any) -> str | None:
    """Why the ``.gz`` file ``name`` does not decompress (a truncated download, say), or None when it
    does or is no ``.gz`` file: the readers then only say they "cannot work out the file type".

    Example: ``gzip_problem("half.nii.gz")`` -> ``"truncated or corrupt gzip data: Compressed file
    ended before the end-of-stream marker was reached"``.
    """
    path = Path(str(name)).expanduser()
    if not path.name.endswith(".gz") or not path.is_file():
        return None
    try:
        with gzip.open(path, "rb") as fh:
            while fh.read(1 << 24):
                pass
    except (OSError, EOFError, zlib.error) as err:
        return f"truncated or corrupt gzip data: {err}"
    return None


class LoadVolumed(LoadImaged):
    """Load image and label volumes as channel-first ``MetaTensor`` s.

    Every format of MONAI's ``LoadImage`` works (NIfTI and others through nibabel, NRRD, MHA and
    DICOM series folders through ITK), plus PENet studies addressed ``"<file>.hdf5::<study>"``.
    A missing, unreadable or corrupt file raises :class:`~anatosynth_components.errors.DataError`
    naming the file and the key, instead of an error from deep inside a reader.

    Example::

        LoadVolumed(keys=["image", "label"])({"image": "ct.nii.gz", "label": "ct_seg.nrrd"})
        # -> {"image": MetaTensor (1, X, Y, Z), "label": MetaTensor (1, X, Y, Z)}
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("ensure_channel_first", True)
        kwargs["image_only"] = True
        super().__init__(keys, allow_missing_keys=allow_missing_keys, **kwargs)
        self._loader.register(PENetReader())

    def __call__(self, data: Mapping[Hashable, Any], reader: Any = None) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            name = d[key]
            if (
                isinstance(name, (str, Path))
                and "::" not in str(name)
                and not Path(name).expanduser().exists()
            ):
                raise DataError(f"{name}: {key} file not found")
            try:
                loaded = self._loader(name, reader)
                # MONAI Label's bundle app sets image_only = False on every LoadImaged: keep the MetaTensor
                d[key] = loaded[0] if isinstance(loaded, tuple) else loaded
            except DataError:
                raise
            except Exception as err:  # readers raise anything from EOFError to RuntimeError
                reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                reason = gzip_problem(name) or reason
                raise DataError(f"{name}: cannot read the {key} file ({reason})") from err
        return d
