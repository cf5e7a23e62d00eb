"""Synthetic CT in Hounsfield units (issue 17, item 8).

The CT bundles (anatomask_abdomen, acis_penet, acis_tlobes) write the inverse of the training window
by default: a network output of 0 lands on the window's lower bound and 1 on its upper bound, with
the window read from the key the training uses (``intensity`` of anatomask_abdomen, ``hu_window`` of
the ACIS bundles).  ``output_range: null`` keeps [0, 1].  Checked on the configs' own
``postprocessing`` (what MONAI Label's bundle app runs; ``test_monailabel_serving.py`` checks the
served files), on a real ``monai.bundle run`` of anatomask_abdomen, and on ACIS pair sampling."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_runs import run_bundle
from conftest import REPO
from monai.data import MetaTensor
from monai.transforms import ScaleIntensityRangePercentilesd
from test_publish_conformance import tiny_bundle

from anatosynth_components.bundle import OutputRanged, window_range
from anatosynth_components.errors import ConfigError, find_cause
from anatosynth_components.packaging.export import parse_inference

BUNDLES = REPO / "bundles"
CT = ["anatomask_abdomen", "acis_penet", "acis_tlobes"]


def training_window(name: str) -> list[float]:
    """The HU window ``train.json`` maps to [0, 1] (read from the training config itself)."""
    train = json.loads((BUNDLES / name / "configs" / "train.json").read_text())
    if name == "anatomask_abdomen":
        assert train["intensity"]["b_min"] == 0 and train["intensity"]["b_max"] == 1
        return [float(train["intensity"]["a_min"]), float(train["intensity"]["a_max"])]
    return [float(v) for v in train["hu_window"]]


def postprocess(name: str, pred: torch.Tensor, overrides: dict | None = None) -> np.ndarray:
    """The inference config's ``postprocessing`` on ``pred`` (1, *S), with a loaded-looking source image."""
    parser = parse_inference(BUNDLES / name, {"device": "cpu", **(overrides or {})})
    image = MetaTensor(torch.zeros_like(pred), meta={"spatial_shape": np.array(pred.shape[1:])})
    out = parser.get_parsed_content("postprocessing")({"image": image, "pred": pred})
    return np.asarray(out["pred"], dtype=np.float64)


def test_window_keys_match_the_training_configs():
    for name in CT:
        assert parse_inference(BUNDLES / name).get_parsed_content("output_range") == training_window(name)
    abdomen = json.loads((BUNDLES / "anatomask_abdomen" / "configs" / "train.json").read_text())["intensity"]
    infer = json.loads((BUNDLES / "anatomask_abdomen" / "configs" / "inference.json").read_text())[
        "intensity"
    ]
    assert infer == abdomen, "inference.json's intensity must be the training window, key for key"
    assert parse_inference(BUNDLES / "anatomask_oasis").get_parsed_content("output_range") is None  # MRI


@pytest.mark.parametrize("name", CT)
def test_postprocessing_undoes_the_training_window(name):
    low, high = training_window(name)
    pred = torch.tensor([0.0, 0.25, 0.5, 1.0]).reshape(1, 4, 1, 1).repeat(1, 1, 3, 2)
    out = postprocess(name, pred)
    assert out.shape == tuple(pred.shape)
    np.testing.assert_allclose(
        out[0, :, 0, 0], [low, low + 0.25 * (high - low), (low + high) / 2, high], atol=1e-4
    )
    # the same key the training uses moves it: the window is read, not hard-coded
    if name == "anatomask_abdomen":
        moved = {"intensity#a_min": -200.0, "intensity#a_max": 300.0}
    else:
        moved = {"hu_window": [-200.0, 300.0]}
    np.testing.assert_allclose(postprocess(name, pred, moved)[0, [0, 3], 0, 0], [-200.0, 300.0], atol=1e-4)
    # [0, 1] by the documented key: null in the config, or "null" from the command line
    for unit in (None, "null"):
        np.testing.assert_allclose(postprocess(name, pred, {"output_range": unit}), pred.numpy(), atol=1e-6)


