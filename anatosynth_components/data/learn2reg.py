"""Reader for the Learn2Reg layout (OASIS, AbdomenCTCT, ...).

Layout::

    <root>/<TASK>_dataset.json        keys name, modality, labels, tensorImageShape, training, ...
    <root>/imagesTr/<TASK>_0001_0000.nii.gz
    <root>/labelsTr/<TASK>_0001_0000.nii.gz

The subject id is the file name without the extension and the trailing ``_0000`` channel index
(``OASIS_0001``).  An entry of ``training`` without a ``"label"`` key takes the file of the same
name in ``labelsTr/`` when it exists and is skipped (and counted in ``info["skipped"]``) otherwise;
a listed file that does not exist is an error.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from anatosynth_components.data.dataset_index import DatasetIndex, parse_label_names, read_json, resolve
from anatosynth_components.data.file_names import image_stem
from anatosynth_components.errors import DataError

logger = logging.getLogger(__name__)

_CHANNEL_SUFFIX = re.compile(r"^(?P<subject>.+)_(?P<channel>\d{4})$")


def subject_from_filename(path: str | Path) -> str:
    """``.../OASIS_0001_0000.nii.gz`` -> ``OASIS_0001``; other names lose only their extension."""
    name = image_stem(path)
    match = _CHANNEL_SUFFIX.match(name)
    return match["subject"] if match else name


def find_dataset_json(root: Path, task: str | None = None) -> Path:
    """The ``<TASK>_dataset.json`` of ``root`` (or ``root`` itself when it is that file)."""
    if root.is_file():
        return root
    if not root.is_dir():
        raise DataError(f"{root}: Learn2Reg dataset folder not found")
    if task is not None:
        return root / f"{task}_dataset.json"
    found = sorted(root.glob("*_dataset.json"))
    if not found:
        raise DataError(f"{root}: no '<TASK>_dataset.json' file (Learn2Reg layout)")
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise DataError(f"{root}: several dataset files ({names}); pass task=<TASK> to choose one")
    return found[0]


def read_learn2reg(root: str | Path, task: str | None = None, section: str = "training") -> DatasetIndex:
    """Read a Learn2Reg dataset.

    Args:
        root: the dataset folder, or its ``<TASK>_dataset.json``.
        task: the task name when the folder holds several dataset files.
        section: the list of the JSON to read (``training`` by default).

    Returns:
        a :class:`DatasetIndex` whose items hold ``image``, ``label`` and ``subject``.
    """
    json_path = find_dataset_json(Path(root), task)
    root = json_path.parent
    doc = read_json(json_path)
    if not isinstance(doc, dict):
        raise DataError(f"{json_path}: expected a JSON object at the top level")
    entries = doc.get(section)
    if not isinstance(entries, list):
        raise DataError(f"{json_path}: key {section!r} is missing or is not a list")
    items, skipped = [], 0
    for entry in entries:
        if not isinstance(entry, dict) or "image" not in entry:
            raise DataError(f"{json_path}: entry {entry!r} of {section!r} has no 'image'")
        image = resolve(root, entry["image"], json_path, "image")
        if "label" in entry:
            label = resolve(root, entry["label"], json_path, "label")
        else:
            label = root / "labelsTr" / image.name
            if not label.exists():
                skipped += 1
                continue
        items.append({"image": str(image), "label": str(label), "subject": subject_from_filename(image)})
    if skipped:
        logger.info("%s: skipped %d %s entries without a label file", json_path, skipped, section)
    info = {k: doc[k] for k in ("modality", "tensorImageShape", "tensorImageSize", "description") if k in doc}
    info["skipped"] = skipped
    return DatasetIndex(
        name=str(doc.get("name", json_path.stem.removesuffix("_dataset"))),
        layout="learn2reg",
        source=json_path,
        items=items,
        labels=parse_label_names(doc.get("labels"), json_path),
        info=info,
    )
