"""Pool finished runs of one downstream experiment made with different seeds (``anatosynth tables combine``).

Each run is a results folder of ``anatosynth tables segmentation`` or ``reconstruction`` (its
``results.json``), made with the same configuration except ``seed`` (the seed draws the test split,
the few-shot subsets, the networks' initialisation and the ACIS training).  For every cell the pool
gives:

- the **mean ± std across seeds of the per-seed means** (std with ddof 0, as the per-run tables);
  the spread says how much a conclusion depends on the split and the initialisation;
- **one-sided Wilcoxon signed-rank tests** (:func:`~.statistics.compare_arms`) on the scores paired by
  (seed, case): the cases of every seed are concatenated in seed order, so an arm is compared with the
  baseline and the best other arm on the same test subject (scan) of the same seed.  A pair whose
  surface distance is not finite in every arm (every class missed) is left out of the MSD test, as in
  the per-run table;
- the ``missed`` counts summed over seeds, and for the ACIS arms of a segmentation run the mean ± std
  across seeds of the synthetic pairs' label agreement and intensity gap (:mod:`.synthetic_quality`);
- every ``refinement_report.json`` under a run's ``synthetic/`` folder: diversity (mean pairwise
  MS-SSIM) and the Eq. 3 uncertainties before and after refinement.

Rows that have no ``baseline`` arm (the reconstruction table's ``input`` floor) are summarised
without tests.

Example:
    >>> split_cell_id("n4-unet-acis_minus")
    ('n4-unet', 'acis_minus')
    >>> cell = {"per_subject": {"s2": {"dice": 80.0, "msd": 3.0, "missed": 1},
    ...                         "s1": {"dice": 90.0, "msd": 2.0, "missed": 0}}}
    >>> case_scores("segmentation", cell)
    (['s1', 's2'], {'dice': [90.0, 80.0], 'msd': [2.0, 3.0]}, 1)

On the command line::

    anatosynth tables combine runs/seg/seed-0 runs/seg/seed-1 runs/seg/seed-2 --out runs/seg/pooled
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anatosynth_components.atomic import atomic_path, write_json
from anatosynth_components.errors import ConfigError, DataError
from anatosynth_components.experiments.markdown import markdown_table, p_value_lines
from anatosynth_components.experiments.plots import line_panels
from anatosynth_components.experiments.reconstruction import ARM_LABELS
from anatosynth_components.experiments.results_folder import canonical, differences
from anatosynth_components.experiments.statistics import compare_arms, significance_marks, smallest_p_lines
from anatosynth_components.experiments.summary import summarize

#: experiment -> metric -> (column title, higher is better, digits)
METRICS: dict[str, dict[str, tuple[str, bool, int]]] = {
    "segmentation": {"dice": ("DCS (%)", True, 2), "msd": ("MSD (mm)", False, 2)},
    "reconstruction": {"psnr": ("PSNR (dB)", True, 2), "ssim": ("SSIM", True, 4)},
}
#: arms that are references, never "the best other arm" (as the reconstruction table)
REFERENCE_ARMS = ("upper_bound",)
#: configuration keys that may differ between the pooled runs
SEED_KEYS = ("seed",)


@dataclass
class Run:
    """One finished results folder: its path, ``results.json`` and seed."""

    folder: Path
    results: dict[str, Any]

    @property
    def seed(self) -> int:
        return int(self.results["config"]["seed"])

    @property
    def experiment(self) -> str:
        return str(self.results["experiment"])


def load_run(folder: str | Path) -> Run:
    """Read ``folder/results.json``.

    Raises:
        DataError: the file is missing (the run has not finished), unreadable, or not a results
            document of a downstream experiment; the message names the file.
    """
    path = Path(folder) / "results.json"
    if not path.is_file():
        raise DataError(f"{path}: no results.json; finish the run first (rerun its command to resume it)")
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable results.json ({err})") from None
    missing = [k for k in ("experiment", "config", "cells") if k not in doc]
    if missing:
        raise DataError(f"{path}: not an anatosynth tables results.json (no {', '.join(missing)})")
    if doc["experiment"] not in METRICS:
        raise DataError(
            f"{path}: experiment {doc['experiment']!r} cannot be pooled; only {sorted(METRICS)} can"
        )
    return Run(Path(folder), doc)


def check_compatible(runs: Sequence[Run]) -> None:
    """Refuse runs that are not one experiment's configuration at different seeds.

    Raises:
        ConfigError: fewer than two runs, other experiments, configurations that differ in more than
            :data:`SEED_KEYS`, a seed used twice, or different cells; the message names the folders.
    """
    if len(runs) < 2:
        raise ConfigError(f"pooling needs at least two results folders, got {len(runs)}")
    first = runs[0]
    for run in runs[1:]:
        if run.experiment != first.experiment:
            raise ConfigError(
                f"{run.folder} is a {run.experiment} run, {first.folder} a {first.experiment} run"
            )
        diff = differences(first.results["config"], run.results["config"])
        diff = [d for d in diff if d.split(":")[0] not in SEED_KEYS]
        if diff:
            raise ConfigError(
                f"{run.folder} and {first.folder} differ in more than the seed: " + "; ".join(diff)
            )
        if set(run.results["cells"]) != set(first.results["cells"]):
            only = sorted(set(run.results["cells"]) ^ set(first.results["cells"]))
            raise ConfigError(f"{run.folder} and {first.folder} have different cells: {only}")
    seeds = [run.seed for run in runs]
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        folders = [str(r.folder) for r in runs if r.seed in repeated]
        raise ConfigError(
            f"seed {repeated} is used by more than one folder ({folders}); pool different seeds"
        )


def split_cell_id(cell_id: str) -> tuple[str, str]:
    """``"n4-unet-acis_minus"`` -> ``("n4-unet", "acis_minus")`` (arm names have no hyphen)."""
    row, _, arm = cell_id.rpartition("-")
    return row, arm


def case_scores(experiment: str, cell: dict[str, Any]) -> tuple[list[str], dict[str, list[float]], int]:
    """A cell's cases (test subjects / scans), its scores per metric in that order, and its missed count."""
    metrics = METRICS[experiment]
    if experiment == "segmentation":
        per = cell["per_subject"]
        cases = sorted(per)
        scores = {m: [float(per[c][m]) for c in cases] for m in metrics}
        return cases, scores, sum(int(per[c].get("missed", 0)) for c in cases)
    per = cell["per_scan"]
    return list(per["scan"]), {m: [float(v) for v in per[m]] for m in metrics}, 0


