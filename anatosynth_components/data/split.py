"""Subject-level train / validation / test splits, seeded and stored beside the run's outputs.

The first run draws the split and writes it (atomically) to ``split_file``; later runs read it
back so that every run of an experiment sees the same subjects.  All items of a subject land in
the same split.  When every item carries ``split`` (PENet's ``series_list.pkl`` phases), that
predefined split is used instead of a random one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from anatosynth_components.atomic import write_json
from anatosynth_components.data.dataset_index import read_json
from anatosynth_components.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

SPLITS = ("training", "validation", "test")


def split_counts(num_subjects: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """Subjects per split: validation and test get ``round(f * n)``, at least one when their
    fraction is positive; training gets the rest and must not be empty."""
    if (
        len(fractions) != 3
        or any(f < 0 for f in fractions)
        or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6)
    ):
        raise ConfigError(
            f"split fractions must be three non-negative numbers summing to 1, got {list(fractions)}"
        )
    n_val, n_test = (max(1, round(f * num_subjects)) if f > 0 else 0 for f in fractions[1:])
    n_train = num_subjects - n_val - n_test
    if n_train < 1:
        raise DataError(
            f"cannot split {num_subjects} subject(s) with fractions {list(fractions)}: the training split "
            "would have no subject (add subjects or change the fractions)"
        )
    return n_train, n_val, n_test


def draw_split(subjects: Sequence[str], fractions: Sequence[float], seed: int) -> dict[str, list[str]]:
    """A seeded random partition of ``subjects`` (sorted first, so input order does not matter)."""
    order = sorted(subjects)
    perm = np.random.default_rng(seed).permutation(len(order))
    shuffled = [order[i] for i in perm]
    n_train, n_val, _ = split_counts(len(order), fractions)
    return {
        "training": sorted(shuffled[:n_train]),
        "validation": sorted(shuffled[n_train : n_train + n_val]),
        "test": sorted(shuffled[n_train + n_val :]),
    }


def predefined_split(items: Sequence[dict[str, Any]]) -> dict[str, list[str]] | None:
    """The split given by the items' ``split`` keys, or None when some item has none."""
    if not items or any("split" not in it for it in items):
        return None
    out: dict[str, list[str]] = {name: [] for name in SPLITS}
    for it in items:
        if it["split"] not in out:
            raise DataError(
                f"subject {it['subject']}: unknown split {it['split']!r}; expected one of {SPLITS}"
            )
        if it["subject"] not in out[it["split"]]:
            out[it["split"]].append(it["subject"])
    return out


def load_split(path: Path, subjects: set[str]) -> dict[str, list[str]]:
    """Read a split file and check it against the dataset's subjects."""
    doc = read_json(path)
    split = doc.get("subjects") if isinstance(doc, dict) else None
    if not isinstance(split, dict) or set(split) != set(SPLITS):
        raise DataError(f"{path}: not a split file (expected 'subjects' with keys {list(SPLITS)})")
    listed = [s for name in SPLITS for s in split[name]]
    if len(listed) != len(set(listed)):
        raise DataError(f"{path}: a subject appears in two splits")
    if set(listed) != subjects:
        extra, missing = sorted(set(listed) - subjects), sorted(subjects - set(listed))
        raise DataError(
            f"{path} does not match the dataset: subjects not in the dataset {extra[:10]}, subjects not in "
            f"the split {missing[:10]}; delete the file to draw a new split, or point split_file elsewhere"
        )
    return {name: list(split[name]) for name in SPLITS}


def split_subjects(
    items: Sequence[dict[str, Any]],
    split_file: str | Path | None = None,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> dict[str, list[dict[str, Any]]]:
    """Split ``items`` by subject into ``training`` / ``validation`` / ``test``.

    Args:
        items: dataset items, each with a ``subject`` key.
        split_file: JSON file that stores the split; read when it exists, written when it does not.
        fractions: training, validation and test fractions (the paper's 70/15/15 by default).
        seed: seed of the random split.

    Returns:
        ``{"training": [...items...], "validation": [...], "test": [...]}``

    Example::

        parts = split_subjects(index.items, "runs/oasis/split.json", seed=0)
        len(parts["training"])   # 70 % of the subjects (all their items)
    """
    subjects = {it["subject"] for it in items}
    if not subjects:
        raise DataError("cannot split an empty dataset")
    path = Path(split_file) if split_file is not None else None
    if path is not None and path.exists():
        split = load_split(path, subjects)
        logger.info("reusing the split in %s", path)
    else:
        split = predefined_split(items) or draw_split(sorted(subjects), fractions, seed)
        if not split["training"]:
            raise DataError("the predefined split has no training subject")
        if path is not None:
            write_json(path, {"seed": seed, "fractions": list(fractions), "subjects": split})
    where = {s: name for name in SPLITS for s in split[name]}
    return {name: [it for it in items if where[it["subject"]] == name] for name in SPLITS}
