"""The main job's target (``anatosynth floor``): model against the label-mean baseline, on both
``psnr_slice`` (within 1 dB or above) and ``st_lpips`` (below)."""

from __future__ import annotations

import json

import pytest

from anatosynth_components.cli.main import main
from anatosynth_components.errors import DataError
from anatosynth_components.metrics.floor import floor_comparison


def report(psnr: float, st: float, base_psnr: float = 22.0, base_st: float = 0.12) -> dict:
    summary = {"psnr_slice": {"mean": psnr}, "st_lpips": {"mean": st}}
    base = {"psnr_slice": {"mean": base_psnr}, "st_lpips": {"mean": base_st}}
    return {"summary": summary, "baselines": {"label_mean": {"summary": base}}}


@pytest.mark.parametrize(
    ("psnr", "st", "fidelity", "realism"),
    [
        (21.2, 0.10, True, True),  # 0.8 dB below: within the 1 dB margin
        (20.9, 0.10, False, True),  # 1.1 dB below
        (23.0, 0.12, True, False),  # equal ST-LPIPS is not below: a blurrier model cannot pass on PSNR
        (23.0, 0.30, True, False),
    ],
)
def test_target_needs_fidelity_and_realism(psnr, st, fidelity, realism):
    result = floor_comparison(report(psnr, st))
    assert (result["fidelity"], result["realism"], result["met"]) == (fidelity, realism, fidelity and realism)
    assert result["model"] == {"psnr_slice": psnr, "st_lpips": st}


def test_cli_prints_both_rows_and_strict_sets_the_status(tmp_path, capsys):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(report(22.5, 0.2)))
    assert main(["floor", str(path)]) == 0
    out = capsys.readouterr().out
    assert "psnr_slice       22.50       22.00" in out and "st_lpips        0.2000      0.1200" in out
    assert "target (fidelity and realism): NOT met" in out
    assert main(["floor", str(path), "--strict"]) == 1
    path.write_text(json.dumps({"summary": {}}))
    assert main(["floor", str(path)]) == 2
    assert "no label-mean baseline (baselines.label_mean)" in capsys.readouterr().err
    with pytest.raises(DataError, match="no mean of 'st_lpips'"):
        floor_comparison(
            {"summary": {"psnr_slice": {"mean": 1.0}}, "baselines": {"label_mean": {"summary": {}}}}
        )
