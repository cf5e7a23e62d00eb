"""The downstream tables' significance tests (ACIS Sec. 3.1): one-sided Wilcoxon signed-rank tests of
every arm against the baseline and against the best other arm, paired by case, with scipy as the
reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import wilcoxon

from anatosynth_components.errors import ConfigError, DataError
from anatosynth_components.experiments.markdown import p_value_lines
from anatosynth_components.experiments.statistics import best_arm, compare_arms, significance_marks

RNG = np.random.default_rng(3)
BASE = RNG.normal(80, 3, 9)
SCORES = {
    "baseline": list(BASE),
    "augment": list(BASE + RNG.normal(1.0, 1.0, 9)),
    "acis_minus": list(BASE + RNG.normal(2.0, 1.0, 9)),
    "acis": list(BASE + RNG.normal(2.5, 1.0, 9)),
}


def test_against_baseline_and_best_other_match_scipy():
    out = compare_arms(SCORES, higher_is_better=True)
    assert set(out) == {"augment", "acis_minus", "acis"}
    for arm, entry in out.items():
        diff = np.subtract(SCORES[arm], SCORES["baseline"])
        assert entry["vs_baseline"]["p"] == pytest.approx(wilcoxon(diff, alternative="greater").pvalue)
        others = [a for a in SCORES if a != arm]
        best = max(others, key=lambda a: np.mean(SCORES[a]))
        assert entry["vs_best_other"]["arm"] == best
        diff = np.subtract(SCORES[arm], SCORES[best])
        assert entry["vs_best_other"]["p"] == pytest.approx(wilcoxon(diff, alternative="greater").pvalue)
    # ACIS's best competitor is ACIS- here, not the baseline: the paper's "other best-performing model"
    assert out["acis"]["vs_best_other"]["arm"] == "acis_minus"
    assert out["acis_minus"]["vs_best_other"]["arm"] == "acis"


def test_lower_is_better_picks_the_smallest_mean_and_tests_less():
    msd = {
        "baseline": [5.0, 6, 7, 8, 9, 4],
        "acis": [4.0, 5, 5, 6, 7, 3],
        "augment": [4.5, 5.5, 6, 7, 8, 3.5],
    }
    out = compare_arms(msd, higher_is_better=False)
    assert out["acis"]["vs_best_other"]["arm"] == "augment"
    assert out["augment"]["vs_best_other"]["arm"] == "acis"
    diff = np.subtract(msd["acis"], msd["baseline"])
    assert out["acis"]["vs_baseline"]["p"] == pytest.approx(wilcoxon(diff, alternative="less").pvalue)
    assert out["acis"]["vs_baseline"]["alternative"] == "less"
    assert best_arm(msd, ["baseline", "augment"], higher_is_better=False) == "augment"


def test_competitors_exclude_the_upper_bound():
    scores = {"baseline": [1.0, 2, 3, 4, 5], "acis": [2.0, 3, 4, 5, 6], "upper_bound": [9.0, 9, 9, 9, 9]}
    out = compare_arms(scores, True, competitors=["baseline", "acis"])
    assert out["acis"]["vs_best_other"]["arm"] == "baseline"
    assert compare_arms(scores, True)["acis"]["vs_best_other"]["arm"] == "upper_bound"


def test_marks_and_p_value_lines():
    out = compare_arms({"baseline": [1.0, 2, 3, 4, 5, 6], "acis": [2.0, 3, 4, 5, 6, 7]}, True)
    # against the baseline p = 1/64; the best other arm is the baseline itself
    assert out["acis"]["vs_baseline"]["p"] == pytest.approx(1 / 64)
    assert significance_marks(out["acis"]) == "*†"
    tied = compare_arms({"baseline": [1.0, 2], "acis": [1.0, 2]}, True)["acis"]
    assert math.isnan(tied["vs_baseline"]["p"]) and significance_marks(tied) == ""
    lines = p_value_lines({"n4-acis": {"p_dice": out["acis"]}, "n4-baseline": {}}, ["p_dice"], ["DCS"], "p:")
    assert "| n4-acis | p = 0.0156 vs baseline (also the best other arm) |" in lines[-1]


def test_bad_inputs_are_named():
    with pytest.raises(ConfigError, match="no 'baseline' arm"):
        compare_arms({"acis": [1.0]}, True)
    with pytest.raises(DataError, match="different numbers of paired cases"):
        compare_arms({"baseline": [1.0, 2.0], "acis": [1.0]}, True)
    with pytest.raises(ConfigError, match=r"competitors \['upper'\]"):
        compare_arms({"baseline": [1.0], "acis": [1.0]}, True, competitors=["upper"])
