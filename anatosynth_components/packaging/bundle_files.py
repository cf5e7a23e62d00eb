"""Which files of a bundle folder belong in a published bundle.

A bundle folder in use also holds demo data, run outputs, caches and training states; none of them
goes to the model zoo.  Kept (relative to the bundle folder):

- ``LICENSE``, ``large_files.yml``, ``README.md`` (if present);
- everything under ``configs/``, ``docs/`` and ``scripts/`` except caches (``__pycache__``, ``*.pyc``),
  hidden files and unfinished atomic writes (``*.part*``);
- the trained model files directly in ``models/``: ``model.pt``, ``model.ts``, ``model.onnx`` and their
  JSON records (``model.pt.best.json``, ACIS's ``data_grid.json``).

Training states are never kept (:func:`training_state`, one rule for all workflows): nothing under
a subfolder of ``models/`` (the per-workflow states ``phase1/``, ``phase2/``, ``registration/``,
``refine/``, and any later one), no ``latest_checkpoint_epoch=N.pt`` and no ``*_state.pt``
(``refine_state.pt``).  Other weights in ``models/`` that are not among the model files above (ACIS's
``registration.pt`` and ``model_refined.pt``) are not published either.

Example::

    >>> from pathlib import Path
    >>> keep("configs/inference.json"), keep("runs/demo_data/dataset.json"), keep("models/phase1/x.pt")
    (True, False, False)
    >>> [training_state(f) for f in ("models/refine/latest_checkpoint_epoch=3.pt", "models/model.pt")]
    [True, False]
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

TOP_FILES = frozenset({"LICENSE", "large_files.yml", "README.md"})
TREES = frozenset({"configs", "docs", "scripts"})
MODEL_FILES = frozenset({"model.pt", "model.ts", "model.onnx"})
CACHES = frozenset({"__pycache__", ".ipynb_checkpoints"})
#: training-state files directly in ``models/`` (the trainers' checkpoints, the refinement's state)
TRAINING_STATE_FILE = re.compile(r"^(latest_checkpoint_epoch=\d+|.+_state)\.pt$")


def training_state(relative: str | os.PathLike) -> bool:
    """Whether ``relative`` (inside the bundle folder) is a training state: a file in any subfolder of
    ``models/``, or a ``latest_checkpoint_epoch=N.pt`` / ``*_state.pt`` file directly in ``models/``."""
    parts = PurePosixPath(Path(relative).as_posix()).parts
    if len(parts) < 2 or parts[0] != "models":
        return False
    return len(parts) > 2 or TRAINING_STATE_FILE.match(parts[1]) is not None


def keep(relative: str | os.PathLike) -> bool:
    """Whether the file at ``relative`` (a path inside the bundle folder, ``/``-separated) is published."""
    parts = PurePosixPath(Path(relative).as_posix()).parts
    name = parts[-1]
    if any(p.startswith(".") or p in CACHES for p in parts) or name.endswith(".pyc") or ".part" in name:
        return False
    if len(parts) == 1:
        return name in TOP_FILES
    if parts[0] in TREES:
        return True
    if parts[0] == "models":
        return not training_state(relative) and (name in MODEL_FILES or name.endswith(".json"))
    return False


def bundle_files(bundle_dir: str | os.PathLike) -> tuple[list[str], list[str]]:
    """``(kept, skipped)``: the bundle's files as sorted relative POSIX paths, split by :func:`keep`.

    Skipped files deeper than two levels are listed by folder (``runs/demo_data/``).
    """
    root = Path(bundle_dir)
    kept: list[str] = []
    skipped: set[str] = set()
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        if keep(rel):
            kept.append(rel)
        else:
            parts = rel.split("/")
            skipped.add(rel if len(parts) <= 2 else "/".join(parts[:2]) + "/")
    return kept, sorted(skipped)