def pool_runs(runs: Sequence[Run]) -> dict[str, Any]:
    """The pooled statistics of compatible runs (:func:`check_compatible`), sorted by seed.

    Returns:
        ``{"experiment", "seeds", "folders", "cases_per_seed", "rows": {row: {arm: entry}},
        "quality": {cell: {...}}, "refinement": {report: {...}}}`` where ``entry`` holds per metric
        ``{"mean", "std", "n", "non_finite", "per_seed"}``, ``missed`` and, for an arm other than the
        baseline, ``p_<metric>`` (a :func:`compare_arms` entry over the (seed, case) pairs).
    """
    check_compatible(runs)
    runs = sorted(runs, key=lambda r: r.seed)
    experiment = runs[0].experiment
    rows: dict[str, dict[str, Any]] = {}
    for cell_id in runs[0].results["cells"]:
        row, arm = split_cell_id(cell_id)
        rows.setdefault(row, {})[arm] = [case_scores(experiment, r.results["cells"][cell_id]) for r in runs]
    return {
        "experiment": experiment,
        "seeds": [r.seed for r in runs],
        "folders": [str(r.folder) for r in runs],
        "cases_per_seed": [len(s.results.get("split", {}).get("test", [])) or None for s in runs],
        "rows": {row: _row(experiment, arms) for row, arms in rows.items()},
        "quality": _quality(runs),
        "refinement": _refinement(runs),
    }


