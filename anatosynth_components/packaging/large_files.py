"""``large_files.yml``: the files the model zoo takes by URL only (over 25 MB), with their hashes.

The zoo keeps no file over 25 MB in a bundle: such a file (the trained ``models/model.pt`` of every
AnatoSynth bundle at its default size) is uploaded elsewhere and listed, with its URL and hash, in the
bundle's ``large_files.yml``, which ``monai.bundle download`` reads to fetch it::

    large_files:
      - path: "models/model.pt"
        url: "https://.../model.pt"
        hash_val: "<sha256>"
        hash_type: "sha256"

Example::

    >>> entry = large_file_entry("models/model.pt", "https://host/model.pt", "ab12")
    >>> render([entry]).splitlines()[1]
    '  - path: "models/model.pt"'
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from anatosynth_components.errors import ConfigError

#: the model zoo's limit for a file kept in the bundle itself
ZOO_FILE_LIMIT = 25 * 10**6
HASH_TYPE = "sha256"


def sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def large_file_entry(path: str, url: str, hash_val: str) -> dict[str, str]:
    return {"path": path, "url": url, "hash_val": hash_val, "hash_type": HASH_TYPE}


def render(entries: Sequence[Mapping[str, str]]) -> str:
    """The YAML text of ``large_files.yml`` (values quoted, one entry per file)."""
    lines = ["large_files:"]
    for e in entries:
        lines.append(f'  - path: "{e["path"]}"')
        lines += [f'    {k}: "{e[k]}"' for k in ("url", "hash_val", "hash_type")]
    return "\n".join(lines) + "\n"


def read_large_files(path: str | os.PathLike) -> list[dict[str, str]]:
    """The entries of a ``large_files.yml`` (empty list when the file lists none)."""
    doc = yaml.safe_load(Path(path).read_text()) or {}
    entries = doc.get("large_files") or []
    for e in entries:
        missing = [k for k in ("path", "url", "hash_val", "hash_type") if k not in e]
        if missing:
            raise ConfigError(f"{path}: an entry lacks {missing}: {e}")
    return [{k: str(e[k] or "") for k in ("path", "url", "hash_val", "hash_type")} for e in entries]


def large_entries(
    bundle_dir: str | os.PathLike,
    files: Sequence[str],
    urls: Mapping[str, str],
    limit: int = ZOO_FILE_LIMIT,
    shown: str | os.PathLike | None = None,
) -> list[dict[str, str]]:
    """Entries for the ``files`` (relative paths) of ``bundle_dir`` larger than ``limit`` bytes.

    Raises ``ConfigError`` naming a large file that has no URL in ``urls`` (relative path -> URL):
    the zoo cannot take it otherwise; error messages name the file under ``shown`` (default
    ``bundle_dir``).
    """
    root = Path(bundle_dir)
    entries = []
    for rel in files:
        size = (root / rel).stat().st_size
        if size <= limit:
            continue
        if not urls.get(rel):
            raise ConfigError(
                f"{Path(shown or root) / rel} is {size / 1e6:.0f} MB, over the model zoo's 25 MB: "
                f"upload it and pass "
                f"--large-file-url {rel}=URL (it then goes to large_files.yml, not into the zip)"
            )
        entries.append(large_file_entry(rel, urls[rel], sha256(root / rel)))
    return entries
