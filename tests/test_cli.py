"""The ``anatosynth`` command line: once end to end through the installed console script, the
error paths in-process (each new process spends seconds importing torch and MONAI)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from anatosynth_components.cli import main


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
        (["demo-data", "--kind", "brain", "--out", "{tmp}", "--shape", "8", "8", "8"], "shape must be three"),
    ],
)
def test_errors_are_one_clear_line(tmp_path, capsys, args, message):
    assert main([a.replace("{tmp}", str(tmp_path / "o")) for a in args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_corrupt_volume_is_named(tmp_path, capsys):
    out = tmp_path / "chest"
    args = ["demo-data", "--kind", "chest", "--out", str(out), "--subjects", "1", "--shape", "24", "24", "24"]
    assert main(args) == 0
    victim = out / "imagesTr" / "chest_001.nii.gz"
    victim.write_bytes(victim.read_bytes()[:200])
    assert main(["inspect", str(out)]) == 2
    assert f"{victim}: cannot read the image file" in capsys.readouterr().err


def test_existing_output_is_refused(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["demo-data", "--kind", "brain", "--out", str(tmp_path), "--subjects", "1"]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_paper_scale_without_a_dataset_is_refused_with_the_command(tmp_path):
    """``--scale paper`` never trains the paper-size models on demo phantoms by accident."""
    r = subprocess.run(
        [shutil.which("anatosynth") or str(sys.executable).replace("python", "anatosynth"),
         "tables", "ablation", "--scale", "paper"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("anatosynth tables: error: --scale paper needs the real data and no --dataset-dir")
    assert "Give it: anatosynth tables ablation --scale paper --dataset-dir /path/to/OASIS" in line
    assert not (tmp_path / "runs").exists()  # refused before any results folder or demo data


@pytest.mark.parametrize(
    ("experiment", "data"), [("segmentation", "/path/to/lobes"), ("reconstruction", "/path/to/penet")]
)
def test_every_paper_experiment_asks_for_its_data(tmp_path, capsys, experiment, data):
    out = ["--out", str(tmp_path / "out")]
    assert main(["tables", experiment, "--scale", "paper", *out, "--synthetic-datalist", "s.json"]) == 2
    assert f"anatosynth tables {experiment} --scale paper --dataset-dir {data}" in capsys.readouterr().err
    # a dataset given (here through --set) passes this check and goes on to be read
    missing = tmp_path / "nowhere"
    args = ["tables", experiment, "--scale", "paper", *out, "--set", f'dataset_dir="{missing}"']
    assert main([*args, "--synthetic-datalist", "s.json"]) == 2
    assert f"dataset_dir {missing}: not found" in capsys.readouterr().err


def test_demo_data_of_an_experiment_is_announced_by_a_warning_banner(tmp_path, caplog):
    from anatosynth_components.experiments.datasets import dataset_root
    from anatosynth_components.experiments.results_folder import ResultsFolder

    config = {"dataset_dir": None, "demo": {"kind": "chest", "subjects": 3, "seed": 0, "shape": [24, 24, 24]}}
    folder = ResultsFolder.open(tmp_path / "res", "segmentation", config)
    with caplog.at_level("WARNING"):
        path = dataset_root(config, folder, progress=False)
    (banner,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "WARNING: no dataset given, so this run uses GENERATED DEMO DATA" in banner
    assert (
        f"data: 3 chest phantoms (`anatosynth demo-data --kind chest`, datalist layout) in {path}" in banner
    )
    assert "to use your data: --dataset-dir /path/to/dataset" in banner


def test_synthetic_datalists_per_acis_arm_in_the_shown_config(capsys):
    args = ["tables", "segmentation", "--show-config"]
    assert main([*args, "--synthetic-datalist", "r.json", "--synthetic-datalist", "acis_minus=u.json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["synthetic"] == {"datalist": {"acis": "r.json", "acis_minus": "u.json"}}
    assert shown["arms"] == ["baseline", "acis_minus", "acis"] and shown["real_synthetic_ratio"] == [1, 1]
    assert main([*args, "--synthetic-datalist", "a.json", "--synthetic-datalist", "acis=b.json"]) == 2
    assert "two datalists for the acis arm (a.json, b.json)" in capsys.readouterr().err
