"""Anatomy-safe data (issue 16 item 5): volumes are reoriented to RAS before any spatial augmentation,
left-right flips swap the lateralised label ids of the label set's table, and inference writes its
output back on the input's own grid and axis order.

Checked on the real volumes of ``../shared/data`` (skipped with the reason when absent): the CT of
TotalSegmentator's example (kidneys, adrenals, lobes, spine; remapped to AbdomenCTCT) and the
voxelmorph brain (FreeSurfer aseg, remapped to OASIS-35).  "Left" and "right" are decided in world
coordinates (RAS+: x grows toward the patient's right) against the body's midline (spine, or the
brain's midline structures), never from array indices alone.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import REPO
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.transforms import Compose, RandFlipd

from anatosynth_components.atomic import write_nifti
from anatosynth_components.data import (
    LATERAL_PAIRS,
    LoadVolumed,
    OrientToRASd,
    RandLateralFlipd,
    RemapLabelsd,
    RequireRASd,
    RestoreOrientationd,
    ValidateVolumed,
    anatomy_safe_flips,
    get_lateral_pairs,
    orientation_unknown,
    swap_labels,
)
from anatosynth_components.data.label_tables import (
    ABDOMENCTCT_LABELS,
    LOBES_HEART_LABELS,
    OASIS35_LABELS,
    get_label_table,
)
from anatosynth_components.data.orientation import axis_codes
from anatosynth_components.data.remap_labels import remap_labels
from anatosynth_components.errors import ConfigError, DataError, find_cause
from anatosynth_components.packaging.export import parse_inference

BUNDLES = REPO / "bundles"
#: TotalSegmentator v2 ids of the spine in the CT crop (vertebrae L2-T11, spinal cord): the midline
SPINE_IDS = (30, 31, 32, 33, 79)
#: the 13 AbdomenCTCT organs: right / left kidney (2 / 3) and adrenal (12 / 13) are lateralised
ABDOMEN_LATERAL = {2: "right", 3: "left", 12: "right", 13: "left"}
#: FreeSurfer's conformed orientation (mri_convert --conform): axis 0 to the Left, 1 Inferior, 2 Anterior
LIA_1MM = np.array([[-1.0, 0, 0, 80], [0, 0, 1, -112], [0, -1, 0, 96], [0, 0, 0, 1]])


# ---- helpers ------------------------------------------------------------------------------------


def reoriented(array: np.ndarray, affine: np.ndarray, codes: str) -> tuple[np.ndarray, np.ndarray]:
    """``array`` on ``affine`` stored in the orientation ``codes``: the same voxels, the same world
    positions, other axis order and directions."""
    ornt = nib.orientations.ornt_transform(nib.io_orientation(affine), nib.orientations.axcodes2ornt(codes))
    data = np.ascontiguousarray(nib.orientations.apply_orientation(array, ornt))
    return data, affine @ nib.orientations.inv_ornt_aff(ornt, array.shape)


def world_centroid(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    assert mask.any()
    return (np.asarray(affine, np.float64) @ np.array([*np.argwhere(mask).mean(0), 1.0]))[:3]


def sides(label: torch.Tensor, midline: torch.Tensor, affine, ids) -> dict[int, str]:
    """For each id: "left" or "right" of the midline, in world coordinates (RAS+: +x = right)."""
    lab, mid = np.asarray(label[0]), np.asarray(midline[0]) > 0
    aff = np.asarray(affine, np.float64)
    x0 = world_centroid(mid, aff)[0]
    return {i: ("right" if world_centroid(lab == i, aff)[0] > x0 else "left") for i in ids}


def mirror_x(x: torch.Tensor) -> torch.Tensor:
    return torch.flip(torch.as_tensor(x), dims=(1,))


@pytest.fixture(scope="module")
def ct_files(tmp_path_factory, real_ct) -> dict[str, dict[str, Path]]:
    """The real CT, its TotalSegmentator labels and its spine mask, stored RAS (the original), LPS,
    LIA and ASL (axes permuted and reversed), each with the affine that keeps every voxel in place."""
    root = tmp_path_factory.mktemp("ct")
    spine = np.isin(real_ct["label"], SPINE_IDS).astype(np.uint8)
    out = {}
    for codes in ("RAS", "LPS", "LIA", "ASL"):
        files = {}
        for key, array in (("image", real_ct["image"]), ("label", real_ct["label"]), ("spine", spine)):
            data, affine = reoriented(array, real_ct["affine"], codes)
            files[key] = write_nifti(root / codes / f"{key}.nii.gz", data, affine)
        assert "".join(nib.aff2axcodes(nib.load(str(files["label"])).affine)) == codes
        out[codes] = files
    return out


def load_ct(files: dict[str, Path], orient: bool = True) -> dict:
    """Load, remap to AbdomenCTCT and (``orient``) reorient one stored copy of the real CT."""
    keys = ["image", "label", "spine"]
    steps = [LoadVolumed(keys), RemapLabelsd("label", "totalseg_to_abdomenctct"), ValidateVolumed()]
    return Compose(steps + ([OrientToRASd(keys)] if orient else []))({k: str(v) for k, v in files.items()})


# ---- RAS and reorientation ------------------------------------------------------------------------


def test_ras_x_points_to_the_patients_right_on_the_real_ct(real_ct, ct_files):
    """MONAI's / nibabel's "RAS": axis 0 grows toward the patient's Right.  On the real CT the right
    kidney lies at larger x than the spine, the left kidney at smaller x."""
    d = load_ct(ct_files["RAS"])
    assert axis_codes(d["label"]) == "RAS"
    assert sides(d["label"], d["spine"], d["label"].affine, ABDOMEN_LATERAL) == ABDOMEN_LATERAL


@pytest.mark.parametrize("codes", ["LPS", "LIA", "ASL"])
def test_a_reoriented_copy_comes_back_to_the_ras_original_voxel_for_voxel(real_ct, ct_files, codes):
    d = load_ct(ct_files[codes])
    original = remap_labels(real_ct["label"], get_label_table("totalseg_to_abdomenctct"))
    np.testing.assert_array_equal(np.asarray(d["label"][0]), original)
    np.testing.assert_array_equal(np.asarray(d["image"][0]), real_ct["image"])
    for key in ("image", "label", "spine"):
        np.testing.assert_allclose(np.asarray(d[key].affine), real_ct["affine"], atol=1e-4)
        assert axis_codes(d[key]) == "RAS"
        assert d[key].meta["filename_or_obj"].endswith(f"{codes}/{key}.nii.gz")  # errors still name the file
    # and the reorientation is what puts each kidney on its side
    assert sides(d["label"], d["spine"], d["label"].affine, ABDOMEN_LATERAL) == ABDOMEN_LATERAL


def test_two_d_volumes_are_reoriented_to_ra_without_warnings(tmp_path):
    plane = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = write_nifti(tmp_path / "lp.nii.gz", plane, np.diag([-2.0, -1.0, 1.0, 1.0]))
    item = LoadVolumed("image")({"image": str(path)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = OrientToRASd("image")(item)["image"]
    np.testing.assert_array_equal(np.asarray(out[0]), plane[::-1, ::-1])
    assert axis_codes(out) == "RA"


def test_unknown_orientations_are_kept_as_stored_and_logged_with_the_reason(tmp_path, caplog):
    """A .npy array and a PENet HDF5 study carry no orientation: OrientToRASd keeps their axes and
    says why (once), and RandLateralFlipd refuses them."""
    volume = np.random.default_rng(0).integers(0, 3, (6, 5, 4)).astype(np.int16)
    np.save(tmp_path / "v.npy", volume)
    with h5py.File(tmp_path / "data.hdf5", "w") as fh:
        fh["7"] = np.transpose(volume, (2, 1, 0))  # PENet stores [z, y, x]
    flip = RandLateralFlipd("image", {}, label_keys=(), prob=1.0)
    for name, why in (
        (tmp_path / "v.npy", "stores no affine"),
        (f"{tmp_path / 'data.hdf5'}::7", "PENet HDF5"),
    ):
        caplog.clear()
        item = LoadVolumed("image")({"image": str(name)})
        assert why in orientation_unknown(item["image"])
        orient = OrientToRASd("image")
        with caplog.at_level(logging.WARNING, logger="anatosynth_components.data.orientation"):
            out = orient(orient(item))  # logged once per reason
        np.testing.assert_array_equal(np.asarray(out["image"][0]), volume)
        logged = [r.getMessage() for r in caplog.records]
        assert len(logged) == 1 and "not reoriented to RAS" in logged[0] and why in logged[0], logged
        with pytest.raises(
            DataError, match=rf"{Path(str(name)).name}: RandLateralFlipd .* orientation is unknown"
        ):
            flip(out)


# ---- lateral flips on the real CT -----------------------------------------------------------------


@pytest.mark.parametrize("codes", ["RAS", "LPS", "ASL"])
def test_lateral_flip_keeps_every_kidney_and_adrenal_on_the_side_its_id_names(ct_files, codes):
    before = load_ct(ct_files[codes])
    keys = ["image", "label", "spine"]
    affine = before["label"].affine.clone()
    flip = RandLateralFlipd(keys, "abdomenctct", label_keys="label", prob=1.0, label_ids=range(1, 14))
    after = flip(dict(before))
    # the arrays are mirrored along x, the affine stays RAS: a mirrored subject in the same frame
    np.testing.assert_array_equal(np.asarray(after["image"]), np.asarray(mirror_x(before["image"])))
    np.testing.assert_array_equal(np.asarray(after["spine"]), np.asarray(mirror_x(before["spine"])))
    for key in keys:
        assert torch.equal(after[key].affine, affine) and axis_codes(after[key]) == "RAS"
    assert sides(before["label"], before["spine"], affine, ABDOMEN_LATERAL) == ABDOMEN_LATERAL
    assert sides(after["label"], after["spine"], affine, ABDOMEN_LATERAL) == ABDOMEN_LATERAL
    # without the swap (a table with no pairs: a bare mirror) every one of them lands on the wrong side
    bare = RandLateralFlipd(keys, {}, prob=1.0)(dict(before))
    wrong = {i: {"left": "right", "right": "left"}[s] for i, s in ABDOMEN_LATERAL.items()}
    assert sides(bare["label"], bare["spine"], affine, ABDOMEN_LATERAL) == wrong


def test_lateral_flip_leaves_the_unpaired_organs_ids_alone(ct_files):
    before = load_ct(ct_files["LPS"])
    after = RandLateralFlipd(["image", "label"], "abdomenctct", prob=1.0)(dict(before))
    mirrored = np.asarray(mirror_x(before["label"]))[0]
    out = np.asarray(after["label"])[0]
    assert after["label"].dtype == before["label"].dtype
    swap = {2: 3, 3: 2, 12: 13, 13: 12}
    present = set(np.unique(mirrored).tolist()) - {0}
    assert {2, 3, 12, 13} <= present and len(present - set(swap)) >= 8  # spleen, liver, stomach, ...
    for i in present:
        np.testing.assert_array_equal(out == swap.get(i, i), mirrored == i)
    assert (out == 0).sum() == (mirrored == 0).sum()


def test_flips_along_other_axes_swap_nothing(ct_files):
    before = load_ct(ct_files["LIA"])
    keys = ["image", "label", "spine"]
    flips = anatomy_safe_flips(keys, [1, 2], "abdomenctct", prob=1.0, label_ids=range(1, 14))
    assert [type(t) for t in flips] == [RequireRASd, RandFlipd]
    after = Compose(flips)(dict(before))
    expected = torch.flip(before["label"].as_tensor(), dims=(2, 3))
    assert torch.equal(after["label"].as_tensor(), expected)  # mirrored anterior-posterior, up-down; ids kept
    assert sides(after["label"], after["spine"], before["label"].affine, ABDOMEN_LATERAL) == ABDOMEN_LATERAL
    lr = anatomy_safe_flips(keys, [0, 2], "abdomenctct", prob=1.0)
    assert [type(t) for t in lr] == [RequireRASd, RandLateralFlipd, RandFlipd]
    assert lr[2].flipper.spatial_axis == [2]


def test_a_volume_that_is_not_ras_is_refused_naming_the_file(ct_files):
    lps = load_ct(ct_files["LPS"], orient=False)
    flip = RandLateralFlipd(["image", "label"], "abdomenctct", prob=0.0)  # checked even when not flipping
    expected = (
        r"LPS/image.nii.gz: RandLateralFlipd needs a RAS volume, but image is oriented LPS: reorient it"
    )
    with pytest.raises(DataError, match=expected):
        flip(lps)
    with pytest.raises(DataError, match="RequireRASd needs a RAS volume"):
        RequireRASd("label")(lps)
    with pytest.raises(DataError, match="label volume's left-right axis.*plain array without an affine"):
        flip({"image": load_ct(ct_files["RAS"])["image"], "label": torch.zeros(1, 4, 4, 4)})


# ---- the tables -----------------------------------------------------------------------------------


def test_the_oasis_pairs_are_every_left_right_freesurfer_twin():
    pairs = LATERAL_PAIRS["oasis35"]
    assert pairs.mirrorable and len(pairs.pairs) == 16
    for left, right in pairs.pairs.items():
        assert OASIS35_LABELS[left] == "Left-" + OASIS35_LABELS[right].removeprefix("Right-")
    sided = {i for i, n in OASIS35_LABELS.items() if n.startswith(("Left-", "Right-"))}
    assert set(pairs.swap) == sided and set(OASIS35_LABELS) - sided == {11, 12, 13}


def test_the_abdomen_pairs_are_the_kidneys_and_adrenals():
    pairs = LATERAL_PAIRS["abdomenctct"]
    assert pairs.mirrorable and pairs.swap == {3: 2, 13: 12, 2: 3, 12: 13}
    for left, right in pairs.pairs.items():
        assert ABDOMENCTCT_LABELS[left] == ABDOMENCTCT_LABELS[right].replace("right", "left")
    assert {i for i, n in ABDOMENCTCT_LABELS.items() if "left" in n or "right" in n} == set(pairs.swap)


def test_the_lobes_cannot_be_mirrored_and_say_why():
    lobes = LATERAL_PAIRS["lobes_heart"]
    assert not lobes.mirrorable and lobes.pairs == {2: 5} and set(lobes.unpaired) == {1, 3, 4}
    assert set(lobes.labels) == set(LOBES_HEART_LABELS)
    why = r"4 \(right middle lobe\): the left lung has no middle lobe"
    with pytest.raises(
        ConfigError, match=r"lateral_pairs: label set 'lobes_heart' cannot be mirrored .*" + why
    ):
        RandLateralFlipd(["image", "label"], "lobes_heart", label_ids=range(1, 7))
    with pytest.raises(ConfigError, match="cannot be mirrored"):
        anatomy_safe_flips(["image", "label"], [0, 1, 2], "lobes_heart")
    # the segmentation experiment's flips (axes 1 and 2 of RAS volumes) need no table at all
    assert [type(t) for t in anatomy_safe_flips(["image", "label"], [1, 2], "lobes_heart")] == [
        RequireRASd,
        RandFlipd,
    ]


@pytest.mark.parametrize(
    ("spec", "label_ids", "message"),
    [
        ("kidneys", None, r"lateral_pairs: unknown lateral pair table 'kidneys'; built-in tables: \['abd"),
        ("oasis35", range(1, 14),
         r"lateral_pairs: table 'oasis35' has ids \[14, 15, .*not label ids of this label set "
         r"\(1..13\); is it the table of another label set\?"),
        ({"3": 2, "40": 12}, range(1, 14),
         r"lateral_pairs: ids \[40\] are not label ids of this label set \(1..13\)"),
        ({"5": 5}, None, "lateral_pairs: id 5 is paired with itself; midline structures need no entry"),
        ({"1": 20, "20": 2}, None, "lateral_pairs: id 20 is paired with both 1 and 2"),
        ({"1": 20, "2": 20}, None, "lateral_pairs: id 20 is paired with both 1 and 2"),
        ({"0": 3}, None, "lateral_pairs: 0: 3: ids must be >= 1"),
        ({"left": 3}, None, "lateral_pairs: entries must be integer label ids, got 'left': 3"),
        ([3, 2], None, "lateral_pairs must be a table name, a mapping of ids or null, got list"),
    ],
)  # fmt: skip
def test_bad_tables_are_config_errors_naming_the_key(spec, label_ids, message):
    with pytest.raises(ConfigError, match=message):
        RandLateralFlipd(["image", "label"], spec, label_ids=label_ids)


def test_a_table_may_list_each_pair_both_ways():
    assert get_lateral_pairs({"3": 2, "2": 3, 13: 12}).pairs == {3: 2, 13: 12}
    assert swap_labels(torch.tensor([[0, 2, 3, 12, 13, 6]], dtype=torch.uint8), {3: 2, 2: 3}).tolist() == [
        [0, 3, 2, 12, 13, 6]
    ]
    with pytest.raises(ConfigError, match=r"flip_axes: holds the left-right axis 0 .* lateral_pairs is null"):
        anatomy_safe_flips(["image", "label"], [0], None)


# ---- the brain ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def brain_file(tmp_path_factory, real_brain) -> Path:
    """The voxelmorph aseg (neurite-oasis grid, which stores FreeSurfer's conformed LIA axes),
    subsampled by 2 and remapped to OASIS-35, written with its LIA affine (2 mm)."""
    seg = real_brain["seg"]
    # the data's own evidence for LIA: Left-* aseg ids (2, 3, 4, 17) sit at larger axis-0 indices
    # than their Right-* twins (41, 42, 43, 53), the brain stem (16) below (axis 1) and behind (axis 2)
    # the amygdalae (18, 54)
    for left, right in ((2, 41), (3, 42), (4, 43), (17, 53)):
        assert np.argwhere(seg == left)[:, 0].mean() > np.argwhere(seg == right)[:, 0].mean() + 20
    stem, amygdala = np.argwhere(seg == 16).mean(0), np.argwhere(np.isin(seg, (18, 54))).mean(0)
    assert stem[1] > amygdala[1] and stem[2] < amygdala[2]
    labels = remap_labels(seg[::2, ::2, ::2], get_label_table("aseg_to_oasis35")).astype(np.uint8)
    affine = LIA_1MM @ np.diag([2.0, 2.0, 2.0, 1.0])
    return write_nifti(tmp_path_factory.mktemp("brain") / "aseg35.nii.gz", labels, affine)


def test_lateral_flip_keeps_every_oasis_structure_on_its_side(brain_file):
    d = OrientToRASd("label")(LoadVolumed("label")({"label": str(brain_file)}))
    assert axis_codes(d["label"]) == "RAS" and d["label"].meta["spatial_shape"].tolist() == [80, 96, 112]
    pairs = LATERAL_PAIRS["oasis35"]
    present = {int(i) for i in np.unique(np.asarray(d["label"]))} - {0}
    ids = {i: ("left" if i in pairs.pairs else "right") for i in pairs.swap if i in present}
    assert len(ids) >= 28, sorted(present)
    midline = (d["label"] >= 11) & (d["label"] <= 13)  # 3rd, 4th ventricle, brain stem
    affine = d["label"].affine
    assert sides(d["label"], midline, affine, ids) == ids
    flipped = RandLateralFlipd("label", "oasis35", prob=1.0, label_ids=range(1, 36))(dict(d))["label"]
    moved_midline = mirror_x(midline)
    assert sides(flipped, moved_midline, affine, ids) == ids
    bare = RandLateralFlipd("label", {}, prob=1.0)(dict(d))["label"]
    assert all(side != ids[i] for i, side in sides(bare, moved_midline, affine, ids).items())


# ---- inference: back on the input's grid ----------------------------------------------------------


@pytest.mark.parametrize("codes", ["LPS", "ASL"])
def test_anatomask_inference_writes_its_output_on_the_inputs_grid_and_axes(
    tmp_path, real_ct, ct_files, codes
):
    """The inference config's own preprocessing, postprocessing and save, with a stand-in network
    whose "synthesis" is the (RAS) label map scaled to [0, 1]: the file written must hold the input's
    labels voxel for voxel, in the input's axis order, with the input's affine."""
    overrides = {
        "device": "cpu",
        "label_table": "totalseg_to_abdomenctct",
        "output_dir": str(tmp_path / "out"),
    }
    parser = parse_inference(BUNDLES / "anatomask_abdomen", overrides)
    source = ct_files[codes]["label"]
    item = parser.get_parsed_content("preprocessing")({"image": str(source)})
    assert axis_codes(item["image"]) == "RAS"
    item["pred"] = (
        item["image"].as_tensor().float() / 13.0
    )  # what a network returns: a plain tensor, RAS grid
    item = parser.get_parsed_content("postprocessing")(item)
    item = parser.get_parsed_content("save")(item)
    written, stored = nib.load(item["pred_path"]), nib.load(str(source))
    np.testing.assert_allclose(written.affine, stored.affine, atol=1e-4)
    expected = remap_labels(np.asarray(stored.dataobj), get_label_table("totalseg_to_abdomenctct"))
    low, high = parser.get_parsed_content("output_range")
    np.testing.assert_allclose((np.asarray(written.dataobj) - low) / (high - low) * 13.0, expected, atol=1e-3)


@pytest.mark.parametrize("codes", ["LPS", "LIA"])
def test_acis_label_inference_restores_the_axes_before_resizing_back(tmp_path, ct_files, codes):
    """ACIS reads a label map, resizes it to spatial_size and resizes the image back: a reoriented copy
    of the input gives the RAS original's output in its own axis order."""
    overrides = {"device": "cpu", "label_table": "totalseg_to_lobes_heart", "spatial_size": [48, 40, 16]}
    parser = parse_inference(BUNDLES / "acis_tlobes", overrides)
    pre, post = parser.get_parsed_content("preprocessing"), parser.get_parsed_content("postprocessing")

    def run(path: Path) -> np.ndarray:
        item = pre({"image": str(path)})
        assert tuple(item["image"].shape[1:]) == (48, 40, 16) and axis_codes(item["image"]) == "RAS"
        item["pred"] = item["image"].as_tensor().float() / 6.0
        return np.asarray(post(item)["pred"][0], dtype=np.float64)

    ras, other = run(ct_files["RAS"]["label"]), run(ct_files[codes]["label"])
    stored = nib.load(str(ct_files[codes]["label"]))
    assert other.shape == stored.shape
    expected, _ = reoriented(ras, nib.load(str(ct_files["RAS"]["label"])).affine, codes)
    np.testing.assert_allclose(other, expected, atol=0.01)  # HU; float32 interpolation


def test_restore_orientation_is_a_no_op_for_arrays_without_a_stored_affine():
    image = MetaTensor(torch.zeros(1, 3, 4, 5), meta={"spatial_shape": np.array([3, 4, 5])})
    pred = torch.rand(1, 3, 4, 5)
    assert RestoreOrientationd("pred")({"image": image, "pred": pred})["pred"] is pred
    with pytest.raises(DataError, match=r"pred has spatial shape \(3, 4, 4\), but RestoreOrientationd needs"):
        RestoreOrientationd("pred")({"image": image, "pred": torch.rand(1, 3, 4, 4)})


# ---- the bundles wire it ------------------------------------------------------------------------


def config_of(bundle: str, name: str) -> dict:
    return json.loads((BUNDLES / bundle / "configs" / f"{name}.json").read_text())


@pytest.mark.parametrize("bundle", ["anatomask_abdomen", "anatomask_oasis", "acis_tlobes", "acis_penet"])
def test_every_bundle_reorients_right_after_loading_and_validating(bundle):
    spatial = ("Resized", "ResizeSlicesd", "RandFlipd", "RandRotate90d", "RandSliceStackd", "Slicesd")
    for name, key in (("train", "volume_transforms"), ("inference", "preprocessing")):
        cfg = config_of(bundle, name)
        steps = (
            cfg[key]
            if name == "train"
            else cfg.get("label_transforms") or cfg[key]["transforms"][0]["transforms"]
        )
        targets = [s["_target_"].rsplit(".", 1)[-1] for s in steps if isinstance(s, dict)]
        assert "OrientToRASd" in targets, (bundle, name)
        at = targets.index("OrientToRASd")
        assert targets[at - 1] == "ValidateVolumed", (bundle, name, targets)
        assert not any(t.endswith(spatial) for t in targets[:at]), (bundle, name, targets)
    post = [
        s["_target_"].rsplit(".", 1)[-1]
        for s in config_of(bundle, "inference")["postprocessing"]["transforms"]
    ]
    assert post[0] == "RestoreOrientationd", post


@pytest.mark.parametrize(("bundle", "table", "num_classes"), [("anatomask_abdomen", "abdomenctct", 14),
                                                             ("anatomask_oasis", "oasis35", 36)])  # fmt: skip
def test_anatomask_training_flips_left_right_with_the_label_sets_table(tmp_path, bundle, table, num_classes):
    parser = ConfigParser()
    parser.read_config(str(BUNDLES / bundle / "configs" / "train.json"))
    parser.update({"bundle_root": str(tmp_path)})
    stack = parser.get_parsed_content("train#stack_transforms")
    assert [type(t).__name__ for t in stack] == ["RandLateralFlipd", "RandSliceStackd", "RandRotate90d"]
    assert stack[0].lateral_pairs is LATERAL_PAIRS[table] and stack[0].prob == 0.5
    assert not any(isinstance(t, RandFlipd) for t in stack)
    for off in ({"augment": False}, {"lateral_pairs": None}):
        parser = ConfigParser()
        parser.read_config(str(BUNDLES / bundle / "configs" / "train.json"))
        parser.update({"bundle_root": str(tmp_path), **off})
        assert [type(t).__name__ for t in parser.get_parsed_content("train#stack_transforms")][
            0
        ] == "RandSliceStackd"
    parser = ConfigParser()
    parser.read_config(str(BUNDLES / bundle / "configs" / "train.json"))
    parser.update({"bundle_root": str(tmp_path), "lateral_pairs": {"3": 3}})
    with pytest.raises(Exception) as err:
        parser.get_parsed_content("train#stack_transforms")
    assert "lateral_pairs: id 3 is paired with itself" in str(find_cause(err.value, ConfigError))


def test_abdomen_training_volumes_keep_their_kidneys_sides_through_the_configs_transforms(tmp_path, ct_files):
    """train.json's volume transforms and its lateral flip, on the LPS copy of the real CT: the left
    kidney and adrenal stay at smaller x (the patient's left) than the right ones, flipped or not."""
    parser = ConfigParser()
    parser.read_config(str(BUNDLES / "anatomask_abdomen" / "configs" / "train.json"))
    parser.update({"bundle_root": str(tmp_path), "label_table": "totalseg_to_abdomenctct",
                   "spatial_size": [64, 48], "lateral_flip_prob": 1.0})  # fmt: skip
    volume = Compose(parser.get_parsed_content("volume_transforms"))
    flip = parser.get_parsed_content("train#stack_transforms")[0]
    files = ct_files["LPS"]
    before = volume({"image": str(files["image"]), "label": str(files["label"])})
    after = flip(dict(before))
    for d in (before, after):
        label = np.asarray(d["label"][0])
        x = {i: np.argwhere(label == i)[:, 0].mean() for i in (2, 3, 12, 13)}
        assert x[3] < x[2] and x[13] < x[12], x
    assert not torch.equal(before["label"].as_tensor(), after["label"].as_tensor())
