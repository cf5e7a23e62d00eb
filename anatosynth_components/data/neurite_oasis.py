"""Reader for the neurite-oasis release (the source of Learn2Reg OASIS).

Layout::

    <root>/seg35_labels.txt                       FreeSurfer LUT lines "idx name R G B A"
    <root>/OASIS_OAS1_0001_MR1/aligned_norm.nii.gz
    <root>/OASIS_OAS1_0001_MR1/aligned_seg35.nii.gz
    ...

The subject id is the folder name without its ``OASIS_`` prefix (``OAS1_0001_MR1``).
``seg35_labels.txt`` may also sit inside the subject folders; the first one found is used.
Set ``seg="seg4"`` to read the 4-label maps instead.
"""

from __future__ import annotations

from pathlib import Path

from anatosynth_components.data.dataset_index import DatasetIndex
from anatosynth_components.errors import DataError


def read_lut(path: Path) -> dict[int, str]:
    """Parse FreeSurfer LUT lines ``idx name R G B A``; comments and blank lines are skipped."""
    names: dict[int, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        try:
            idx = int(fields[0])
        except ValueError as err:
            raise DataError(f"{path}:{number}: expected 'idx name R G B A', got {line.strip()!r}") from err
        if len(fields) < 2:
            raise DataError(f"{path}:{number}: label {idx} has no name")
        if idx != 0:
            names[idx] = fields[1]
    return dict(sorted(names.items()))


def read_neurite_oasis(root: str | Path, seg: str = "seg35") -> DatasetIndex:
    """Read the neurite-oasis subject folders under ``root``.

    Returns:
        a :class:`DatasetIndex` with ``image`` = ``aligned_norm.nii.gz`` and
        ``label`` = ``aligned_<seg>.nii.gz`` of every subject folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: neurite-oasis folder not found")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("OASIS_"))
    items = []
    for folder in folders:
        image, label = folder / "aligned_norm.nii.gz", folder / f"aligned_{seg}.nii.gz"
        for path in (image, label):
            if not path.is_file():
                raise DataError(f"{folder}: subject folder has no {path.name}")
        items.append(
            {"image": str(image), "label": str(label), "subject": folder.name.removeprefix("OASIS_")}
        )
    luts = [root / f"{seg}_labels.txt", *(f / f"{seg}_labels.txt" for f in folders)]
    lut = next((p for p in luts if p.is_file()), None)
    if lut is None and items:
        raise DataError(f"{root}: no {seg}_labels.txt (FreeSurfer LUT of the label names)")
    return DatasetIndex(
        name="neurite-oasis",
        layout="neurite_oasis",
        source=root,
        items=items,
        labels=read_lut(lut) if lut else {},
        info={"seg": seg},
    )
