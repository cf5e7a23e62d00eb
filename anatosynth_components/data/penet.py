"""PENet chest CT (CTPA): reader for its ``data.hdf5`` + ``series_list.pkl`` layout.

Layout::

    <root>/data.hdf5          one int16 HU dataset per study, keyed by study number, indexed [z, y, x]
    <root>/series_list.pkl    optional: pickled list of PENet ``CTPE`` records (study_num, phase,
                              slice_thickness, num_slices, is_positive, ...) that holds the split

Items address one study as ``"<root>/data.hdf5::<study>"``; :class:`PENetReader` teaches MONAI's
``LoadImage`` that address (``LoadVolumed`` registers it), so PENet studies flow through the same
transforms as NIfTI volumes.  The reader returns arrays as (x, y, z), the axis order of the
NIfTI readers, with affine diag(1, 1, 1.25): the HDF5 stores no spacing, PENet studies are
1.25 mm thin-slice CTPA, and the in-plane spacing is not recorded.

``series_list.pkl`` is read with a restricted unpickler: PENet's own ``CTPE`` class (and any other
class) is replaced by a plain attribute holder, and no code from the file is run.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from monai.data import ImageReader
from monai.utils import MetaKeys, SpaceKeys, ensure_tuple

from anatosynth_components.data.dataset_index import DatasetIndex
from anatosynth_components.errors import DataError

STUDY_SEP = "::"
PENET_SPACING = (1.0, 1.0, 1.25)
#: PENet phases -> split names used by :func:`~anatosynth_components.data.split.split_subjects`.
PHASES = {"train": "training", "val": "validation", "test": "test"}


class _Record:
    """Stands in for any class named in a pickle (PENet's ``ct.ct_pe.CTPE``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple):  # (dict, slots) form
            state = {k: v for part in state if isinstance(part, dict) for k, v in part.items()}
        if isinstance(state, dict):
            self.__dict__.update(state)


class _SeriesListUnpickler(pickle.Unpickler):
    """Unpickler that builds containers and plain records only."""

    _ALLOWED = {
        ("builtins", "list"), ("builtins", "dict"), ("builtins", "set"), ("builtins", "tuple"),
        ("builtins", "object"), ("copyreg", "_reconstructor"), ("collections", "OrderedDict"),
        ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
    }  # fmt: skip

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        return type(name, (_Record,), {"__module__": f"penet_record.{module}"})


def read_series_list(path: Path) -> list[dict[str, Any]]:
    """Read ``series_list.pkl`` into dictionaries with at least ``study_num`` and ``phase``."""
    try:
        with path.open("rb") as fh:
            records = _SeriesListUnpickler(fh).load()
    except Exception as err:  # any unpickling failure means a corrupt or foreign file
        raise DataError(f"{path}: cannot read the PENet series list ({type(err).__name__}: {err})") from err
    if not isinstance(records, (list, tuple)):
        raise DataError(f"{path}: expected a list of study records, got {type(records).__name__}")
    out = []
    for record in records:
        fields = record if isinstance(record, dict) else getattr(record, "__dict__", {})
        if "study_num" not in fields:
            raise DataError(f"{path}: record {record!r} has no 'study_num'")
        out.append(dict(fields))
    return out


def read_penet(root: str | Path, hdf5_name: str = "data.hdf5") -> DatasetIndex:
    """Read a PENet dataset: every study of ``data.hdf5``, with the split of ``series_list.pkl``.

    Returns:
        a :class:`DatasetIndex` whose items hold ``image`` (``<hdf5>::<study>``), ``subject``
        (the study number) and, when ``series_list.pkl`` exists, ``split``.
    """
    root = Path(root)
    h5_path = root if root.is_file() else root / hdf5_name
    if not h5_path.is_file():
        raise DataError(f"{h5_path}: PENet HDF5 file not found")
    try:
        with h5py.File(h5_path, "r") as fh:
            studies = {k: fh[k].shape for k in fh.keys() if isinstance(fh[k], h5py.Dataset)}
    except OSError as err:
        raise DataError(f"{h5_path}: not a readable HDF5 file ({err})") from err
    pkl = h5_path.parent / "series_list.pkl"
    records = read_series_list(pkl) if pkl.is_file() else None
    if records is not None:
        missing = [str(r["study_num"]) for r in records if str(r["study_num"]) not in studies]
        if missing:
            raise DataError(f"{pkl} lists studies {missing[:10]} that {h5_path} does not hold")
        order = [(str(r["study_num"]), r) for r in records]
    else:
        order = [(k, {}) for k in sorted(studies, key=lambda s: (len(s), s))]
    items = []
    for study, record in order:
        if len(studies[study]) != 3:
            raise DataError(f"{h5_path}: study {study} has shape {studies[study]}, expected [z, y, x]")
        item = {"image": f"{h5_path}{STUDY_SEP}{study}", "subject": study}
        phase = str(record.get("phase", ""))
        if phase:
            item["split"] = PHASES.get(phase.split("_")[0], phase)
        items.append(item)
    return DatasetIndex(
        name="PENet", layout="penet", source=h5_path, items=items, info={"modality": {"0": "CT"}}
    )


class PENetReader(ImageReader):
    """MONAI image reader for one study of a PENet HDF5 file, addressed ``"<file>.hdf5::<study>"``.

    Example::

        LoadImage(reader=PENetReader(), image_only=True)("/data/penet/data.hdf5::1234")
        # -> MetaTensor (x, y, z) in HU, affine diag(1, 1, 1.25)
    """

    def __init__(self, spacing: Sequence[float] = PENET_SPACING) -> None:
        super().__init__()
        self.spacing = tuple(float(s) for s in spacing)

    @staticmethod
    def _split(name: Any) -> tuple[str, str] | None:
        text = str(name)
        if STUDY_SEP not in text:
            return None
        path, study = text.rsplit(STUDY_SEP, 1)
        return (path, study) if Path(path).suffix in (".hdf5", ".h5") else None

    def verify_suffix(self, filename: Sequence[Any] | Any) -> bool:
        return all(self._split(f) is not None for f in ensure_tuple(filename))

    def read(self, data: Sequence[Any] | Any, **kwargs: Any) -> list[np.ndarray]:
        arrays = []
        for name in ensure_tuple(data):
            parts = self._split(name)
            if parts is None:
                raise DataError(f"{name}: not a PENet study address '<file>.hdf5{STUDY_SEP}<study>'")
            path, study = parts
            try:
                with h5py.File(path, "r") as fh:
                    if study not in fh:
                        raise DataError(f"{path}: no study {study!r} in the PENet HDF5 file")
                    arrays.append(np.asarray(fh[study][()]))
            except OSError as err:
                raise DataError(f"{path}: not a readable HDF5 file ({err})") from err
        return arrays

    def get_data(self, img: Any) -> tuple[np.ndarray, dict]:
        arrays = [np.ascontiguousarray(np.transpose(a, (2, 1, 0))) for a in ensure_tuple(img)]
        affine = np.diag([*self.spacing, 1.0])
        meta = {
            "affine": affine,
            "original_affine": affine.copy(),
            MetaKeys.SPATIAL_SHAPE: np.asarray(arrays[0].shape),
            MetaKeys.SPACE: SpaceKeys.RAS,
            MetaKeys.ORIGINAL_CHANNEL_DIM: float("nan") if len(arrays) == 1 else 0,
        }
        return (arrays[0] if len(arrays) == 1 else np.stack(arrays)), meta
