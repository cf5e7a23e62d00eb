"""ACIS pseudo-masks from configs and the command line: the MONAI transforms (spacing from the affine,
determinism under set_random_state, the cached-density path) and ``anatosynth pseudomask``."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor

from anatosynth_components.acis.pseudomask import PseudoMaskDensityd, RandPseudoMaskd, pseudo_mask
from anatosynth_components.atomic import write_nifti
from anatosynth_components.cli import main
from anatosynth_components.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def ct_meta(real_ct) -> MetaTensor:
    """A crop of the real CT as a channel-first MetaTensor with an anisotropic affine."""
    affine = np.diag([0.8, 1.2, 3.0, 1.0])
    image = torch.as_tensor(real_ct["image"][20:80, 20:70, 8:20].astype(np.float32))[None]
    return MetaTensor(image, affine=torch.as_tensor(affine), meta={"filename_or_obj": "crop.nii.gz"})


def expected_entropy(seed: int) -> int:
    """The generator entropy RandPseudoMaskd draws first after ``set_random_state(seed)``."""
    return int(np.random.RandomState(seed).randint(0, 2**31 - 1, dtype=np.int64))


def test_transform_reads_spacing_from_the_affine_and_is_reproducible(ct_meta):
    t = RandPseudoMaskd(keys="image", num_points=200, seeds_keys="seeds", cells_keys="cells")
    t.set_random_state(seed=5)
    out = t({"image": ct_meta})
    mask = out["pseudo_mask"]
    assert isinstance(mask, MetaTensor) and tuple(mask.shape) == tuple(ct_meta.shape)
    assert mask.dtype == ct_meta.dtype
    np.testing.assert_allclose(np.asarray(mask.affine), np.asarray(ct_meta.affine))
    ref = pseudo_mask(ct_meta[0].numpy(), 200, expected_entropy(5), spacing=(0.8, 1.2, 3.0))
    np.testing.assert_array_equal(mask[0].numpy(), ref.mask)
    np.testing.assert_array_equal(out["seeds"].numpy(), ref.seeds)
    np.testing.assert_array_equal(out["cells"][0].numpy(), ref.cells)
    assert out["cells"].dtype == torch.int32
    # the same state gives the same sequence; the next call gives a new mask
    again = RandPseudoMaskd(keys="image", num_points=200)
    again.set_random_state(seed=5)
    np.testing.assert_array_equal(again({"image": ct_meta})["pseudo_mask"].numpy(), mask.numpy())
    assert not np.array_equal(again({"image": ct_meta})["pseudo_mask"].numpy(), mask.numpy())
    # the spacing matters: with 1 mm voxels the cells differ
    iso = pseudo_mask(ct_meta[0].numpy(), 200, expected_entropy(5), spacing=1.0)
    assert not np.array_equal(iso.cells, ref.cells)


def test_cached_density_gives_the_same_pseudo_mask(ct_meta):
    density = PseudoMaskDensityd(keys="image")({"image": ct_meta})
    assert tuple(density["pseudo_mask_density"].shape) == tuple(ct_meta.shape)
    cached = RandPseudoMaskd(keys="image", num_points=150, density_keys="pseudo_mask_density")
    fresh = RandPseudoMaskd(keys="image", num_points=150)
    cached.set_random_state(seed=1)
    fresh.set_random_state(seed=1)
    a = cached(density)["pseudo_mask"]
    b = fresh({"image": ct_meta})["pseudo_mask"]
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_transform_from_a_bundle_config(ct_meta):
    config = {
        "pm": {
            "_target_": "anatosynth_components.acis.pseudomask.RandPseudoMaskd",
            "keys": "image",
            "num_points": 64,
            "bandwidth_mm": 8.0,
        }
    }
    parser = ConfigParser(config)
    transform = parser.get_parsed_content("pm")
    transform.set_random_state(seed=0)
    out = transform({"image": ct_meta})
    assert len(np.unique(out["pseudo_mask"].numpy())) <= 64


def test_transform_errors_name_the_key(ct_meta):
    two_channels = MetaTensor(torch.zeros(2, 8, 8, 8))
    with pytest.raises(
        DataError, match=r"image: expected a channel-first image with one channel.*\(2, 8, 8, 8\)"
    ):
        RandPseudoMaskd(keys="image", num_points=4)({"image": two_channels})
    bad = ct_meta.clone()
    bad[0, 1, 2, 3] = float("nan")
    with pytest.raises(DataError, match=r"crop\.nii\.gz \(image\): 1 non-finite"):
        RandPseudoMaskd(keys="image", num_points=4)({"image": bad})
    with pytest.raises(ConfigError, match="num_points"):
        RandPseudoMaskd(keys="image", num_points=0)
    with pytest.raises(ConfigError, match="output_keys"):
        RandPseudoMaskd(keys=["a", "b"], num_points=3, output_keys="pm")
    with pytest.raises(ConfigError, match="density_keys cannot be used with num_edge_points"):
        RandPseudoMaskd(keys="image", num_points=3, num_edge_points=10, density_keys="d")


def test_cli_writes_mask_seeds_and_png(real_ct, tmp_path, capsys):
    out, seeds_out, png = tmp_path / "pm.nii.gz", tmp_path / "seeds.npy", tmp_path / "pm.png"
    args = [
        "pseudomask", str(real_ct["image_path"]), str(out), "--num-points", "500", "--seed", "3",
        "--bandwidth-mm", "12", "--seeds-out", str(seeds_out), "--png", str(png),
    ]  # fmt: skip
    assert main(args) == 0
    assert "500 cells" in capsys.readouterr().out
    written = nib.load(str(out))
    np.testing.assert_allclose(written.affine, real_ct["affine"])
    mask = np.asarray(written.dataobj)
    assert mask.dtype == np.int16 and mask.shape == real_ct["image"].shape
    seeds = np.load(seeds_out)
    assert seeds.shape == (500, 3) and seeds.dtype == np.int64
    ref = pseudo_mask(real_ct["image"], 500, np.random.default_rng(3), spacing=3.0, bandwidth_mm=12)
    np.testing.assert_array_equal(seeds, ref.seeds)
    np.testing.assert_array_equal(mask, ref.mask)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert not list(tmp_path.glob(".*part*"))  # atomic writes left no temporary files


def test_cli_bad_input_is_one_clear_line(tmp_path, capsys):
    four_d = tmp_path / "four_d.nii.gz"
    write_nifti(four_d, np.zeros((6, 7, 8, 2), np.float32), np.eye(4))
    nan = tmp_path / "nan.nii.gz"
    vol = np.ones((6, 7, 8), np.float32)
    vol[1, 1, 1] = np.nan
    write_nifti(nan, vol, np.eye(4))
    ok = tmp_path / "ok.nii.gz"
    write_nifti(ok, np.random.default_rng(0).random((6, 7, 8)).astype(np.float32), np.eye(4))
    cases = [
        ([str(four_d)], f"{four_d}: expected one 2D or 3D volume, got 4D data of shape (2, 6, 7, 8)"),
        ([str(nan)], f"{nan}: 1 non-finite voxels (1 NaN, 0 infinite)"),
        ([str(ok), "--num-points", "1000"], "num_points 1000 exceeds the number of voxels 336"),
        ([str(ok), "--bandwidth-mm", "0"], "bandwidth_mm must be > 0"),
        ([str(tmp_path / "missing.nii.gz")], "file not found"),
    ]
    for extra, message in cases:
        args = [
            "pseudomask",
            extra[0],
            str(tmp_path / "out.nii.gz"),
            "--num-points",
            "5",
            "--seed",
            "0",
            *extra[1:],
        ]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out.nii.gz").exists()
