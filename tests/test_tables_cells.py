"""The experiments' shared machinery: results folder, resumable cells, overrides, CLI wiring."""

from __future__ import annotations

import json

import pytest

from anatosynth_components import cli
from anatosynth_components.errors import ConfigError, DataError
from anatosynth_components.experiments.cells import Cell, run_cells
from anatosynth_components.experiments.markdown import markdown_table
from anatosynth_components.experiments.overrides import apply_overrides
from anatosynth_components.experiments.results_folder import ResultsFolder
from anatosynth_components.experiments.synthetic import run_acis_sampling, synthetic_source


def test_cells_are_stored_as_they_finish_and_skipped_on_rerun(tmp_path):
    folder = ResultsFolder.open(tmp_path / "out", "demo", {"k": 1})
    calls = []

    def compute(cell):
        calls.append(cell.id)
        if cell.id == "c" and len(calls) == 3:
            raise RuntimeError("interrupted")
        return {"value": cell.params["x"] * 10}

    cells = [Cell("a", {"x": 1}), Cell("b", {"x": 2}), Cell("c", {"x": 3})]
    with pytest.raises(RuntimeError, match="interrupted"):
        run_cells(folder, cells, compute, progress=False)
    assert sorted(p.stem for p in (tmp_path / "out" / "cells").glob("*.json")) == ["a", "b"]  # stored at once
    mtimes = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out" / "cells").glob("*.json")}
    run = run_cells(ResultsFolder.open(tmp_path / "out", "demo", {"k": 1}), cells, compute, progress=False)
    assert run.computed == ["c"] and run.skipped == ["a", "b"] and calls == ["a", "b", "c", "c"]
    assert run.results == {"a": {"value": 10}, "b": {"value": 20}, "c": {"value": 30}}
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out" / "cells").glob("[ab].json")} == mtimes
    again = run_cells(folder, cells, compute, progress=False)
    assert again.computed == [] and len(calls) == 4  # nothing new computed
    record = json.loads((tmp_path / "out" / "cells" / "c.json").read_text())
    assert record["params"] == {"x": 3} and record["wall_s"] >= 0 and record["started"] <= record["finished"]


def test_cell_with_other_parameters_or_corrupt_record_is_an_error(tmp_path):
    folder = ResultsFolder.open(tmp_path, "demo", {})
    run_cells(folder, [Cell("a", {"x": 1})], lambda c: {}, progress=False)
    with pytest.raises(
        ConfigError, match=r"a\.json was computed with other parameters \(x: 1 there, 2 now\)"
    ):
        run_cells(folder, [Cell("a", {"x": 2})], lambda c: {}, progress=False)
    (tmp_path / "cells" / "a.json").write_text("{not json")
    with pytest.raises(DataError, match="corrupt cell record"):
        run_cells(folder, [Cell("a", {"x": 1})], lambda c: {}, progress=False)
    with pytest.raises(ConfigError, match="duplicate cell ids"):
        run_cells(folder, [Cell("b"), Cell("b")], lambda c: {}, progress=False)


def test_results_folder_belongs_to_one_configuration(tmp_path):
    ResultsFolder.open(tmp_path / "r", "ablation", {"epochs": 8, "network": {"width": 16}})
    recorded = json.loads((tmp_path / "r" / "config.json").read_text())
    assert (
        recorded["config"] == {"epochs": 8, "network": {"width": 16}}
        and "anatosynth_version" in recorded["recorded"]
    )
    ResultsFolder.open(tmp_path / "r", "ablation", {"epochs": 8, "network": {"width": 16}})  # same: resumes
    with pytest.raises(ConfigError, match=r"network\.width: 16 there, 8 now.*--overwrite"):
        ResultsFolder.open(tmp_path / "r", "ablation", {"epochs": 8, "network": {"width": 8}})
    with pytest.raises(ConfigError, match="experiment: ablation there, segmentation now"):
        ResultsFolder.open(tmp_path / "r", "segmentation", {"epochs": 8, "network": {"width": 16}})
    ResultsFolder.open(tmp_path / "r", "ablation", {"epochs": 9}, overwrite=True)
    assert json.loads((tmp_path / "r" / "config.json").read_text())["config"] == {"epochs": 9}
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not an experiment's results folder"):
        ResultsFolder.open(tmp_path / "other", "ablation", {})


