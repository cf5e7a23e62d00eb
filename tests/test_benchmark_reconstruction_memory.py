"""``anatosynth benchmark reconstruction-memory`` at a tiny size: the report's lines and numbers, the
ratio and the verdict computed from the children's peaks.  No memory assertions beyond a loose sanity
bound (the measurement belongs to the benchmark itself)."""

from __future__ import annotations

import json

import pytest

from anatosynth_components.benchmarks import reconstruction_memory
from anatosynth_components.cli import main

TINY = ["--studies", "8", "6", "--shape", "32", "32", "16", "--spatial-size", "32", "32", "--batches", "2",
        "--batch-size", "4", "--eval-batch-size", "5", "--baseline-scans", "2", "--upper-bound-scans", "5",
        "--synthetic-slices", "2", "--slice-stride", "2"]  # fmt: skip


def test_tiny_run_reports_peaks_and_ratio(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["benchmark", "reconstruction-memory", *TINY, "--json", str(out)])
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    small, large = result["runs"]
    assert [small["studies"], large["studies"]] == [6, 8]  # sorted
    # demo PENet splits: 6 studies -> 4 training + 1 test, 8 -> 6 + 1
    assert (small["training_scans"], small["test_scans"], large["training_scans"]) == (4, 1, 6)
    for run, upper in ((small, 4), (large, 5)):
        assert run["train_slices"] == {
            "baseline": 2 * 8,  # 16 slices, every 2nd
            "augment": 2 * 8,
            "upper_bound": upper * 8,
            "acis (stand-in)": 2 * 8,
        }
        assert run["test_slices"] == run["test_scans"] * 8
        assert run["slices_drawn"] == 2 * 4 * 2 * 4  # 2 tasks x 4 arms x 2 batches of 4
        assert run["store"]["slice_reads"] > 0 and run["store"]["cached_bytes"] <= 32 * 2**20
        assert set(run["input_psnr"]) == {"sr2", "noise0.1"}
        peak = run["vmhwm_mib"] or run["peak_rss_mib"]
        assert 50 < peak < 16 * 1024 and peak >= run["rss_before_mib"] - 1
    peaks = {int(k): v for k, v in result["peak_mib"].items()}
    assert result["ratio"] == pytest.approx(peaks[8] / peaks[6])
    assert result["pass"] == (result["ratio"] <= 1.10) and rc == (0 if result["pass"] else 1)
    assert "studies train test" in printed
    assert f"peak RSS (VmHWM) ratio 8 / 6 studies: {result['ratio']:.3f} (limit 1.10): " in printed
    assert ("PASS" if result["pass"] else "FAIL") in printed


def test_needs_two_sizes(tmp_path):
    with pytest.raises(SystemExit, match="at least two"):
        main(["benchmark", "reconstruction-memory", "--studies", "6", "--work", str(tmp_path)])
    assert reconstruction_memory.write_synthetic_slices(tmp_path, 0, [32, 32, 16], 0) == []
