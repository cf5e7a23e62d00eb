"""The ``anatosynth`` command line, run as users run it (the installed console script)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest


def anatosynth(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("anatosynth") or str(sys.executable).replace("python", "anatosynth")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=300)


def test_demo_data_then_inspect(tmp_path):
    out = tmp_path / "chest"
    r = anatosynth(
        "demo-data", "--kind", "chest", "--out", str(out), "--subjects", "3", "--shape", "32", "32", "32"
    )
    assert r.returncode == 0, r.stderr
    assert str(out) in r.stdout and (out / "dataset.json").is_file()
    png = tmp_path / "m.png"
    r = anatosynth("inspect", str(out), "--subjects", "2", "--png", str(png))
    assert r.returncode == 0, r.stderr
    assert "datalist layout, 3 volumes of 3 subjects" in r.stdout
    assert "6 labels: 1 left upper lobe" in r.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["inspect", "/nonexistent/dataset"], "dataset folder not found"),
        (["demo-data", "--kind", "brain", "--out", "{tmp}", "--subjects", "0"], "subjects must be >= 1"),
        (
            ["demo-data", "--kind", "brain", "--out", "{tmp}", "--shape", "8", "8", "8"],
            "shape must be three sizes >= 16",
        ),
    ],
)
def test_errors_are_one_clear_line(tmp_path, args, message):
    r = anatosynth(*[a.replace("{tmp}", str(tmp_path / "o")) for a in args])
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr


def test_corrupt_volume_is_named(tmp_path):
    out = tmp_path / "chest"
    assert (
        anatosynth(
            "demo-data", "--kind", "chest", "--out", str(out), "--subjects", "1", "--shape", "24", "24", "24"
        ).returncode
        == 0
    )
    victim = out / "imagesTr" / "chest_001.nii.gz"
    victim.write_bytes(victim.read_bytes()[:200])
    r = anatosynth("inspect", str(out))
    assert r.returncode == 2 and f"{victim}: cannot read the image file" in r.stderr