def test_results_folder_paths_are_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = ResultsFolder.open("runs/x", "demo", {})
    assert folder.root == tmp_path / "runs" / "x" and folder.root.is_absolute()


def test_overrides_are_checked_against_the_defaults():
    defaults = {"epochs": 8, "lr": 0.001, "arms": ["baseline"], "network": {"width": 16}, "path": None}
    out = apply_overrides(
        defaults,
        ["epochs=2", "lr=1", 'arms=["baseline","synthetic"]', "network.depth=3", "path=/data"],
        free_dicts=("network",),
    )
    assert out == {
        "epochs": 2,
        "lr": 1,
        "arms": ["baseline", "synthetic"],
        "network": {"width": 16, "depth": 3},
        "path": "/data",
    }
    assert defaults["epochs"] == 8  # a copy
    with pytest.raises(ConfigError, match="epochz: unknown key"):
        apply_overrides(defaults, ["epochz=2"])
    with pytest.raises(ConfigError, match="expected a value like 8"):
        apply_overrides(defaults, ["epochs=many"])
    with pytest.raises(ConfigError, match="network.depth: unknown key"):
        apply_overrides(defaults, ["network.depth=3"])  # network is not free-form here
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides(defaults, ["epochs"])


def test_markdown_table():
    assert markdown_table(["a", "b"], [["x|y", 1]]) == "| a | b |\n| --- | --- |\n| x\\|y | 1 |"
    with pytest.raises(ValueError, match="has 1 cells"):
        markdown_table(["a", "b"], [["x"]])


def test_acis_hook_says_the_bundle_is_missing(tmp_path):
    with pytest.raises(
        ConfigError, match=r"ACIS bundle not available: .*acis_x/configs/train.json is missing"
    ):
        run_acis_sampling(tmp_path / "acis_x", tmp_path / "real.json", 4, tmp_path / "out")
    (tmp_path / "acis_x" / "configs").mkdir(parents=True)
    for name, missing in (("train.json", "refine.json"), ("refine.json", "inference.json")):
        (tmp_path / "acis_x" / "configs" / name).write_text("{}")
        with pytest.raises(ConfigError, match=rf"acis_x/configs/{missing} is missing \(not an ACIS bundle"):
            run_acis_sampling(tmp_path / "acis_x", tmp_path / "real.json", 4, tmp_path / "out")
    with pytest.raises(ConfigError, match="exactly one of 'datalist' or 'acis_bundle'"):
        synthetic_source({"datalist": "a.json", "acis_bundle": "b"})
    assert not (tmp_path / "out").exists()


def test_cli_tables(capsys):
    assert (
        cli.main(
            ["tables", "ablation", "--show-config", "--set", "epochs=3", "--set", "network.base_channels=8"]
        )
        == 0
    )
    shown = json.loads(capsys.readouterr().out)
    assert shown["epochs"] == 3 and shown["network"]["base_channels"] == 8 and shown["scale"] == "demo"
    assert (
        cli.main(
            [
                "tables",
                "segmentation",
                "--scale",
                "paper",
                "--show-config",
                "--synthetic-datalist",
                "syn.json",
            ]
        )
        == 0
    )
    shown = json.loads(capsys.readouterr().out)
    assert shown["spatial_size"] == [192, 192, 160] and shown["synthetic"] == {
        "datalist": {"acis": "syn.json"}
    }
    assert cli.main(["tables", "reconstruction", "--set", "epochs=3"]) == 2
    assert "epochs: unknown key" in capsys.readouterr().err
