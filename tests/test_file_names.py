"""Image suffixes and stems: one helper for every reader and writer that names files."""

from __future__ import annotations

import pytest

from anatosynth_components.atomic import _suffix, atomic_path
from anatosynth_components.data.dataset_index import volume_name
from anatosynth_components.data.file_names import IMAGE_SUFFIXES, image_stem, image_suffix, is_nifti
from anatosynth_components.data.learn2reg import subject_from_filename


@pytest.mark.parametrize(
    ("path", "suffix", "stem"),
    [
        ("/d/imagesTr/OASIS_0001_0000.nii.gz", ".nii.gz", "OASIS_0001_0000"),
        ("OASIS_0001.v2.nii", ".nii", "OASIS_0001.v2"),
        ("case_7.nrrd", ".nrrd", "case_7"),
        ("scan.mha", ".mha", "scan"),
        ("scan.mhd", ".mhd", "scan"),
        ("old.img.gz", ".gz", "old.img"),
        ("1.2.840.113619.2.55", "", "1.2.840.113619.2.55"),  # a DICOM series folder keeps its dots
        ("results.json", "", "results.json"),
        ("x.nii.gz.bak", "", "x.nii.gz.bak"),  # only a suffix at the end counts
    ],
)
def test_image_suffix_and_stem(path, suffix, stem):
    assert image_suffix(path) == suffix
    assert image_stem(path) == stem
    assert image_stem(path) + image_suffix(path) == path.rsplit("/", 1)[-1]


def test_nifti_and_the_readers_use_the_same_names():
    assert is_nifti("a/b.nii.gz") and is_nifti("b.nii") and not is_nifti("b.nii.gz.json")
    assert IMAGE_SUFFIXES.index(".nii.gz") < IMAGE_SUFFIXES.index(".gz")
    assert volume_name("/d/labelsTr/AbdomenCTCT_0001_0000.nii.gz") == "AbdomenCTCT_0001_0000"
    assert volume_name("/d/data.hdf5::0042") == "0042"
    assert subject_from_filename("/d/imagesTr/AbdomenCTCT_0001_0000.nii.gz") == "AbdomenCTCT_0001"


def test_atomic_temporary_name_keeps_the_format_suffix(tmp_path):
    from pathlib import Path

    assert _suffix(Path("out/model.best.json")) == ".json"
    assert _suffix(Path("vol.v2.nii.gz")) == ".nii.gz"
    with atomic_path(tmp_path / "vol.v2.nii.gz") as tmp:
        assert tmp.name.endswith(".part.nii.gz") and tmp.parent == tmp_path
        tmp.write_bytes(b"x")
    assert (tmp_path / "vol.v2.nii.gz").read_bytes() == b"x"