def _row(experiment: str, arms: dict[str, list[tuple]]) -> dict[str, Any]:
    """Summaries across seeds and pooled tests of one row; ``arms[arm]`` holds one :func:`case_scores`
    result per seed."""
    out: dict[str, Any] = {}
    for arm, per_seed in arms.items():
        out[arm] = {"missed": sum(s[2] for s in per_seed)}
        for metric in METRICS[experiment]:
            means = [summarize(s[1][metric])["mean"] for s in per_seed]
            out[arm][metric] = {**summarize(means), "per_seed": means}
    if "baseline" not in arms:
        return out
    for arm, per_seed in arms.items():
        base = arms["baseline"]
        if [s[0] for s in per_seed] != [s[0] for s in base]:
            raise DataError(f"arm {arm} was scored on other cases than the baseline; rerun its cell")
    competitors = [a for a in arms if a not in REFERENCE_ARMS]
    for metric, (_, higher, _) in METRICS[experiment].items():
        pooled = {a: np.concatenate([s[1][metric] for s in arms[a]]) for a in arms}
        keep = np.all([np.isfinite(v) for v in pooled.values()], axis=0)
        tests = compare_arms(
            {a: v[keep].tolist() for a, v in pooled.items()}, higher, competitors=competitors
        )
        for arm, test in tests.items():
            out[arm][f"p_{metric}"] = {**test, "pairs": int(keep.sum())}
    return out


def _quality(runs: Sequence[Run]) -> dict[str, Any]:
    """Per cell with synthetic-pair diagnostics: label agreement and intensity gap across seeds."""
    out: dict[str, Any] = {}
    for cell_id, cell in runs[0].results["cells"].items():
        if not cell.get("synthetic_quality"):
            continue
        qs = [r.results["cells"][cell_id].get("synthetic_quality") or {} for r in runs]
        agreement = [(q.get("label_agreement") or {}).get("mean", math.nan) for q in qs]
        gap = [q.get("intensity_gap", math.nan) for q in qs]
        out[cell_id] = {
            "label_agreement": {**summarize(agreement), "per_seed": agreement},
            "intensity_gap": {**summarize(gap), "per_seed": gap},
        }
    return out


def _refinement(runs: Sequence[Run]) -> dict[str, Any]:
    """Every ``synthetic/**/refinement_report.json`` of the runs: before / after of each quantity."""
    out: dict[str, Any] = {}
    for run in runs:
        for path in sorted((run.folder / "synthetic").glob("**/refinement_report.json")):
            try:
                report = json.loads(path.read_text())
                before, after = report["before"], report["after"]
            except (OSError, ValueError, KeyError) as err:
                raise DataError(f"{path}: not a readable refinement report ({err})") from None
            where = path.relative_to(run.folder / "synthetic").parts[:-3]  # less bundle/models/<file>
            name = f"seed {run.seed}" + (f", {'/'.join(where)}" if where else "")
            out[name] = {
                key: {"before": before[key], "after": after[key]}
                for key in ("diversity_ms_ssim", "uncertainty_image", "uncertainty_annotation")
            }
    return out


def pooled_markdown(pooled: dict[str, Any]) -> str:
    """``table.md`` of a pool: the table across seeds, its p-values, the synthetic-pair diagnostics
    and the refinement reports."""
    experiment, seeds = pooled["experiment"], pooled["seeds"]
    metrics = METRICS[experiment]
    arms = list(next(iter(pooled["rows"].values())))
    label = {arm: ARM_LABELS.get(arm, arm) for arm in arms}
    header = ["row"] + [f"{label[arm]} {title}" for arm in arms for title, _, _ in metrics.values()]
    if experiment == "segmentation":
        header += [f"{label[arm]} missed" for arm in arms]
    rows = []
    for row, entries in pooled["rows"].items():
        cells = [row]
        for arm in arms:
            for metric, (_, _, digits) in metrics.items():
                cells.append(
                    _mean_std(entries.get(arm, {}).get(metric), digits) + _marks(entries.get(arm), metric)
                )
        if experiment == "segmentation":
            cells += [str(entries[arm]["missed"]) if arm in entries else "—" for arm in arms]
        rows.append(cells)
    cases = pooled["cases_per_seed"]
    lines = [
        f"# {experiment}: {len(seeds)} seeds pooled ({', '.join(map(str, seeds))})",
        "",
        "Mean ± std across seeds of each seed's mean over its test cases. One-sided Wilcoxon signed-rank "
        "tests on the scores paired by (seed, test case): `*` p < 0.05 against the baseline, `†` p < 0.05 "
        f"against the best other arm of the row. Test cases per seed: {cases}.",
        "",
        markdown_table(header, rows),
        "",
    ]
    pairs = sum(c or 0 for c in cases)
    if pairs:
        lines += smallest_p_lines(pairs, "(seed, test case) pairs")
    tests = {
        f"{row}-{arm}": entry for row, entries in pooled["rows"].items() for arm, entry in entries.items()
    }
    keys = [f"p_{m}" for m in metrics]
    titles = [f"{t} {'greater' if higher else 'less'}" for t, higher, _ in metrics.values()]
    lines += p_value_lines(tests, keys, titles, "p-values, pooled over (seed, test case) pairs:")
    lines += _quality_lines(pooled["quality"]) + _refinement_lines(pooled["refinement"])
    lines += [
        "",
        "Runs: " + ", ".join(f"seed {s}: {f}" for s, f in zip(seeds, pooled["folders"], strict=True)),
    ]
    return "\n".join(lines) + "\n"


