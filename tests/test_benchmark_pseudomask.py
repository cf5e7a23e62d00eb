"""``anatosynth benchmark pseudomask`` at a tiny size: its volume comes from ``--volume`` or, said in
the output, from the phantom generator; it never looks for a file of its own (timing belongs to the
benchmark itself, not to the test)."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from anatosynth_components.cli import main
from anatosynth_components.data.demo.chest import chest_phantom

TINY = [
    "--num-points",
    "32",
    "--repeats",
    "1",
    "--naive-voxels",
    "100",
    "--resampled-shape",
    "24",
    "20",
    "16",
]


def test_without_volume_it_runs_on_a_generated_phantom_and_says_so(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["benchmark", "pseudomask", "--phantom-shape", "20", "20", "16", *TINY]) == 0
    out = capsys.readouterr().out
    assert (
        "volume: no --volume given, so a generated chest CT phantom (20 x 20 x 16, seed 0; the ACIS demo "
        "data's generator) stands in for a real scan: timings and checks are the phantom's; pass "
        "--volume PATH to benchmark a real CT"
    ) in out
    assert "[generated chest CT phantom (seed 0)] 20 x 20 x 16 = 6,400 voxels" in out
    assert "[the phantom resampled to 24 x 20 x 16] 24 x 20 x 16 = 7,680 voxels" in out
    assert out.count("check density") == 2 and "FAILED" not in out
    assert "not assessed, the target is for 192 x 192 x 160" in out
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_volume_is_the_ct_given(capsys, tmp_path):
    phantom = chest_phantom((20, 18, 16), 1)
    path = tmp_path / "small_ct.nii.gz"
    nib.save(nib.Nifti1Image(phantom.image, np.diag([*phantom.spacing, 1.0])), str(path))
    assert main(["benchmark", "pseudomask", "--volume", str(path), *TINY]) == 0
    out = capsys.readouterr().out
    assert f"volume: {path} (--volume)" in out and "phantom" not in out
    sp = " x ".join(f"{s:.3g}" for s in phantom.spacing)
    assert f"[CT small_ct.nii.gz] 20 x 18 x 16 = 5,760 voxels, spacing {sp} mm" in out
    assert "[the CT resampled to 24 x 20 x 16]" in out and "FAILED" not in out
    assert main(["benchmark", "pseudomask", "--volume", str(tmp_path / "missing.nii.gz"), *TINY]) == 2
    assert f"--volume {tmp_path / 'missing.nii.gz'}: file not found" in capsys.readouterr().err
