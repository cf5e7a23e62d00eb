"""Output paths checked before the work: inputs are never overwritten, and a path that cannot be
written is named at once instead of after an hour of computing.

Each check raises :class:`~anatosynth_components.errors.DataError` whose message starts with the
path at fault and says what is wrong; none names a temporary file.

Example::

    check_output_file("out/pm.nii.gz", inputs=["ct.nii.gz"])   # creates out/, returns Path("out/pm.nii.gz")
    check_output_file("ct.nii.gz", inputs=["ct.nii.gz"])
    # DataError: ct.nii.gz: this output is the input file ct.nii.gz; refusing to overwrite the input
    #            (choose another path)
    check_output_file("pm.png", inputs=["ct.nii.gz"])
    # DataError: pm.png: no writer for '.png' files; name the file *.nii.gz, *.nii, *.nrrd or *.mha
    check_output_folder("/read-only/out")
    # DataError: /read-only/out: cannot create the output folder (Permission denied)
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from anatosynth_components.atomic import VOLUME_WRITERS
from anatosynth_components.data.file_names import image_suffix
from anatosynth_components.errors import DataError

PathLike = str | os.PathLike


def suffix_of(path: PathLike) -> str:
    """The format suffix of ``path``: a known image suffix whole (``.nii.gz``), else the last one."""
    return image_suffix(path) or Path(path).suffix


def input_path(source: PathLike) -> Path:
    """The file or folder on disk behind an input name (``"<file>.hdf5::<study>"`` -> the file)."""
    return Path(str(source).split("::", 1)[0]).expanduser()


def check_suffix(path: PathLike, suffixes: Iterable[str] = tuple(VOLUME_WRITERS), hint: str = "") -> None:
    """Refuse a file name whose suffix has no writer among ``suffixes`` (``.nii.gz`` counts whole)."""
    allowed = tuple(suffixes)
    if not any(str(path).endswith(s) and len(Path(path).name) > len(s) for s in allowed):
        found = suffix_of(path)
        problem = f"no writer for '{found}' files" if found else "no file suffix to choose a writer"
        names = (
            ", ".join(f"*{s}" for s in allowed[:-1])
            + (" or " if len(allowed) > 1 else "")
            + f"*{allowed[-1]}"
        )
        raise DataError(f"{path}: {problem}; name the file {names}{hint}")


def check_not_input(
    path: PathLike, inputs: Iterable[PathLike], what: str = "this output", folder: str = "the input folder"
) -> None:
    """Refuse ``path`` when it is an input file (the same path, or a hard or symbolic link to it) or
    is or lies inside an input folder (a DICOM series, a dataset; ``folder`` names it in the message)."""
    out = Path(path).expanduser()
    for source in inputs:
        src = input_path(source)
        if not src.exists():
            continue
        if src.is_dir():
            if out.resolve().is_relative_to(src.resolve()):
                where = "is" if out.resolve() == src.resolve() else "lies inside"
                raise DataError(
                    f"{path}: {what} {where} {folder} {source}; outputs would mix with the inputs "
                    "(choose a path outside it)"
                )
        elif out.exists() and os.path.samefile(out, src):
            literal = os.path.abspath(out) == os.path.abspath(src)
            kind = "the input file" if literal else "a link to the input file"
            raise DataError(
                f"{path}: {what} is {kind} {source}; refusing to overwrite the input (choose another path)"
            )


def check_output_folder(folder: PathLike) -> Path:
    """Create ``folder`` (and its parents) or check that it is a folder this process can write in."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder}: is a file, not a folder; outputs cannot be written into it")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"{folder}: cannot create the output folder ({err.strerror or err})") from None
    try:
        with tempfile.TemporaryFile(dir=folder):  # the honest test: os.access says yes to root everywhere
            pass
    except OSError as err:
        raise DataError(f"{folder}: the output folder is not writable ({err.strerror or err})") from None
    return folder


def check_output_file(
    path: PathLike,
    inputs: Iterable[PathLike] = (),
    suffixes: Iterable[str] = tuple(VOLUME_WRITERS),
    hint: str = "",
    what: str = "this output",
) -> Path:
    """All checks for one output file, in order: a writer for its suffix, not an input, not a folder,
    its folder created or writable.  Returns ``path`` as a ``Path``."""
    check_suffix(path, suffixes, hint)
    check_not_input(path, inputs, what)
    out = Path(path).expanduser()
    if out.is_dir():
        raise DataError(f"{path}: is a folder; give a file name for {what}")
    check_output_folder(out.parent)
    return out


def check_distinct(outputs: Mapping[str, PathLike | None]) -> None:
    """Refuse two outputs that name the same file (``{"pseudo-mask": ..., "--seeds-out": ...}``);
    ``None`` entries are skipped."""
    seen: dict[Path, str] = {}
    for what, path in outputs.items():
        if path is None:
            continue
        key = Path(path).expanduser().resolve()
        if key in seen:
            raise DataError(
                f"{path}: given as both the {seen[key]} and the {what} output; give each its own file"
            )
        seen[key] = what
