"""The result of reading a dataset from disk: its items, label names and where it came from.

Every reader (:func:`~anatosynth_components.data.learn2reg.read_learn2reg`,
:func:`~anatosynth_components.data.neurite_oasis.read_neurite_oasis`,
:func:`~anatosynth_components.data.penet.read_penet`,
:func:`~anatosynth_components.data.datalist.read_datalist`) returns a :class:`DatasetIndex`;
:func:`read_dataset` picks the reader from the folder's layout.

Items are MONAI-style dictionaries of paths, ready for ``LoadVolumed``::

    {"image": "/data/OASIS/imagesTr/OASIS_0001_0000.nii.gz",
     "label": "/data/OASIS/labelsTr/OASIS_0001_0000.nii.gz",
     "subject": "OASIS_0001",      # splits keep a subject's volumes together
     "volume": "OASIS_0001_0000"}  # unique per item; slice stacks carry it
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anatosynth_components.data.file_names import image_stem
from anatosynth_components.errors import DataError

LAYOUTS = ("learn2reg", "neurite_oasis", "penet", "datalist")


@dataclass
class DatasetIndex:
    """A dataset read from disk.

    Args:
        name: dataset name (from its JSON, or the folder name).
        layout: one of :data:`LAYOUTS`.
        source: the file or folder the index was read from (named in error messages).
        items: one dictionary per volume with ``image``, optional ``label``, ``subject`` and
            ``volume`` (unique; derived from the image name when the reader does not set it).
        labels: label id -> name, without background (empty when the dataset has no labels).
        info: other facts from the dataset's metadata (modality, shape, ...).
    """

    name: str
    layout: str
    source: Path
    items: list[dict[str, Any]]
    labels: dict[int, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def subjects(self) -> list[str]:
        """Distinct subject ids in item order."""
        return list(dict.fromkeys(item["subject"] for item in self.items))

    def __post_init__(self) -> None:
        if not self.items:
            raise DataError(f"{self.source}: the dataset holds no usable image (layout {self.layout})")
        seen: dict[str, int] = {}
        for item in self.items:
            base = str(item.get("volume") or volume_name(item["image"]))
            seen[base] = seen.get(base, 0) + 1
            item["volume"] = base if seen[base] == 1 else f"{base}#{seen[base]}"


def volume_name(image: str) -> str:
    """``.../OASIS_0001_0000.nii.gz`` -> ``OASIS_0001_0000``; a PENet address -> its study."""
    if "::" in str(image):
        return str(image).rsplit("::", 1)[-1]
    return image_stem(image)


def read_json(path: Path) -> Any:
    """Parse a JSON file; a missing or malformed file raises :class:`DataError` naming it."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err})") from err


def resolve(root: Path, rel: str, listed_in: Path, what: str) -> Path:
    """``root / rel`` that must exist (a file, or a folder for a DICOM series)."""
    check_listed_path(rel, listed_in, what)
    return existing(Path(rel) if os.path.isabs(rel) else root / rel, rel, listed_in, what)


def check_listed_path(rel: object, listed_in: Path, what: str) -> None:
    """``DataError`` naming ``listed_in`` when the ``what`` entry ``rel`` is not a non-empty string."""
    if not isinstance(rel, str) or not rel:
        raise DataError(f"{listed_in}: {what} entry {rel!r} is not a path")


def existing(path: str | os.PathLike, rel: str, listed_in: Path, what: str) -> Path:
    """``path`` (the entry ``rel`` of ``listed_in`` resolved) if it exists, else a ``DataError``."""
    if not os.path.exists(path):
        raise DataError(f"{listed_in} lists {what} {rel!r}, but {path} does not exist")
    return Path(path)


def parse_label_names(raw: Any, source: Path) -> dict[int, str]:
    """Label names from ``{"0": "background", "1": "spleen"}`` or the nested per-modality form
    ``{"0": {"1": "spleen"}}`` of newer Learn2Reg releases; background (id 0) is dropped."""
    if raw is None:
        return {}
    if isinstance(raw, dict) and raw and all(isinstance(v, dict) for v in raw.values()):
        raw = next(iter(raw.values()))
    if not isinstance(raw, dict):
        raise DataError(f"{source}: 'labels' must map ids to names, got {type(raw).__name__}")
    try:
        names = {int(k): str(v) for k, v in raw.items()}
    except ValueError as err:
        raise DataError(f"{source}: 'labels' has a non-integer id ({err})") from err
    names.pop(0, None)
    return dict(sorted(names.items()))


def detect_layout(path: Path) -> str:
    """Guess the layout of ``path`` (a folder, an HDF5 file or a datalist JSON)."""
    if path.is_file():
        if path.suffix in (".hdf5", ".h5"):
            return "penet"
        if path.name.endswith("_dataset.json"):
            return "learn2reg"
        if path.suffix == ".json":
            return "datalist"
    if not path.is_dir():
        raise DataError(f"{path}: dataset folder not found")
    if (path / "data.hdf5").is_file():
        return "penet"
    if list(path.glob("*_dataset.json")):
        return "learn2reg"
    if any(path.glob("*/aligned_norm.nii.gz")):
        return "neurite_oasis"
    if (path / "dataset.json").is_file() or (path / "datalist.json").is_file():
        return "datalist"
    raise DataError(
        f"{path}: layout not recognised: expected a Learn2Reg '<TASK>_dataset.json', neurite-oasis "
        "subject folders with 'aligned_norm.nii.gz', a PENet 'data.hdf5', or a datalist 'dataset.json'"
    )


def read_dataset(path: str | os.PathLike, layout: str = "auto", **kwargs: Any) -> DatasetIndex:
    """Read the dataset at ``path`` with the reader of ``layout`` (``"auto"`` detects it).

    Example::

        index = read_dataset("/data/L2R_OASIS")          # Learn2Reg layout detected
        print(len(index.items), index.labels[1])           # 414 Left-Cerebral-White-Matter
    """
    from anatosynth_components.data.datalist import read_datalist
    from anatosynth_components.data.learn2reg import read_learn2reg
    from anatosynth_components.data.neurite_oasis import read_neurite_oasis
    from anatosynth_components.data.penet import read_penet

    readers: dict[str, Callable[..., DatasetIndex]] = {
        "learn2reg": read_learn2reg,
        "neurite_oasis": read_neurite_oasis,
        "penet": read_penet,
        "datalist": read_datalist,
    }
    path = Path(path).expanduser()
    if layout == "auto":
        layout = detect_layout(path)
    if layout not in readers:
        raise DataError(f"unknown dataset layout {layout!r}; choose one of {('auto', *LAYOUTS)}")
    return readers[layout](path, **kwargs)
