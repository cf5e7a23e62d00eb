"""Reader for a MONAI datalist JSON of NIfTI (or NRRD, MHA, DICOM-folder) files.

Format (Medical Segmentation Decathlon style; paths relative to the JSON's folder)::

    {"name": "...", "labels": {"1": "left upper lobe", ...},
     "training": [{"image": "imagesTr/case_001.nii.gz", "label": "labelsTr/case_001.nii.gz"}, ...]}

An item may carry ``"subject"``; otherwise the subject id is the image file name without its
extension.  Items of one subject stay together in every split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from monai.data import load_decathlon_datalist

from anatosynth_components.data.dataset_index import (
    DatasetIndex,
    check_listed_path,
    existing,
    parse_label_names,
    read_json,
)
from anatosynth_components.data.learn2reg import subject_from_filename
from anatosynth_components.errors import DataError

#: the entries whose paths MONAI's reader resolves (relative to ``base_dir``) and this reader checks
PATH_KEYS = ("image", "label")


def read_datalist(
    path: str | Path, key: str = "training", base_dir: str | Path | None = None
) -> DatasetIndex:
    """Read a datalist JSON (or the ``dataset.json`` / ``datalist.json`` in a folder).

    MONAI's ``load_decathlon_datalist`` reads the list and resolves the ``image`` / ``label`` paths
    against ``base_dir``; on top of it this reader names the file and the entry in every error (a
    missing file, a missing or non-list ``key``, an entry without ``image``, a path that is not a
    string or does not exist), takes the subject from ``"subject"`` or the image name, and returns a
    :class:`DatasetIndex` with the label names.  Other fields of an entry are kept as written (MONAI
    would turn any of them that names an existing file into a path, e.g. a ``"subject"`` beside a
    subject folder of the same name).

    Args:
        path: the JSON file or the folder holding it.
        key: the list to read.
        base_dir: folder the paths are relative to (default: the JSON's folder).

    Example::

        index = read_datalist("/data/tlobes")          # /data/tlobes/dataset.json
        index.items[0]["image"], index.subjects[:2]    # ("/data/tlobes/img/a.nii.gz", ["a", "b"])
    """
    path = Path(path)
    if path.is_dir():
        path = next((path / n for n in ("dataset.json", "datalist.json") if (path / n).is_file()), path)
    doc = read_json(path)
    entries = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise DataError(f"{path}: key {key!r} is missing or is not a list")
    for entry in entries:
        if not isinstance(entry, dict) or "image" not in entry:
            raise DataError(f"{path}: entry {entry!r} of {key!r} has no 'image'")
        for what in PATH_KEYS:
            if what in entry:
                check_listed_path(entry[what], path, what)
    root = Path(base_dir) if base_dir is not None else path.parent
    # (MONAI reads entries[0] of a "test" list unguarded: an empty list goes straight to DatasetIndex's error)
    resolved = load_decathlon_datalist(path, True, key, root) if entries else []
    items = [_item(entry, paths, path) for entry, paths in zip(entries, resolved, strict=True)]
    return DatasetIndex(
        name=str(doc.get("name", path.parent.name)),
        layout="datalist",
        source=path,
        items=items,
        labels=parse_label_names(doc.get("labels"), path),
        info={k: doc[k] for k in ("modality", "description") if k in doc},
    )


def _item(entry: dict[str, Any], paths: dict[str, Any], listed_in: Path) -> dict[str, Any]:
    """``entry`` with MONAI's resolved ``image`` / ``label`` paths (which must exist) and a subject."""
    item = dict(entry)
    for what in PATH_KEYS:
        if what in entry:
            item[what] = str(existing(paths[what], entry[what], listed_in, what))
    item["subject"] = str(entry.get("subject", subject_from_filename(item["image"])))
    return item
