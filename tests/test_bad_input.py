"""Bad input: every case raises an error that names the file (or key) and the problem."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from monai.transforms import Compose

from anatosynth_components.atomic import atomic_dir, atomic_path, write_json, write_nifti
from anatosynth_components.data import LoadVolumed, ValidateVolumed, read_dataset, read_learn2reg, read_penet
from anatosynth_components.errors import DataError


@pytest.fixture
def pair(tmp_path):
    image = np.random.default_rng(0).random((6, 7, 8)).astype(np.float32)
    label = (image > 0.5).astype(np.uint8)
    write_nifti(tmp_path / "img.nii.gz", image, np.eye(4))
    write_nifti(tmp_path / "lab.nii.gz", label, np.eye(4))
    return tmp_path


def load_check(item, **kwargs):
    return ValidateVolumed(**kwargs)(LoadVolumed(["image", "label"])(item))


def test_error_survives_monai_compose(pair):
    """MONAI wraps transform errors in RuntimeError; the DataError stays in the chain and the
    CLI reports it (see errors.find_cause)."""
    from anatosynth_components.errors import find_cause

    with pytest.raises(RuntimeError) as info:
        item = {"image": str(pair / "img.nii.gz"), "label": str(pair / "gone.nii.gz")}
        Compose([LoadVolumed(["image", "label"]), ValidateVolumed()])(item)
    cause = find_cause(info.value, DataError)
    assert cause is not None and "gone.nii.gz: label file not found" in str(cause)


def test_missing_file(pair):
    with pytest.raises(DataError, match=r"nothere.nii.gz: label file not found"):
        load_check({"image": str(pair / "img.nii.gz"), "label": str(pair / "nothere.nii.gz")})


def test_corrupt_file(pair):
    data = (pair / "img.nii.gz").read_bytes()
    (pair / "corrupt.nii.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as info:
        load_check({"image": str(pair / "corrupt.nii.gz"), "label": str(pair / "lab.nii.gz")})
    assert str(info.value) == (
        f"{pair / 'corrupt.nii.gz'}: cannot read the image file (truncated or corrupt gzip data: Compressed "
        "file ended before the end-of-stream marker was reached)"
    )
    (pair / "junk.nii.gz").write_bytes(gzip.compress(b"not a nifti header at all" * 20))
    with pytest.raises(DataError, match=r"junk.nii.gz: cannot read the image file"):
        load_check({"image": str(pair / "junk.nii.gz"), "label": str(pair / "lab.nii.gz")})


def test_shape_mismatch(pair):
    write_nifti(pair / "small.nii.gz", np.zeros((6, 7, 5), np.uint8), np.eye(4))
    with pytest.raises(
        DataError, match=r"img.nii.gz has spatial shape \(6, 7, 8\) but label .*small.nii.gz has \(6, 7, 5\)"
    ):
        load_check({"image": str(pair / "img.nii.gz"), "label": str(pair / "small.nii.gz")})


def test_affine_mismatch(pair):
    write_nifti(pair / "moved.nii.gz", np.zeros((6, 7, 8), np.uint8), np.diag([2.0, 1.0, 1.0, 1.0]))
    with pytest.raises(DataError, match=r"img.nii.gz and label .*moved.nii.gz have different affines"):
        load_check({"image": str(pair / "img.nii.gz"), "label": str(pair / "moved.nii.gz")})


def test_non_integer_labels(pair):
    write_nifti(pair / "soft.nii.gz", np.full((6, 7, 8), 1.5, np.float32), np.eye(4))
    with pytest.raises(DataError, match=r"soft.nii.gz: label map has non-integer values"):
        load_check({"image": str(pair / "img.nii.gz"), "label": str(pair / "soft.nii.gz")})


def test_label_ids_outside_set(pair):
    write_nifti(pair / "many.nii.gz", np.arange(6 * 7 * 8).reshape(6, 7, 8).astype(np.int16) % 40, np.eye(4))
    with pytest.raises(
        DataError, match=r"many.nii.gz: label ids \[36, 37, 38, 39\] are not in the configured set"
    ):
        load_check(
            {"image": str(pair / "img.nii.gz"), "label": str(pair / "many.nii.gz")}, label_ids=range(1, 36)
        )


def test_a_t1_given_as_labels_gets_a_short_exact_message(pair):
    """At most 10 unknown ids and their count; the allowed set written exactly, background included."""
    t1 = (np.arange(6 * 7 * 8).reshape(6, 7, 8) * 5).astype(np.int16)  # 336 distinct values 0..1675
    write_nifti(pair / "t1.nii.gz", t1, np.eye(4))
    with pytest.raises(DataError) as info:
        load_check(
            {"image": str(pair / "img.nii.gz"), "label": str(pair / "t1.nii.gz")}, label_ids=range(1, 36)
        )
    assert str(info.value) == (
        f"{pair / 't1.nii.gz'}: label ids [40, 45, 50, 55, 60, 65, 70, 75, 80, 85] and 318 more (328 ids) "
        "are not in the configured set 0..35"
    )
    with pytest.raises(DataError) as info:
        load_check({"image": str(pair / "img.nii.gz"), "label": str(pair / "t1.nii.gz")}, label_ids=[1, 2, 5])
    assert str(info.value).endswith("(334 ids) are not in the configured set 0..2, 5")


def test_label_table_errors_are_short_and_exact():
    from anatosynth_components.data import get_label_table, remap_labels

    table = get_label_table({"mapping": {"0": 0, "1": 1, "2": 1, "3": 2, "7": 3}})
    with pytest.raises(DataError) as info:
        remap_labels(np.arange(100, 130).reshape(5, 6), table, "x.nii.gz")
    assert str(info.value) == (
        "x.nii.gz: label ids [100, 101, 102, 103, 104, 105, 106, 107, 108, 109] and 20 more (30 ids) are "
        f"not in label table {table.name!r} (it knows 0..3, 7)"
    )


def test_wrong_dimensionality_and_nan(pair):
    write_nifti(pair / "four.nii.gz", np.zeros((6, 7, 8, 2), np.float32), np.eye(4))
    with pytest.raises(DataError, match=r"four.nii.gz: image has shape \(2, 6, 7, 8\).*3 spatial dimensions"):
        load_check({"image": str(pair / "four.nii.gz"), "label": str(pair / "lab.nii.gz")})
    nan = np.zeros((6, 7, 8), np.float32)
    nan[1, 1, 1] = np.nan
    write_nifti(pair / "nan.nii.gz", nan, np.eye(4))
    with pytest.raises(DataError, match=r"nan.nii.gz: image holds NaN"):
        load_check({"image": str(pair / "nan.nii.gz"), "label": str(pair / "lab.nii.gz")})


def test_learn2reg_listing_errors(tmp_path):
    with pytest.raises(DataError, match="no '<TASK>_dataset.json'"):
        read_learn2reg(tmp_path)
    (tmp_path / "X_dataset.json").write_text("{ not json")
    with pytest.raises(DataError, match=r"X_dataset.json: not valid JSON"):
        read_learn2reg(tmp_path)
    write_json(tmp_path / "X_dataset.json", {"training": [{"image": "./imagesTr/X_0001_0000.nii.gz"}]})
    with pytest.raises(
        DataError, match=r"X_dataset.json lists image './imagesTr/X_0001_0000.nii.gz'.*does not exist"
    ):
        read_learn2reg(tmp_path)
    write_nifti(tmp_path / "imagesTr" / "X_0001_0000.nii.gz", np.zeros((2, 2, 2), np.float32), np.eye(4))
    entry = {"image": "./imagesTr/X_0001_0000.nii.gz", "label": "./labelsTr/X_0001_0000.nii.gz"}
    write_json(tmp_path / "X_dataset.json", {"training": [entry]})
    with pytest.raises(DataError, match=r"lists label './labelsTr/X_0001_0000.nii.gz'"):
        read_learn2reg(tmp_path)
    write_json(tmp_path / "X_dataset.json", {"training": []})
    with pytest.raises(DataError, match=r"X_dataset.json: the dataset holds no usable image"):
        read_learn2reg(tmp_path)
    write_json(tmp_path / "Y_dataset.json", {"training": []})
    with pytest.raises(DataError, match=r"several dataset files \(X_dataset.json, Y_dataset.json\)"):
        read_learn2reg(tmp_path)


def test_unknown_layout(tmp_path):
    with pytest.raises(DataError, match="layout not recognised"):
        read_dataset(tmp_path)
    with pytest.raises(DataError, match="dataset folder not found"):
        read_dataset(tmp_path / "nope")


def test_penet_errors(tmp_path):
    import h5py

    with pytest.raises(DataError, match="data.hdf5: PENet HDF5 file not found"):
        read_penet(tmp_path)
    (tmp_path / "data.hdf5").write_bytes(b"garbage")
    with pytest.raises(DataError, match="data.hdf5: not a readable HDF5 file"):
        read_penet(tmp_path)
    with h5py.File(tmp_path / "data.hdf5", "w") as fh:
        fh.create_dataset("1", data=np.zeros((3, 4, 5), np.int16))
    with pytest.raises(DataError, match=r"data.hdf5: no study '7' in the PENet HDF5 file"):
        LoadVolumed("image")({"image": f"{tmp_path / 'data.hdf5'}::7"})
    import pickle

    (tmp_path / "series_list.pkl").write_bytes(pickle.dumps([{"study_num": 1}, {"study_num": 2}]))
    with pytest.raises(
        DataError, match=r"series_list.pkl lists studies \['2'\] that .*data.hdf5 does not hold"
    ):
        read_penet(tmp_path)


def test_atomic_writes_leave_nothing_on_failure(tmp_path):
    target = tmp_path / "out.nii.gz"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash while writing")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "dataset") as tmp:
        (tmp / "a.txt").write_text("partial")
        raise RuntimeError("crash while building")
    assert list(tmp_path.iterdir()) == []
    write_json(tmp_path / "x.json", {"a": 1})
    with pytest.raises(FileExistsError, match="exists and is not empty"), atomic_dir(tmp_path):
        pass
    assert (tmp_path / "x.json").read_text().strip().endswith("}")  # untouched
