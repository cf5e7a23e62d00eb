"""``package_bundle``: a zoo-ready copy of a bundle, its zip, and the pinned component wheel.

Writes, under ``out_dir``::

    <name>/                        the bundle files only (see bundle_files), large ones included
    <name>_v<version>.zip          the same files under <name>/, without the files over 25 MB, which
                                   large_files.yml lists by URL and sha256 (the zoo's release form)
    wheels/anatosynth_components-<pin>-py3-none-any.whl

after checking the bundle against the zoo's rules (:mod:`.conformance`; the metadata always against
the zoo's schema, the copy the package ships unless ``schema`` names another file).  Everything is
written under temporary names and renamed when complete.

Example::

    result = package_bundle("bundles/anatomask_oasis", "dist")
    result.zip_path   # dist/anatomask_oasis_v0.4.0.zip
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from anatosynth_components.atomic import atomic_dir, atomic_path
from anatosynth_components.errors import ConfigError
from anatosynth_components.packaging.bundle_files import bundle_files
from anatosynth_components.packaging.conformance import PACKAGE, bundle_problems, environment_mismatches
from anatosynth_components.packaging.export import check_export
from anatosynth_components.packaging.large_files import large_entries, read_large_files, render
from anatosynth_components.packaging.wheel import build_wheel, wheel_source

logger = logging.getLogger(__name__)

#: export kind -> file in the packaged bundle
EXPORT_FILES = {"torchscript": "models/model.ts", "onnx": "models/model.onnx"}


@dataclass
class PackageResult:
    folder: Path
    zip_path: Path
    wheel: Path | None
    files: list[str]
    skipped: list[str]
    large_files: list[dict[str, str]] = field(default_factory=list)


def package_bundle(
    bundle_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    schema: str | os.PathLike | None = None,
    large_file_urls: Mapping[str, str] | None = None,
    wheel: bool = True,
    overwrite: bool = False,
    exports: Sequence[str] = (),
) -> PackageResult:
    """Package ``bundle_dir`` into ``out_dir`` (see the module docstring).

    Args:
        bundle_dir: the bundle folder (``configs/metadata.json`` inside).
        out_dir: where the folder, zip and wheel go (created).
        schema: the zoo's metadata schema file; None: the one the package ships
            (:data:`~anatosynth_components.packaging.conformance.META_SCHEMA`).
        large_file_urls: relative path -> URL of every published file over 25 MB.
        wheel: build the ``anatosynth-components`` wheel the metadata pins.
        overwrite: replace an existing ``out_dir/<name>`` folder and zip.
        exports: ``"torchscript"`` and / or ``"onnx"``: export ``models/model.pt`` to ``models/model.ts``
            / ``models/model.onnx`` in the packaged folder, each checked against the eager network.

    Raises:
        ConfigError: the bundle breaks a zoo rule (every problem listed), a large file has no URL,
            or the wheel cannot be built at the pinned version.
    """
    src = Path(bundle_dir).resolve()
    if not (src / "configs" / "metadata.json").is_file():
        raise ConfigError(f"{src}: not a bundle folder (no configs/metadata.json)")
    problems = bundle_problems(src, schema)
    if problems:
        raise ConfigError("the bundle does not meet the model zoo's rules:\n  " + "\n  ".join(problems))
    meta = json.loads((src / "configs" / "metadata.json").read_text())
    for line in environment_mismatches(meta):
        logger.warning("%s", line)
    name, version = src.name, str(meta["version"])
    files, skipped = bundle_files(src)
    files = [f for f in files if f != "large_files.yml"]
    listed = read_large_files(src / "large_files.yml") if (src / "large_files.yml").is_file() else []
    urls = {e["path"]: e["url"] for e in listed if e["url"]} | dict(large_file_urls or {})
    if exports and "models/model.pt" not in files:
        raise ConfigError(f"{src}/models/model.pt: file not found; train the bundle before exporting it")
    pin = str(meta["required_packages_version"][PACKAGE])
    wheel_root = wheel_source(pin) if wheel else None  # no checkout or another version: fail before writing
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    zip_path = out / f"{name}_v{version}.zip"
    if zip_path.exists() and not overwrite:
        raise FileExistsError(f"{zip_path} exists; choose another --out or pass --overwrite")

    with atomic_dir(out / name, overwrite=overwrite) as tmp:
        for rel in files:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, tmp / rel)
        for kind in exports:
            rel = EXPORT_FILES.get(kind)
            if rel is None:
                raise ConfigError(f"export must be one of {', '.join(EXPORT_FILES)}, got {kind!r}")
            check_export(tmp, tmp / "models" / "model.pt", kind, tmp / rel)
            files = sorted({*files, rel})
        entries = large_entries(tmp, files, urls, shown=src)
        (tmp / "large_files.yml").write_text(render(entries))
    large = {e["path"] for e in entries}
    folder = out / name
    with atomic_path(zip_path) as tmp_zip, zipfile.ZipFile(tmp_zip, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in [*files, "large_files.yml"]:
            if rel not in large:
                zf.write(folder / rel, f"{name}/{rel}")
    built = build_wheel(out / "wheels", pin, wheel_root) if wheel else None
    for rel in skipped:
        logger.info("not published: %s", rel)
    logger.info("bundle folder %s, zip %s%s", folder, zip_path, f", wheel {built}" if built else "")
    return PackageResult(folder, zip_path, built, [*files, "large_files.yml"], skipped, entries)
