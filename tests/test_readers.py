"""Readers of the four real layouts, on trees built in a temporary folder (real volumes where possible)."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest
from conftest import crop_brain, write_learn2reg_tree

from anatosynth_components.atomic import write_json, write_nifti
from anatosynth_components.data import (
    LoadVolumed,
    ValidateVolumed,
    detect_layout,
    read_datalist,
    read_dataset,
    read_learn2reg,
    read_neurite_oasis,
    read_penet,
)
from anatosynth_components.data.label_tables import LOBES_HEART_LABELS, OASIS35_LABELS, get_label_table
from anatosynth_components.data.learn2reg import subject_from_filename
from anatosynth_components.data.remap_labels import remap_labels
from anatosynth_components.errors import DataError

BRAIN_AFFINE = np.diag([4.0, 4.0, 4.0, 1.0])


def test_subject_from_filename():
    assert subject_from_filename("/x/imagesTr/OASIS_0001_0000.nii.gz") == "OASIS_0001"
    assert subject_from_filename("AbdomenCTCT_0030_0000.nii.gz") == "AbdomenCTCT_0030"
    assert subject_from_filename("case_7.nrrd") == "case_7"


def test_learn2reg_oasis_real_brain(tmp_path, real_brain):
    vol, seg = crop_brain(real_brain)
    pairs = [(vol, seg), (vol[::-1].copy(), seg[::-1].copy()), (vol, seg)]
    write_learn2reg_tree(tmp_path, "OASIS", pairs, BRAIN_AFFINE, OASIS35_LABELS)
    index = read_learn2reg(tmp_path)
    assert index.layout == "learn2reg" and index.name == "OASIS"
    assert index.subjects == ["OASIS_0001", "OASIS_0002", "OASIS_0003"]
    assert index.labels == OASIS35_LABELS  # nested {"0": {...}} form, background dropped
    assert index.info["tensorImageShape"] == {"0": list(vol.shape)}
    d = ValidateVolumed(label_ids=range(1, 36))(LoadVolumed(["image", "label"])(index.items[1]))
    np.testing.assert_allclose(d["image"][0].numpy(), vol[::-1], atol=1e-6)
    np.testing.assert_array_equal(d["label"][0].numpy(), seg[::-1])
    np.testing.assert_allclose(d["image"].affine.numpy(), BRAIN_AFFINE)
    assert str(index.items[1]["image"]).endswith("imagesTr/OASIS_0002_0000.nii.gz")


def test_learn2reg_infers_label_and_skips_unlabelled(tmp_path):
    image = np.zeros((8, 8, 8), np.float32)
    for name in ("T_0001_0000.nii.gz", "T_0002_0000.nii.gz"):
        write_nifti(tmp_path / "imagesTr" / name, image, np.eye(4))
    write_nifti(tmp_path / "labelsTr" / "T_0001_0000.nii.gz", image.astype(np.uint8), np.eye(4))
    write_json(tmp_path / "T_dataset.json", {
        "labels": {"0": "background", "1": "organ"},
        "training": [{"image": "./imagesTr/T_0001_0000.nii.gz"}, {"image": "./imagesTr/T_0002_0000.nii.gz"}],
    })  # fmt: skip
    index = read_learn2reg(tmp_path)
    assert index.labels == {1: "organ"}  # flat form
    assert [it["subject"] for it in index.items] == ["T_0001"]
    assert index.items[0]["label"].endswith("labelsTr/T_0001_0000.nii.gz")
    assert index.info["skipped"] == 1


def test_learn2reg_abdomen_real_ct(tmp_path, real_ct):
    label = remap_labels(real_ct["label"], get_label_table("totalseg_to_abdomenctct")).astype(np.uint8)
    write_learn2reg_tree(
        tmp_path, "AbdomenCTCT", [(real_ct["image"], label)] * 2, real_ct["affine"], {1: "spleen"}
    )
    index = read_dataset(tmp_path)
    assert index.layout == "learn2reg"
    d = LoadVolumed(["image", "label"])(index.items[0])
    assert d["image"].shape == (1, 122, 101, 30)
    np.testing.assert_array_equal(d["image"][0].numpy(), real_ct["image"])  # raw HU kept
    np.testing.assert_allclose(d["image"].affine.numpy(), real_ct["affine"], atol=1e-5)


def test_neurite_oasis_real_brain(tmp_path, real_brain):
    vol, seg = crop_brain(real_brain)
    for sid in ("OAS1_0001_MR1", "OAS1_0002_MR1"):
        write_nifti(tmp_path / f"OASIS_{sid}" / "aligned_norm.nii.gz", vol, BRAIN_AFFINE)
        write_nifti(tmp_path / f"OASIS_{sid}" / "aligned_seg35.nii.gz", seg, BRAIN_AFFINE)
    lut = ["# seg35 labels", "0 Unknown 0 0 0 0"]
    lut += [f"{i} {name} {i} {2 * i} {3 * i} 0" for i, name in OASIS35_LABELS.items()]
    (tmp_path / "seg35_labels.txt").write_text("\n".join(lut) + "\n")
    assert detect_layout(tmp_path) == "neurite_oasis"
    index = read_neurite_oasis(tmp_path)
    assert index.subjects == ["OAS1_0001_MR1", "OAS1_0002_MR1"]
    assert index.labels[13] == "Brain-Stem" and len(index.labels) == 35
    d = ValidateVolumed(label_ids=index.labels)(LoadVolumed(["image", "label"])(index.items[0]))
    np.testing.assert_array_equal(d["label"][0].numpy(), seg)


def test_neurite_oasis_missing_seg_is_named(tmp_path):
    write_nifti(
        tmp_path / "OASIS_OAS1_0001_MR1" / "aligned_norm.nii.gz", np.zeros((4, 4, 4), np.float32), np.eye(4)
    )
    with pytest.raises(DataError, match=r"OASIS_OAS1_0001_MR1.*aligned_seg35\.nii\.gz"):
        read_neurite_oasis(tmp_path)


def test_datalist_real_ct_lobes(tmp_path, real_ct):
    lobes = remap_labels(real_ct["label"], get_label_table("totalseg_to_lobes_heart")).astype(np.uint8)
    write_nifti(tmp_path / "img" / "a.nii.gz", real_ct["image"], real_ct["affine"])
    write_nifti(tmp_path / "lab" / "a.nii.gz", lobes, real_ct["affine"])
    write_json(tmp_path / "dataset.json", {
        "labels": {str(k): v for k, v in LOBES_HEART_LABELS.items()},
        "training": [{"image": "img/a.nii.gz", "label": "lab/a.nii.gz"},
                     {"image": "img/a.nii.gz", "label": "lab/a.nii.gz", "subject": "other"}],
    })  # fmt: skip
    index = read_dataset(tmp_path)
    assert index.layout == "datalist" and index.labels == LOBES_HEART_LABELS
    assert [it["subject"] for it in index.items] == ["a", "other"]
    d = ValidateVolumed(label_ids=index.labels)(LoadVolumed(["image", "label"])(index.items[0]))
    # the crop holds four of the five lobes (no right upper lobe) and no heart
    assert set(np.unique(d["label"].numpy()).tolist()) == {0, 1, 2, 4, 5}


def test_datalist_resolves_paths_like_monai_and_keeps_other_fields(tmp_path):
    from monai.data import load_decathlon_datalist

    write_nifti(tmp_path / "sub01" / "ct.nii.gz", np.zeros((2, 2, 2), np.float32), np.eye(4))
    write_nifti(tmp_path / "sub01" / "seg.nii.gz", np.zeros((2, 2, 2), np.uint8), np.eye(4))
    doc = {"labels": {"0": "background", "1": "lung"},
           "training": [{"image": "./sub01/ct.nii.gz", "label": "sub01/seg.nii.gz", "subject": "sub01",
                         "fold": 2}]}  # fmt: skip
    write_json(tmp_path / "dataset.json", doc)
    index = read_datalist(tmp_path)
    (item,) = index.items
    monai_item = load_decathlon_datalist(tmp_path / "dataset.json")[0]
    assert item["image"] == monai_item["image"] == str(tmp_path / "sub01" / "ct.nii.gz")
    assert item["label"] == monai_item["label"] == str(tmp_path / "sub01" / "seg.nii.gz")
    # MONAI makes a path of any field naming an existing file or folder; the subject stays an id
    assert monai_item["subject"] == str(tmp_path / "sub01")
    assert (item["subject"], item["fold"], item["volume"]) == ("sub01", 2, "ct")
    assert index.labels == {1: "lung"} and index.subjects == ["sub01"] and index.layout == "datalist"
    other = tmp_path / "elsewhere"
    write_nifti(other / "sub01" / "ct.nii.gz", np.zeros((2, 2, 2), np.float32), np.eye(4))
    write_nifti(other / "sub01" / "seg.nii.gz", np.zeros((2, 2, 2), np.uint8), np.eye(4))
    assert read_datalist(tmp_path, base_dir=other).items[0]["image"] == str(other / "sub01" / "ct.nii.gz")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"validation": []}, r"dataset.json: key 'training' is missing or is not a list"),
        ({"training": {"image": "a.nii.gz"}}, r"dataset.json: key 'training' is missing or is not a list"),
        ({"training": [{"label": "a.nii.gz"}]},
         r"dataset.json: entry \{'label': 'a.nii.gz'\} of 'training' has no 'image'"),
        ({"training": ["a.nii.gz"]}, r"dataset.json: entry 'a.nii.gz' of 'training' has no 'image'"),
        ({"training": [{"image": ""}]}, r"dataset.json: image entry '' is not a path"),
        ({"training": [{"image": "a.nii.gz", "label": 3}]}, r"dataset.json: label entry 3 is not a path"),
        ({"training": [{"image": "a.nii.gz", "label": "b.nii.gz"}]},
         r"dataset.json lists label 'b.nii.gz', but .*/b.nii.gz does not exist"),
        ({"training": []}, r"dataset.json: the dataset holds no usable image"),
    ],
)  # fmt: skip
def test_datalist_errors_name_the_file_and_the_entry(tmp_path, doc, message):
    write_nifti(tmp_path / "a.nii.gz", np.zeros((2, 2, 2), np.float32), np.eye(4))
    write_json(tmp_path / "dataset.json", doc)
    with pytest.raises(DataError, match=message):
        read_datalist(tmp_path / "dataset.json")


def test_datalist_empty_test_list_is_named(tmp_path):
    write_json(tmp_path / "dataset.json", {"training": [], "test": []})
    with pytest.raises(DataError, match=r"dataset.json: the dataset holds no usable image"):
        read_datalist(tmp_path, key="test")


def test_datalist_missing_or_malformed_file_is_named(tmp_path):
    with pytest.raises(DataError, match=r"nope.json: file not found"):
        read_datalist(tmp_path / "nope.json")
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(DataError, match=r"dataset.json: not valid JSON"):
        read_datalist(tmp_path)


def _penet_tree(tmp_path, volumes, phases=None):
    from anatosynth_components.data.demo.anatomy import Phantom
    from anatosynth_components.data.demo.layouts import write_penet

    phantoms = [Phantom(v, np.zeros(v.shape, np.uint8), (1.0, 1.0, 3.0), {}) for v in volumes]
    return write_penet(tmp_path, phantoms, phases or ["train"] * len(volumes))


def test_penet_real_ct_roundtrip(tmp_path, real_ct):
    image = real_ct["image"]
    h5 = _penet_tree(tmp_path, [image, image[::-1].copy(), image], ["train", "val", "test"])
    with h5py.File(h5) as fh:  # the real layout: int16, [z, y, x], keyed by study number
        assert fh["1"].dtype == np.int16 and fh["1"].shape == image.shape[::-1]
    pkl = (tmp_path / "series_list.pkl").read_bytes()
    assert b"ct.ct_pe" in pkl and b"CTPE" in pkl  # PENet's own class name
    index = read_penet(tmp_path)
    assert [(it["subject"], it["split"]) for it in index.items] == [
        ("1", "training"),
        ("2", "validation"),
        ("3", "test"),
    ]
    d = LoadVolumed("image")(index.items[1])
    assert d["image"].shape == (1, *image.shape)
    np.testing.assert_array_equal(d["image"][0].numpy(), image[::-1])  # back in (x, y, z)
    np.testing.assert_allclose(np.diag(d["image"].affine.numpy())[:3], (1.0, 1.0, 1.25))


def test_penet_without_series_list_orders_studies_numerically(tmp_path):
    with h5py.File(tmp_path / "data.hdf5", "w") as fh:
        for study in ("10", "9", "100"):
            fh.create_dataset(study, data=np.zeros((3, 4, 5), np.int16))
    index = read_dataset(tmp_path)
    assert index.layout == "penet"
    assert index.subjects == ["9", "10", "100"]
    assert all("split" not in it for it in index.items)


def test_penet_series_list_is_never_executed(tmp_path):
    """A pickle that would run a command is read as inert records, and then refused."""
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    with h5py.File(tmp_path / "data.hdf5", "w") as fh:
        fh.create_dataset("1", data=np.zeros((3, 4, 5), np.int16))
    (tmp_path / "series_list.pkl").write_bytes(pickle.dumps([Evil()]))
    with pytest.raises(DataError, match="series_list.pkl.*study_num"):
        read_penet(tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("fmt", ["nrrd", "mha", "dicom"])
def test_itk_formats_load_like_nifti(tmp_path, fmt, real_ct):
    """NRRD, MHA and DICOM series folders load through the same LoadVolumed as NIfTI."""
    import itk

    zyx = np.ascontiguousarray(real_ct["image"][20:52, 30:60, 5:13].transpose(2, 1, 0))
    img = itk.image_from_array(zyx)
    img.SetSpacing([3.0, 3.0, 3.0])
    if fmt == "dicom":
        path = tmp_path / "series"
        path.mkdir()
        writer = itk.ImageSeriesWriter[type(img), itk.Image[itk.SS, 2]].New()
        writer.SetInput(img)
        writer.SetImageIO(itk.GDCMImageIO.New())
        writer.SetFileNames([str(path / f"{i:03d}.dcm") for i in range(zyx.shape[0])])
        writer.Update()
    else:
        path = tmp_path / f"ct.{fmt}"
        itk.imwrite(img, str(path))
    d = LoadVolumed("image")({"image": str(path)})
    np.testing.assert_array_equal(d["image"][0].numpy(), real_ct["image"][20:52, 30:60, 5:13])


def test_volume_ids_are_unique(tmp_path):
    write_nifti(tmp_path / "a" / "x.nii.gz", np.zeros((2, 2, 2), np.float32), np.eye(4))
    write_nifti(tmp_path / "b" / "x.nii.gz", np.zeros((2, 2, 2), np.float32), np.eye(4))
    write_json(tmp_path / "dataset.json", {"training": [{"image": "a/x.nii.gz"}, {"image": "b/x.nii.gz"}]})
    index = read_dataset(tmp_path)
    assert [it["volume"] for it in index.items] == ["x", "x#2"]
    assert [it["subject"] for it in index.items] == ["x", "x"]  # same subject name: kept together in splits