def _mean_std(stats: dict[str, Any] | None, digits: int) -> str:
    if not stats or stats["n"] == 0:
        return "n/a"
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"


def _marks(entry: dict[str, Any] | None, metric: str) -> str:
    return significance_marks(entry.get(f"p_{metric}")) if entry else ""


def _quality_lines(quality: dict[str, Any]) -> list[str]:
    if not quality:
        return []
    rows = [
        [cell, _mean_std(q["label_agreement"], 2), _mean_std(q["intensity_gap"], 4)]
        for cell, q in quality.items()
    ]
    return [
        "",
        "Synthetic pairs, mean ± std across seeds: label agreement (Dice between each pair's annotation and "
        "the real-data baseline's segmentation of its image) and intensity gap ([0, 1] scale).",
        "",
        markdown_table(["cell", "label agreement DCS (%)", "intensity gap"], rows),
    ]


def _refinement_lines(refinement: dict[str, Any]) -> list[str]:
    if not refinement:
        return []
    keys = [
        ("diversity_ms_ssim", "MS-SSIM (lower = more diverse)"),
        ("uncertainty_image", "U_image"),
        ("uncertainty_annotation", "U_annotation"),
    ]
    rows = [
        [name, *(f"{r[k]['before']:.4f} → {r[k]['after']:.4f}" for k, _ in keys)]
        for name, r in refinement.items()
    ]
    return [
        "",
        "Refinement (models/refinement_report.json of each ACIS bundle), before → after:",
        "",
        markdown_table(["run", *(title for _, title in keys)], rows),
    ]


def write_pool(pooled: dict[str, Any], out: str | Path) -> list[Path]:
    """Write ``table.md``, ``results.json`` and, for segmentation, ``segmentation.png`` into ``out``
    (each atomically); return the paths.

    Raises:
        ConfigError: ``out`` holds a run's own results (a ``results.json`` with cells, such as one of
            the pooled folders), which the pool would overwrite.
    """
    out = Path(out)
    existing = out / "results.json"
    if existing.is_file() and "cells" in _read_json(existing):
        raise ConfigError(
            f"{out} holds a run's results ({existing}); the pool would overwrite them: choose another --out"
        )
    paths = [write_json(out / "results.json", canonical(pooled))]
    with atomic_path(out / "table.md") as tmp:
        tmp.write_text(pooled_markdown(pooled))
    paths.append(out / "table.md")
    plot = _plot(pooled, out / f"{pooled['experiment']}.png")
    return paths + ([plot] if plot else [])


def _plot(pooled: dict[str, Any], path: Path) -> Path | None:
    """Segmentation rows ``n<N>-<model>``: one panel per model and metric over n, mean ± std across seeds."""
    parsed = [(row, *row.split("-", 1)) for row in pooled["rows"]]
    if pooled["experiment"] != "segmentation" or not all(n[1:].isdigit() for _, n, _ in parsed):
        return None
    ns = sorted({int(n[1:]) for _, n, _ in parsed})
    panels: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for metric, (title, _, _) in METRICS["segmentation"].items():
        for model in dict.fromkeys(m for _, _, m in parsed):
            series: dict[str, list[tuple[float, float]]] = {}
            for n in ns:
                for arm, entry in pooled["rows"].get(f"n{n}-{model}", {}).items():
                    series.setdefault(ARM_LABELS.get(arm, arm), []).append(
                        (entry[metric]["mean"], entry[metric]["std"])
                    )
            panels[f"{model} {title}"] = series
    line_panels(
        path,
        ns,
        panels,
        "real training volumes n",
        title=f"{len(pooled['seeds'])} seeds pooled: mean ± std across seeds",
    )
    return path


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}
