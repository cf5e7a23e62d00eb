"""``anatosynth tables combine``: runs of one experiment at different seeds pooled into one table.

The results folders are written by hand with known scores, so the means across seeds and the
(seed, case)-paired Wilcoxon tests are checked against numpy and scipy."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import wilcoxon

from anatosynth_components import cli
from anatosynth_components.errors import ConfigError, DataError
from anatosynth_components.experiments.seed_pool import load_run, pool_runs, pooled_markdown, write_pool

RNG = np.random.default_rng(7)
SUBJECTS = [f"chest_{i:03d}" for i in range(6)]
ARMS = ("baseline", "acis_minus", "acis")
GAIN = {"baseline": 0.0, "acis_minus": 0.2, "acis": 1.5}


def seg_scores(seed: int) -> dict[str, dict[str, dict[str, dict]]]:
    """cell -> subject -> scores; ACIS better than ACIS- better than the baseline on every subject."""
    base = 80 + RNG.normal(0, 2, size=len(SUBJECTS))
    noise = RNG.normal(0, 0.1, size=(len(ARMS), len(SUBJECTS)))
    cells = {}
    for n in (4, 8):
        for a, arm in enumerate(ARMS):
            dice = base + n / 4 + GAIN[arm] + noise[a]
            cells[f"n{n}-unet-{arm}"] = {
                s: {"dice": float(d), "msd": float(10 - d / 10), "missed": int(arm == "baseline" and i == 0)}
                for i, (s, d) in enumerate(zip(SUBJECTS, dice, strict=True))
            }
    return cells


def write_seg_run(folder, seed: int, config_extra: dict | None = None, quality: bool = True):
    cells = {}
    for cell_id, per_subject in seg_scores(seed).items():
        cells[cell_id] = {"per_subject": per_subject}
        if quality and not cell_id.endswith("baseline"):
            cells[cell_id]["synthetic_quality"] = {
                "label_agreement": {"mean": 70.0 + seed},
                "intensity_gap": 0.01 * (seed + 1),
            }
    config = {"seed": seed, "iterations": 300, "arms": list(ARMS), **(config_extra or {})}
    doc = {"experiment": "segmentation", "config": config, "split": {"test": SUBJECTS}, "cells": cells}
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(doc))
    return doc


@pytest.fixture
def seg_runs(tmp_path):
    docs = {seed: write_seg_run(tmp_path / f"seed-{seed}", seed) for seed in (2, 0, 1)}
    return tmp_path, docs


def test_means_across_seeds_and_pooled_tests_match_numpy_and_scipy(seg_runs):
    root, docs = seg_runs
    pooled = pool_runs([load_run(root / f"seed-{s}") for s in (2, 0, 1)])
    assert pooled["seeds"] == [0, 1, 2] and pooled["cases_per_seed"] == [6, 6, 6]
    for arm in ARMS:
        per_seed = [
            np.mean([docs[s]["cells"][f"n4-unet-{arm}"]["per_subject"][x]["dice"] for x in SUBJECTS])
            for s in (0, 1, 2)
        ]
        entry = pooled["rows"]["n4-unet"][arm]
        assert entry["dice"]["per_seed"] == pytest.approx(per_seed)
        assert entry["dice"]["mean"] == pytest.approx(np.mean(per_seed))
        assert entry["dice"]["std"] == pytest.approx(np.std(per_seed))  # ddof 0, as the per-run tables
        assert entry["missed"] == (3 if arm == "baseline" else 0)  # one missed class per seed, summed

    def pooled_scores(arm, metric):
        return np.concatenate(
            [
                [docs[s]["cells"][f"n4-unet-{arm}"]["per_subject"][x][metric] for x in SUBJECTS]
                for s in (0, 1, 2)
            ]
        )

    acis = pooled["rows"]["n4-unet"]["acis"]
    diff = pooled_scores("acis", "dice") - pooled_scores("baseline", "dice")
    assert acis["p_dice"]["vs_baseline"]["p"] == pytest.approx(wilcoxon(diff, alternative="greater").pvalue)
    assert acis["p_dice"]["pairs"] == 18
    best = acis["p_dice"]["vs_best_other"]
    diff = pooled_scores("acis", "dice") - pooled_scores("acis_minus", "dice")
    assert best["arm"] == "acis_minus" and best["p"] == pytest.approx(
        wilcoxon(diff, alternative="greater").pvalue
    )
    diff = pooled_scores("acis", "msd") - pooled_scores("baseline", "msd")
    assert acis["p_msd"]["vs_baseline"]["p"] == pytest.approx(wilcoxon(diff, alternative="less").pvalue)
    assert acis["p_dice"]["vs_baseline"]["p"] < 0.05 and "p_dice" not in pooled["rows"]["n4-unet"]["baseline"]


def test_table_marks_quality_and_refinement(seg_runs):
    root, _ = seg_runs
    report = {
        "before": {"diversity_ms_ssim": 0.93, "uncertainty_image": 0.016, "uncertainty_annotation": 0.25},
        "after": {"diversity_ms_ssim": 0.92, "uncertainty_image": 0.017, "uncertainty_annotation": 0.24},
    }
    models = root / "seed-1" / "synthetic" / "n4" / "bundle" / "models"
    models.mkdir(parents=True)
    (models / "refinement_report.json").write_text(json.dumps(report))
    pooled = pool_runs([load_run(root / f"seed-{s}") for s in (0, 1, 2)])
    assert pooled["refinement"] == {
        "seed 1, n4": {
            k: {"before": report["before"][k], "after": report["after"][k]} for k in report["before"]
        }
    }
    q = pooled["quality"]["n8-unet-acis"]
    assert q["label_agreement"]["per_seed"] == [70.0, 71.0, 72.0] and q["label_agreement"]["mean"] == 71.0
    assert q["intensity_gap"]["mean"] == pytest.approx(0.02)
    text = pooled_markdown(pooled)
    row = next(line for line in text.splitlines() if line.startswith("| n4-unet |"))
    assert "*†" in row.split("|")[6]  # + ACIS DCS beats the baseline and ACIS- on 18 pairs
    assert "| seed 1, n4 | 0.9300 → 0.9200 | 0.0160 → 0.0170 | 0.2500 → 0.2400 |" in text
    assert "| n8-unet-acis | 71.00 ± 0.82 | 0.0200 ± 0.0082 |" in text


def test_msd_pairs_missing_in_one_arm_are_left_out(tmp_path):
    for seed in (0, 1):
        doc = write_seg_run(tmp_path / f"s{seed}", seed)
        doc["cells"]["n4-unet-acis"]["per_subject"][SUBJECTS[0]]["msd"] = float("nan")  # every class missed
        (tmp_path / f"s{seed}" / "results.json").write_text(json.dumps(doc))
    pooled = pool_runs([load_run(tmp_path / "s0"), load_run(tmp_path / "s1")])
    row = pooled["rows"]["n4-unet"]
    assert row["acis"]["p_msd"]["pairs"] == 10 and row["acis"]["p_dice"]["pairs"] == 12
    assert row["acis"]["msd"]["n"] == 2  # each seed's mean is over its five finite subjects


def test_reconstruction_rows_keep_the_upper_bound_out_of_the_competitors(tmp_path):
    scans = ["s1", "s2", "s3", "s4", "s5", "s6"]
    for seed in (0, 1):
        base = 25 + RNG.normal(0, 1, size=6)
        gains = {"baseline": 0.0, "acis": 0.5, "upper_bound": 3.0}
        cells = {"sr2-input": {"per_scan": {"scan": scans, "psnr": list(base - 2), "ssim": [0.5] * 6}}}
        for arm, gain in gains.items():
            psnr = base + gain + RNG.normal(0, 0.05, size=6)
            cells[f"sr2-resnet-{arm}"] = {
                "per_scan": {"scan": scans, "psnr": list(psnr), "ssim": list(psnr / 40)}
            }
        doc = {
            "experiment": "reconstruction",
            "config": {"seed": seed},
            "split": {"test": scans},
            "cells": cells,
        }
        (tmp_path / f"r{seed}").mkdir()
        (tmp_path / f"r{seed}" / "results.json").write_text(json.dumps(doc))
    pooled = pool_runs([load_run(tmp_path / "r0"), load_run(tmp_path / "r1")])
    acis = pooled["rows"]["sr2-resnet"]["acis"]
    assert acis["p_psnr"]["vs_best_other"]["arm"] == "baseline"  # not the better upper bound
    assert "p_psnr" not in pooled["rows"]["sr2"]["input"]  # the floor row has no baseline: no tests
    assert pooled["rows"]["sr2"]["input"]["psnr"]["n"] == 2
    assert write_pool(pooled, tmp_path / "out")[-1].name == "table.md"  # no plot for reconstruction


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda root: (root / "seed-1" / "results.json").unlink(), r"seed-1/results.json: no results.json"),
        (lambda root: (root / "seed-1" / "results.json").write_text("{trunc"), r"seed-1/results.json: not a"),
        (
            lambda root: write_seg_run(root / "seed-1b", 1, {"iterations": 60}),
            r"differ in more than the seed: iterations: 300 there, 60 now",
        ),
        (lambda root: write_seg_run(root / "seed-1b", 0), r"seed \[0\] is used by more than one folder"),
    ],
)
def test_incompatible_or_unfinished_runs_are_refused(seg_runs, change, message):
    root, _ = seg_runs
    change(root)
    folders = [root / "seed-0", root / ("seed-1b" if (root / "seed-1b").exists() else "seed-1")]
    with pytest.raises((ConfigError, DataError), match=message):
        pool_runs([load_run(f) for f in folders])


def test_different_cells_and_a_single_run_are_refused(seg_runs):
    root, docs = seg_runs
    doc = docs[1]
    del doc["cells"]["n8-unet-acis"]
    (root / "seed-1" / "results.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=r"different cells: \['n8-unet-acis'\]"):
        pool_runs([load_run(root / "seed-0"), load_run(root / "seed-1")])
    with pytest.raises(ConfigError, match="at least two results folders, got 1"):
        pool_runs([load_run(root / "seed-0")])


def test_cli_writes_table_results_and_plot_and_reports_errors(seg_runs, capsys):
    root, _ = seg_runs
    out = root / "pooled"
    argv = ["tables", "combine", *(str(root / f"seed-{s}") for s in (0, 1, 2)), "--out", str(out)]
    assert cli.main(argv) == 0
    assert "3 runs pooled" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "segmentation.png", "table.md"]
    assert json.loads((out / "results.json").read_text())["seeds"] == [0, 1, 2]
    assert (out / "table.md").read_text().startswith("# segmentation: 3 seeds pooled (0, 1, 2)")
    assert cli.main(["tables", "combine", str(root / "seed-0"), str(root / "nope"), "--out", str(out)]) == 2
    assert "nope/results.json: no results.json; finish the run first" in capsys.readouterr().err


def test_a_runs_folder_is_never_overwritten_by_the_pool(seg_runs):
    root, _ = seg_runs
    before = (root / "seed-0" / "results.json").read_bytes()
    pooled = pool_runs([load_run(root / "seed-0"), load_run(root / "seed-1")])
    with pytest.raises(ConfigError, match=r"seed-0 holds a run's results .*choose another --out"):
        write_pool(pooled, root / "seed-0")
    assert (root / "seed-0" / "results.json").read_bytes() == before
    assert not (root / "seed-0" / "table.md").exists()
    write_pool(pooled, root / "pooled")
    write_pool(pooled, root / "pooled")  # a pool's own folder may be rewritten
