"""``anatosynth package BUNDLE --out DIR``: bundle files only, the zoo's large-file rule, the pinned wheel."""

from __future__ import annotations

import hashlib
import json
import zipfile

import pytest
import torch
from test_publish_conformance import tiny_bundle

import anatosynth_components
from anatosynth_components.cli import main
from anatosynth_components.packaging import (
    META_SCHEMA,
    bundle_problems,
    keep,
    read_large_files,
    training_state,
)

KEPT = {
    "LICENSE",
    "large_files.yml",
    "configs/evaluate.json",
    "configs/inference.json",
    "configs/logging.conf",
    "configs/metadata.json",
    "configs/multi_gpu_train.json",
    "configs/train.json",
    "docs/README.md",
    "docs/data_license.txt",
    "models/model.pt",
    "models/model.pt.best.json",
}


def bundle_version(root) -> str:
    """The bundle's version, read from its metadata (the tests follow version bumps)."""
    return json.loads((root / "configs" / "metadata.json").read_text())["version"]


def add_run_outputs(root):
    """What a bundle folder in use holds besides the bundle: demo data, outputs, training states, caches."""
    for rel in (
        "runs/demo_data/dataset.json",
        "runs/split.json",
        "synth/OASIS_0001_0000_synth.nii.gz",
        "eval/metrics.csv",
        "logs/events.out",
        "models/phase1/latest_checkpoint_epoch=1.pt",
        "models/phase2/latest_checkpoint_epoch=3.pt",
        "models/registration/latest_checkpoint_epoch=4.pt",
        "models/refine/latest_checkpoint_epoch=5.pt",
        "models/refine/history.json",
        "models/latest_checkpoint_epoch=2.pt",
        "models/refine_state.pt",
        "configs/__pycache__/x.cpython-311.pyc",
        "configs/.inference.json.swp",
        "docs/.DS_Store",
        "models/.model.pt.abc.part.pt",
        "notes.txt",
    ):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("not part of the bundle")
    (root / "models" / "model.pt.best.json").write_text('{"metric": "val_psnr", "score": 1.0}')


def files_under(folder):
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_package_writes_the_bundle_files_the_zip_and_the_pinned_wheel(tmp_path, capsys):
    root = tiny_bundle("anatomask_oasis", tmp_path / "src")
    add_run_outputs(root)
    out = tmp_path / "dist"
    args = ["package", str(root), "--out", str(out), "--export", "torchscript"]
    assert main(args) == 0  # validates the metadata against the schema shipped in the package
    folder = out / "anatomask_oasis"
    assert files_under(folder) == KEPT | {"models/model.ts"}
    with zipfile.ZipFile(out / f"anatomask_oasis_v{bundle_version(root)}.zip") as zf:
        assert set(zf.namelist()) == {f"anatomask_oasis/{f}" for f in KEPT | {"models/model.ts"}}
        assert zf.read("anatomask_oasis/configs/train.json") == (root / "configs" / "train.json").read_bytes()
    assert read_large_files(folder / "large_files.yml") == []  # the tiny model is under 25 MB
    assert bundle_problems(folder) == []
    wheels = list((out / "wheels").iterdir())
    assert [w.name for w in wheels] == [
        f"anatosynth_components-{anatosynth_components.__version__}-py3-none-any.whl"
    ]
    with zipfile.ZipFile(wheels[0]) as zf:
        names = zf.namelist()
        meta = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Name: anatosynth-components" in meta and f"Version: {anatosynth_components.__version__}" in meta
    assert (
        "anatosynth_components/packaging/package.py" in names and "anatosynth_components/cli/main.py" in names
    )
    # the zoo's metadata schema travels in the wheel (package data), byte for byte
    with zipfile.ZipFile(wheels[0]) as zf:
        shipped = zf.read("anatosynth_components/packaging/schemas/meta_schema_20240725.json")
    assert shipped == META_SCHEMA.read_bytes()
    exported = torch.jit.load(str(folder / "models" / "model.ts"))
    assert exported(torch.zeros(1, 1, 4, 32, 32)).shape == (1, 1, 4, 32, 32)
    printed = capsys.readouterr().out
    assert f"zip:           {out / f'anatomask_oasis_v{bundle_version(root)}.zip'} (13 files)" in printed
    # an existing package is not overwritten silently
    assert main(["package", str(root), "--out", str(out), "--no-wheel"]) == 2
    assert "exists" in capsys.readouterr().err


