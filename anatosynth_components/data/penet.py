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

import os
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


class PENetSlices:
    """Reads single axial slices of PENet studies without loading the whole study: the lazy
    counterpart of :class:`PENetReader` for per-slice data paths.

    ``read(address, z)`` returns slice ``z`` as float32 ``(x, y)``, i.e. exactly
    ``PENetReader``'s ``(x, y, z)`` array at ``[..., z]`` (HU); ``depth(address)`` the number of
    slices, from the HDF5 metadata alone.  HDF5 files are kept open between reads (one handle per
    file, reopened in a forked process) until :meth:`close`.

    Example::

        slices = PENetSlices()
        slices.depth("/data/penet/data.hdf5::1234")        # 312
        slices.read("/data/penet/data.hdf5::1234", 100)    # float32 (512, 512), HU
    """

    def __init__(self) -> None:
        self._files: dict[str, h5py.File] = {}
        self._pid = os.getpid()

    @staticmethod
    def accepts(address: Any) -> bool:
        """Whether ``address`` names a study of a PENet HDF5 file (``<file>.hdf5::<study>``)."""
        return PENetReader._split(address) is not None

    def _dataset(self, address: Any) -> h5py.Dataset:
        parts = PENetReader._split(address)
        if parts is None:
            raise DataError(f"{address}: not a PENet study address '<file>.hdf5{STUDY_SEP}<study>'")
        path, study = parts
        if os.getpid() != self._pid:  # handles do not survive a fork
            self._files, self._pid = {}, os.getpid()
        if path not in self._files:
            try:
                self._files[path] = h5py.File(path, "r")
            except OSError as err:
                raise DataError(f"{path}: not a readable HDF5 file ({err})") from err
        fh = self._files[path]
        if study not in fh or not isinstance(fh[study], h5py.Dataset) or fh[study].ndim != 3:
            raise DataError(f"{path}: no 3-D study {study!r} in the PENet HDF5 file")
        return fh[study]

    def depth(self, address: Any) -> int:
        """The study's number of axial slices (its HDF5 shape [z, y, x]), without reading it."""
        return int(self._dataset(address).shape[0])

    def read(self, address: Any, z: int) -> np.ndarray:
        """Axial slice ``z`` as float32 (x, y) in HU."""
        data = self._dataset(address)
        if not 0 <= z < data.shape[0]:
            raise DataError(f"{address}: slice {z} out of range (the study has {data.shape[0]} slices)")
        return np.ascontiguousarray(np.asarray(data[z]).T, dtype=np.float32)

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._files = {}