def test_window_range_and_output_ranged_errors_name_the_key():
    assert window_range({"a_min": -175, "a_max": 250, "b_min": 0, "b_max": 1}) == [-175.0, 250.0]
    percentiles = ScaleIntensityRangePercentilesd("image", lower=0.5, upper=99.5, b_min=0, b_max=1)
    with pytest.raises(ConfigError, match="intensity: ScaleIntensityRangePercentilesd has no fixed window"):
        window_range(percentiles)
    with pytest.raises(ConfigError, match=r"intensity: intensity#b_min, intensity#b_max must be set"):
        window_range({"a_min": -175, "a_max": 250})
    with pytest.raises(
        ConfigError, match=r"output_range must be \[low, high\] with low < high, got \[250, -175\]"
    ):
        OutputRanged("pred", [250, -175])
    x = MetaTensor(torch.tensor([[0.0, 1.0]]), meta={"filename_or_obj": "a.nii.gz"})
    y = OutputRanged("pred", [-1000, 600])({"pred": x})["pred"]
    assert (
        isinstance(y, MetaTensor) and y.meta["filename_or_obj"] == "a.nii.gz" and y.tolist() == [[-1000, 600]]
    )


def label_volume(path, shape=(24, 24, 6)) -> None:
    labels = np.zeros(shape, np.uint8)
    labels[4:20, 4:20, 1:5] = 1
    labels[8:14, 6:12, 2:4] = 6
    nib.save(nib.Nifti1Image(labels, np.diag([1.5, 1.5, 3.0, 1.0])), path)


def test_bundle_run_writes_hounsfield_units(tmp_path):
    """``monai.bundle run`` of anatomask_abdomen: HU by default, [0, 1] with ``--output_range null``,
    and HU = -175 + 425 x voxel by voxel (0 -> -175, 1 -> 250)."""
    bundle = tiny_bundle("anatomask_abdomen", tmp_path / "src")
    (tmp_path / "in").mkdir()
    label_volume(tmp_path / "in" / "case.nii.gz")
    written = {}
    for mode, extra in (("hu", {}), ("unit", {"output_range": "null"})):
        out = tmp_path / f"out_{mode}"
        run_bundle(tmp_path, str(bundle / "configs" / "inference.json"), "run", bundle,
                   dataset_dir=str(tmp_path / "in"), output_dir=str(out), **extra)  # fmt: skip
        (file,) = out.glob("*.nii.gz")
        written[mode] = np.asarray(nib.load(file).dataobj, dtype=np.float64)
    unit, hu = written["unit"], written["hu"]
    assert 0.0 <= unit.min() and unit.max() <= 1.0 and unit.std() > 1e-3
    low, high = training_window("anatomask_abdomen")
    np.testing.assert_allclose(hu, low + unit * (high - low), atol=1e-3)
    assert low <= hu.min() and hu.max() <= high and hu.max() - hu.min() > 1.0


def test_acis_sampling_writes_hounsfield_units(tmp_path):
    """ACIS pair sampling (``sampling#postprocessing``, ``SavePaird``): image 0 -> -1000, 1 -> 600 HU; a
    window other than the one the model was trained with (``data_grid.json``) is refused."""
    affine = np.diag([0.7, 0.7, 1.0, 1.0])
    grid = {"spatial_size": [6, 5], "affine": affine, "label_names": {1: "a"}, "hu_window": [-1000.0, 600.0]}
    parser = parse_inference(BUNDLES / "acis_penet", {"grid": grid, "output_dir": str(tmp_path)})
    pred = torch.zeros(2, 6, 5)
    pred[0] = torch.linspace(0, 1, 30).reshape(6, 5)
    item = parser.get_parsed_content("sampling#postprocessing")({"pred": pred, "sample": 0})
    image = np.asarray(nib.load(item["image_file"]).dataobj, dtype=np.float64)
    assert image.flat[0] == -1000.0 and image.flat[-1] == 600.0
    np.testing.assert_allclose(image, -1000 + 1600 * pred[0].numpy(), atol=1e-3)
    other = parse_inference(BUNDLES / "acis_penet", {"grid": {**grid, "hu_window": [-1200.0, 400.0]}})
    with pytest.raises(RuntimeError) as info:  # MONAI wraps the ConfigError in "Failed to instantiate"
        other.get_parsed_content("sampling#postprocessing")
    assert str(find_cause(info.value, ConfigError)).startswith(
        "output_range [-1000.0, 600.0] is not the HU window the model was trained with (hu_window "
        "[-1200.0, 400.0] in models/data_grid.json)"
    )