def test_files_over_25_mb_go_by_url_into_large_files_yml(tmp_path, capsys):
    root = tiny_bundle("acis_penet", tmp_path / "src")
    with open(root / "models" / "model.onnx", "wb") as fh:  # a 26 MB file (sparse)
        fh.truncate(26 * 10**6)
    out = tmp_path / "dist"
    assert main(["package", str(root), "--out", str(out), "--no-wheel"]) == 2
    err = capsys.readouterr().err
    assert f"{root}/models/model.onnx is 26 MB, over the model zoo's 25 MB" in err
    assert "--large-file-url models/model.onnx=URL" in err and not (out / "acis_penet").exists()
    url = "https://example.org/acis_penet/model.onnx"
    assert (
        main(
            [
                "package",
                str(root),
                "--out",
                str(out),
                "--no-wheel",
                "--large-file-url",
                f"models/model.onnx={url}",
            ]
        )
        == 0
    )
    folder = out / "acis_penet"
    digest = hashlib.sha256((root / "models" / "model.onnx").read_bytes()).hexdigest()
    entries = read_large_files(folder / "large_files.yml")
    assert entries == [{"path": "models/model.onnx", "url": url, "hash_val": digest, "hash_type": "sha256"}]
    assert (
        folder / "models" / "model.onnx"
    ).stat().st_size == 26 * 10**6  # the folder keeps it for local use
    with zipfile.ZipFile(out / f"acis_penet_v{bundle_version(root)}.zip") as zf:
        names = set(zf.namelist())
    assert "acis_penet/models/model.onnx" not in names and "acis_penet/models/model.pt" in names
    assert "acis_penet/large_files.yml" in names and not (out / "wheels").exists()


def test_wheel_version_must_match_the_metadata_pin(tmp_path, capsys):
    root = tiny_bundle("acis_tlobes", tmp_path / "src")
    meta_file = root / "configs" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    meta["required_packages_version"]["anatosynth-components"] = "9.9.9"
    meta_file.write_text(json.dumps(meta))
    assert main(["package", str(root), "--out", str(tmp_path / "dist")]) == 2
    err = capsys.readouterr().err
    assert (
        "metadata pins anatosynth-components 9.9.9 but" in err
        and f"pyproject.toml is version {anatosynth_components.__version__}" in err
    )
    assert not (tmp_path / "dist").exists()  # refused before anything was written


def test_a_bundle_that_breaks_the_rules_is_not_packaged(tmp_path, capsys):
    root = tiny_bundle("acis_tlobes", tmp_path / "src")
    (root / "LICENSE").unlink()
    assert main(["package", str(root), "--out", str(tmp_path / "dist"), "--no-wheel"]) == 2
    assert f"{root}/LICENSE: missing" in capsys.readouterr().err
    assert not (tmp_path / "dist" / "acis_tlobes").exists()
    with pytest.raises(SystemExit):
        main(["package", str(root), "--out", str(tmp_path / "d"), "--large-file-url", "models/model.pt"])


@pytest.mark.parametrize(
    "relative, published, state",
    [
        ("models/model.pt", True, False),
        ("models/model.ts", True, False),
        ("models/model.onnx", True, False),
        ("models/model.pt.best.json", True, False),
        ("models/data_grid.json", True, False),
        ("models/latest_checkpoint_epoch=12.pt", False, True),
        ("models/refine_state.pt", False, True),
        ("models/phase1/latest_checkpoint_epoch=3.pt", False, True),
        ("models/phase2/latest_checkpoint_epoch=3.pt", False, True),
        ("models/registration/latest_checkpoint_epoch=3.pt", False, True),
        ("models/refine/latest_checkpoint_epoch=3.pt", False, True),
        ("models/refine/model.pt", False, True),  # a model file inside a workflow's folder is a state too
        ("models/registration/record.json", False, True),
        ("models/some_new_workflow/latest_checkpoint_epoch=1.pt", False, True),
        ("models/registration.pt", False, False),  # weights, not a state, but not a published model file
        ("models/model_refined.pt", False, False),
        ("configs/train.json", True, False),
        ("docs/README.md", True, False),
        ("runs/split.json", False, False),
        ("configs/__pycache__/x.pyc", False, False),
    ],
)
def test_the_file_filter_never_publishes_training_states(relative, published, state):
    assert keep(relative) is published
    assert training_state(relative) is state


def test_metadata_that_breaks_the_shipped_schema_is_not_packaged(tmp_path, capsys):
    root = tiny_bundle("anatomask_abdomen", tmp_path / "src")
    meta_file = root / "configs" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    meta["references"] = "a string, not a list"  # the zoo schema wants an array of strings
    del meta["task"]  # and requires "task"
    meta_file.write_text(json.dumps(meta))
    assert main(["package", str(root), "--out", str(tmp_path / "dist"), "--no-wheel"]) == 2
    err = capsys.readouterr().err
    assert f"{meta_file}: does not validate against {META_SCHEMA}" in err
    assert not (tmp_path / "dist" / "anatomask_abdomen").exists()
    # --schema replaces the shipped schema; one that accepts anything lets the same bundle through
    lenient = tmp_path / "lenient_schema.json"
    lenient.write_text(
        json.dumps({"$schema": "https://json-schema.org/draft/2019-09/schema", "type": "object"})
    )
    out = tmp_path / "dist2"
    assert main(["package", str(root), "--out", str(out), "--no-wheel", "--schema", str(lenient)]) == 0
    assert (out / "anatomask_abdomen" / "configs" / "metadata.json").is_file()
    assert (
        main(["package", str(root), "--out", str(tmp_path / "d3"), "--schema", str(tmp_path / "nope.json")])
        == 2
    )
    assert f"--schema {tmp_path / 'nope.json'}: file not found" in capsys.readouterr().err
