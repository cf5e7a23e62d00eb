"""Subject-level splits: seeded, stored, reused, never leaking a subject into two splits."""

from __future__ import annotations

import json

import pytest

from anatosynth_components.data.split import split_counts, split_subjects
from anatosynth_components.errors import ConfigError, DataError


def _items(n_subjects: int, per_subject: int = 1) -> list[dict]:
    return [
        {"subject": f"S{s:03d}", "image": f"s{s}_{k}.nii.gz"}
        for s in range(n_subjects)
        for k in range(per_subject)
    ]


def test_counts_follow_fractions():
    assert split_counts(100, (0.7, 0.15, 0.15)) == (70, 15, 15)
    assert split_counts(10, (0.7, 0.15, 0.15)) == (6, 2, 2)
    assert split_counts(3, (0.7, 0.15, 0.15)) == (1, 1, 1)  # each non-zero fraction gets a subject
    assert split_counts(5, (1.0, 0.0, 0.0)) == (5, 0, 0)
    with pytest.raises(ConfigError, match="summing to 1"):
        split_counts(10, (0.5, 0.2, 0.2))


def test_no_subject_in_two_splits_and_all_items_follow_their_subject(tmp_path):
    items = _items(40, per_subject=3)
    parts = split_subjects(items, tmp_path / "split.json", seed=3)
    subjects = {name: {it["subject"] for it in part} for name, part in parts.items()}
    assert not subjects["training"] & subjects["validation"]
    assert not subjects["training"] & subjects["test"] and not subjects["validation"] & subjects["test"]
    assert sum(len(p) for p in parts.values()) == len(items)
    assert [len(s) for s in subjects.values()] == [28, 6, 6]
    assert all(len(part) == 3 * len(subjects[name]) for name, part in parts.items())


def test_seeded_stored_and_reused(tmp_path):
    items = _items(20)
    a = split_subjects(items, tmp_path / "a.json", seed=1)
    b = split_subjects(list(reversed(items)), tmp_path / "b.json", seed=1)  # order does not matter
    c = split_subjects(items, tmp_path / "c.json", seed=2)
    ids = lambda p: {k: sorted(it["subject"] for it in v) for k, v in p.items()}  # noqa: E731
    assert ids(a) == ids(b) and ids(a) != ids(c)
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["seed"] == 1 and doc["subjects"] == ids(a)
    # a later run with another seed reuses the stored split
    assert ids(split_subjects(items, tmp_path / "a.json", seed=99)) == ids(a)


def test_predefined_split_is_used(tmp_path):
    items = [
        {"subject": str(i), "split": s} for i, s in enumerate(["training", "training", "validation", "test"])
    ]
    parts = split_subjects(items, tmp_path / "split.json", seed=0)
    assert [[it["subject"] for it in parts[k]] for k in ("training", "validation", "test")] == [
        ["0", "1"],
        ["2"],
        ["3"],
    ]


def test_split_errors(tmp_path):
    with pytest.raises(DataError, match="cannot split 2 subject"):
        split_subjects(_items(2), seed=0)
    with pytest.raises(DataError, match="empty dataset"):
        split_subjects([], seed=0)
    split_subjects(_items(10), tmp_path / "split.json", seed=0)
    with pytest.raises(DataError, match=r"split.json does not match the dataset.*S010"):
        split_subjects(_items(11), tmp_path / "split.json", seed=0)
    (tmp_path / "bad.json").write_text(
        '{"subjects": {"training": ["S000"], "validation": ["S000"], "test": []}}'
    )
    with pytest.raises(DataError, match="bad.json: a subject appears in two splits"):
        split_subjects(_items(1), tmp_path / "bad.json")
