"""Reader for a MONAI datalist JSON of NIfTI (or NRRD, MHA, DICOM-folder) files.

Format (Medical Segmentation Decathlon style; paths relative to the JSON's folder)::

    {"name": "...", "labels": {"1": "left upper lobe", ...},
     "training": [{"image": "imagesTr/case_001.nii.gz", "label": "labelsTr/case_001.nii.gz"}, ...]}

An item may carry ``"subject"``; otherwise the subject id is the image file name without its
extension.  Items of one subject stay together in every split.
"""

from __future__ import annotations

from pathlib import Path

from anatosynth_components.data.dataset_index import DatasetIndex, parse_label_names, read_json, resolve
from anatosynth_components.data.learn2reg import subject_from_filename
from anatosynth_components.errors import DataError


def read_datalist(
    path: str | Path, key: str = "training", base_dir: str | Path | None = None
) -> DatasetIndex:
    """Read a datalist JSON (or the ``dataset.json`` / ``datalist.json`` in a folder).

    Args:
        path: the JSON file or the folder holding it.
        key: the list to read.
        base_dir: folder the paths are relative to (default: the JSON's folder).
    """
    path = Path(path)
    if path.is_dir():
        path = next((path / n for n in ("dataset.json", "datalist.json") if (path / n).is_file()), path)
    doc = read_json(path)
    entries = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise DataError(f"{path}: key {key!r} is missing or is not a list")
    root = Path(base_dir) if base_dir is not None else path.parent
    items = []
    for entry in entries:
        if not isinstance(entry, dict) or "image" not in entry:
            raise DataError(f"{path}: entry {entry!r} of {key!r} has no 'image'")
        item = dict(entry)
        item["image"] = str(resolve(root, entry["image"], path, "image"))
        if "label" in entry:
            item["label"] = str(resolve(root, entry["label"], path, "label"))
        item["subject"] = str(entry.get("subject", subject_from_filename(item["image"])))
        items.append(item)
    return DatasetIndex(
        name=str(doc.get("name", path.parent.name)),
        layout="datalist",
        source=path,
        items=items,
        labels=parse_label_names(doc.get("labels"), path),
        info={k: doc[k] for k in ("modality", "description") if k in doc},
    )
