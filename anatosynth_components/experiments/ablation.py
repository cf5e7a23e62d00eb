"""AnatoMaskGAN ablation (paper Tables I-II): SPADE and the three cumulative additions, trained and
evaluated through the bundle's own workflows with the same budget, for several seeds.

Each (variant, seed) is one resumable cell.  It runs, in its own bundle root
``<out>/variants/<variant>/seed<k>``:

1. ``python -m monai.bundle run training --config_file <bundle>/configs/train.json`` with the
   variant's switches (``use_gnn_sif``, ``use_noise3d``, ``use_gtc``, paper Sec. IV-E: "starting
   from a SPADE backbone and successively adding GNN-SASE, 3D Spatial-Noise, and G-TC"), the mask
   encoder on in every variant (``use_encoder``: so "+ GNN-SIF" adds only the graph fusion, not the
   encoder path too), the cell's ``seed``, the same epochs, validation interval and overrides for
   every variant, one shared subject split (``split_file``) and one dataset folder.  The bundle
   keeps the checkpoint of the best validation ``psnr_slice`` (``model.pt``): the same rule as a
   user's training, never the test subjects.
2. ``python -m monai.bundle run evaluating --config_file "['<bundle>/configs/train.json',
   '<bundle>/configs/evaluate.json']"`` twice: as **non-overlapping stacks** (``stride = n``: the
   network's own output, ``eval_stacks/``) and as the **blended whole volume** (overlapping stacks
   averaged with triangular weights, the bundle's default, ``eval/``).  Blending averages two
   different predictions of a slice only when GNN-SIF couples the slices of a stack, so it is
   reported in its own columns rather than mixed into the comparison.  Each writes
   ``metrics.json`` with ``psnr_slice`` (Eqs. 6-7, foreground slices), SSIM, ST-LPIPS,
   coherence, volume PSNR, LPIPS only with its genuine pretrained weights, and the label-mean
   baseline (each label painted with its mean training intensity) on the same subjects.

The tables give, per variant, the mean ± std **across seeds** of the per-seed mean over the test
subjects; the label-mean baseline is one more row (mean ± std across subjects: it has no seed).
A variant "beats" SPADE only if it is better on ``psnr_slice`` or SSIM and not worse on
ST-LPIPS; otherwise the table says which trade it makes (README, "Evaluation").  A crash during
training resumes from the cell's latest checkpoint; a finished training is not redone when only
the evaluation failed.  The paper's Table II numbers are printed below for reference, never mixed
with the measured ones.

Scales: ``demo`` is the CPU configuration of ``scripts/quickstart.sh`` on the bundle's own demo
dataset, 3 seeds; ``paper`` is the bundle's defaults (224 x 224, base_channels 64, lambda_vgg 5,
100 epochs, paper Sec. IV-B), which needs the VGG19 weights, a GPU and the real data (``anatosynth tables
ablation --scale paper`` without ``--dataset-dir`` is refused).
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path
from typing import Any

from anatosynth_components.checks import check_choices, check_positive_int
from anatosynth_components.errors import ConfigError, DataError
from anatosynth_components.experiments.bundle_runner import resolve_bundle, run_bundle
from anatosynth_components.experiments.cells import Cell, run_grid
from anatosynth_components.experiments.datasets import dataset_root, resolve_dataset_dir
from anatosynth_components.experiments.markdown import markdown_table
from anatosynth_components.experiments.plots import grouped_bar_panels
from anatosynth_components.experiments.results_folder import ResultsFolder
from anatosynth_components.experiments.summary import finite, summarize

NAME = "ablation"

#: variant -> the bundle switches of paper Table II's rows (cumulative additions to SPADE).
VARIANTS: dict[str, dict[str, bool]] = {
    "spade": {"use_gnn_sif": False, "use_noise3d": False, "use_gtc": False},
    "gnn_sif": {"use_gnn_sif": True, "use_noise3d": False, "use_gtc": False},
    "gnn_sif_noise3d": {"use_gnn_sif": True, "use_noise3d": True, "use_gtc": False},
    "anatomaskgan": {"use_gnn_sif": True, "use_noise3d": True, "use_gtc": True},
}
LABELS = {
    "spade": "SPADE (baseline)",
    "gnn_sif": "+ GNN-SIF",
    "gnn_sif_noise3d": "+ GNN-SIF + 3D-SNI",
    "anatomaskgan": "+ GNN-SIF + 3D-SNI + G-TC (AnatoMaskGAN)",
}
#: switches that exist only in train.json (evaluate.json builds the generator only).
TRAIN_ONLY_SWITCHES = ("use_gtc",)
#: switches every variant shares: the mask encoder stays, so "+ GNN-SIF" adds only the graph fusion.
COMMON_SWITCHES: dict[str, bool] = {"use_encoder": True}
#: what the experiment sets itself; overrides may not.
OWN_KEYS = {*VARIANTS["spade"], *COMMON_SWITCHES, "seed", "bundle_root", "output_dir"}

#: how a variant's volumes are assembled for scoring -> (evaluation folder, table heading).
VIEWS: dict[str, tuple[str, str]] = {
    "stacks": ("eval_stacks", "Non-overlapping stacks (the network's own output, stride = n)"),
    "blended": (
        "eval",
        "Blended whole volume (overlapping stacks, triangular weights; the bundle's inference)",
    ),
}

#: metric -> (column title, digits, direction); the order of the table's columns.
METRICS: dict[str, tuple[str, int, str]] = {
    "psnr_slice": ("PSNR slice (dB) ↑", 2, "higher"),
    "ssim": ("SSIM ↑", 4, "higher"),
    "st_lpips": ("ST-LPIPS ↓", 4, "lower"),
    "lpips": ("LPIPS ↓", 4, "lower"),
    "coherence": ("coherence (dB) ↑", 2, "higher"),
    "psnr": ("PSNR volume (dB) ↑", 2, "higher"),
}
BASELINE = "label_mean"
BASELINE_LABEL = "label-mean image (floor)"

#: paper Table II as printed: one row per variant, (PSNR, SSIM, LPIPS) on each dataset of
#: :data:`TABLE_II_DATASETS`, in that order.
_TABLE_II_ROWS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "spade": ((24.50, 0.8871, 0.1036), (21.36, 0.8550, 0.0917)),
    "gnn_sif": ((26.22, 0.9115, 0.0570), (21.41, 0.8560, 0.1030)),
    "gnn_sif_noise3d": ((26.42, 0.9116, 0.0567), (21.43, 0.8512, 0.0919)),
    "anatomaskgan": ((26.50, 0.9229, 0.0559), (21.98, 0.8602, 0.0807)),
}
#: the bundle's demo kind and the dataset name of each column group of Table II
TABLE_II_DATASETS = (("brain", "L2R-OASIS"), ("abdomen", "L2R-Abdomen CT"))
#: paper Table II (PSNR, SSIM, LPIPS), by the bundle's demo kind: (dataset name, variant -> values).
PAPER_TABLE_II: dict[str, tuple[str, dict[str, tuple[float, float, float]]]] = {
    kind: (name, {variant: row[i] for variant, row in _TABLE_II_ROWS.items()})
    for i, (kind, name) in enumerate(TABLE_II_DATASETS)
}

#: the CPU network of scripts/quickstart.sh (keys passed to train.json and evaluate.json).
_DEMO_NETWORK = {
    "spatial_size": [64, 64],
    "num_slices": 5,
    "base_channels": 16,
    "channel_mults": [4, 4, 2, 1],
    "spade_hidden": 32,
    "stack_batch_size": 8,
}

SCALES: dict[str, dict[str, Any]] = {
    "demo": {
        "bundle": "anatomask_oasis",
        "dataset_dir": None,
        "variants": list(VARIANTS),
        "seeds": [0, 1, 2],
        "epochs": 90,  # the largest that fits about 2 hours on 2 cores (100 min measured)
        "val_interval": 15,
        "network": _DEMO_NETWORK,
        "train": {"disc_channels": 32, "lambda_vgg": 0, "batch_size": 4, "stacks_per_volume": 2},
        "evaluate": {},
    },
    "paper": {
        "bundle": "anatomask_oasis",
        "dataset_dir": None,
        "variants": list(VARIANTS),
        "seeds": [0, 1, 2],
        "epochs": 100,
        "val_interval": 10,
        "network": {},
        "train": {},
        "evaluate": {},
    },
}
#: config keys whose dict values are free-form bundle overrides (``--set network.base_channels=32``).
FREE_DICTS = ("network", "train", "evaluate")


def bundle_dir(bundle: str) -> Path:
    """A bundle folder: a path, or a bare name in the checkout's ``bundles/`` (:func:`resolve_bundle`)."""
    path = resolve_bundle(bundle, "bundle")
    for name in ("train.json", "evaluate.json"):
        if not (path / "configs" / name).is_file():
            raise ConfigError(f"bundle {bundle!r}: {path / 'configs' / name} not found")
    return path


def resolve_config(config: dict[str, Any]) -> dict[str, Any]:
    """Check the configuration and fill in what it implies (the demo dataset the bundle would use)."""
    config = copy.deepcopy(config)
    check_choices("variants", config["variants"], list(VARIANTS))
    check_positive_int("epochs", config["epochs"])
    check_positive_int("val_interval", config["val_interval"])
    seeds = config["seeds"]
    if not isinstance(seeds, list) or not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds must be a non-empty list of distinct integers, got {seeds!r}")
    for seed in seeds:
        check_positive_int("seeds[]", seed, minimum=0)
    for key in FREE_DICTS:
        clash = sorted(set(config[key]) & OWN_KEYS)
        if clash:
            raise ConfigError(f"{key}: {clash} are set by the experiment itself, not as overrides")
    if any(key.endswith("stride") for key in config["evaluate"]):
        raise ConfigError("evaluate: the inferer's stride is set by the experiment (both views are scored)")
    bundle = bundle_dir(config["bundle"])
    config["bundle"] = str(bundle)
    train = json.loads((bundle / "configs" / "train.json").read_text())
    config["num_slices"] = int(config["network"].get("num_slices", train["num_slices"]))
    if config["dataset_dir"] is None:
        config["demo"] = {k: train[f"demo_{k}"] for k in ("kind", "subjects", "seed")}
    else:
        resolve_dataset_dir(config)
    return config


def cell_id(variant: str, seed: int) -> str:
    return f"{variant}-seed{seed}"


def _read_metrics(path: Path, log: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"{path}: the evaluation workflow wrote no metrics (see {log})")
    return json.loads(path.read_text())


def _per_subject(doc: dict[str, Any]) -> dict[str, dict[str, float]]:
    # float() also reads the report's "inf" / "nan" strings
    return {s: {m: float(v) for m, v in vals.items()} for s, vals in doc["per_subject"].items()}


def _train(
    config: dict[str, Any], folder: ResultsFolder, root: Path, overrides: dict, desc: str, progress: bool
):
    marker = root / "train_done.json"
    if marker.is_file():
        return json.loads(marker.read_text())
    resume = any((root / "models").glob("latest_checkpoint_epoch=*.pt"))
    t0 = time.perf_counter()
    cmd = run_bundle(
        "training",
        Path(config["bundle"]) / "configs" / "train.json",
        root,
        {**overrides, "resume": resume},
        root / "train.log",
        progress=progress,
        total_epochs=None if resume else config["epochs"],
        desc=desc,
    )
    trained = {"command": cmd, "wall_s": round(time.perf_counter() - t0, 1), "resumed": resume}
    folder.write_json(str(marker.relative_to(folder.root)), trained)
    return trained


def _variant_cell(
    config: dict[str, Any], folder: ResultsFolder, data_dir: Path, cell: Cell, progress: bool = False
) -> dict[str, Any]:
    variant, seed = cell.params["variant"], cell.params["seed"]
    bundle = Path(config["bundle"])
    root = folder.root / "variants" / variant / f"seed{seed}"
    switches = {**COMMON_SWITCHES, **VARIANTS[variant]}
    common = {"dataset_dir": str(data_dir), "split_file": str(folder.root / "split.json"), "seed": seed}
    net = {**config["network"], **{k: v for k, v in switches.items() if k not in TRAIN_ONLY_SWITCHES}}
    train_overrides = {
        **common,
        **net,
        **config["train"],
        "use_gtc": switches["use_gtc"],
        "train#trainer#max_epochs": config["epochs"],
        "val_interval": config["val_interval"],
    }
    trained = _train(config, folder, root, train_overrides, f"{cell.id}: train", progress)
    configs = json.dumps([str(bundle / "configs" / "train.json"), str(bundle / "configs" / "evaluate.json")])
    views, commands, t0 = {}, {}, time.perf_counter()
    for view, (sub, _) in VIEWS.items():
        overrides = {**common, **net, **config["evaluate"], "output_dir": str(root / sub)}
        if view == "stacks":
            overrides["validate#inferer#stride"] = config["num_slices"]
        log = root / f"evaluate_{view}.log"
        commands[view] = run_bundle("evaluating", configs, root, overrides, log)
        views[view] = _read_metrics(root / sub / "metrics.json", log)
    blended = views["blended"]
    baseline = blended.get("baselines", {}).get(BASELINE)
    return {
        "views": {view: _per_subject(doc) for view, doc in views.items()},
        "baseline": _per_subject(baseline) if baseline else {},
        "unavailable": blended.get("unavailable", {}),
        "definitions": blended.get("definitions", {}),
        "train_wall_s": trained["wall_s"],
        "eval_wall_s": round(time.perf_counter() - t0, 1),
        "train_command": trained["command"],
        "eval_commands": commands,
    }


def _subject_mean(per_subject: dict[str, dict[str, float]], metric: str) -> float:
    values = finite([vals[metric] for vals in per_subject.values() if metric in vals])
    return float(values.mean()) if values.size else math.nan


def seed_summary(results: dict[str, dict], variant: str, seeds: list[int], view: str) -> dict[str, dict]:
    """metric -> :func:`summarize` of the per-seed means over the test subjects."""
    cells = [results[cell_id(variant, s)]["views"][view] for s in seeds]
    return {
        m: summarize([_subject_mean(c, m) for c in cells])
        for m in METRICS
        if any(m in vals for c in cells for vals in c.values())
    }


def subject_summary(per_subject: dict[str, dict[str, float]]) -> dict[str, dict]:
    """metric -> :func:`summarize` over the subjects (the baseline row)."""
    return {m: summarize([v[m] for v in per_subject.values() if m in v]) for m in METRICS
            if any(m in v for v in per_subject.values())}  # fmt: skip


def verdict(model: dict[str, dict], reference: dict[str, dict], name: str = "SPADE") -> str:
    """The README's rule: better on ``psnr_slice`` or SSIM *and* not worse on ST-LPIPS "beats"
    ``name``; otherwise say which trade the variant makes.

    >>> m = {"psnr_slice": {"mean": 20.0}, "ssim": {"mean": 0.7}, "st_lpips": {"mean": 0.2}}
    >>> r = {"psnr_slice": {"mean": 19.0}, "ssim": {"mean": 0.7}, "st_lpips": {"mean": 0.1}}
    >>> verdict(m, r)
    'higher fidelity, worse realism than SPADE'
    >>> verdict(m, {**r, "st_lpips": {"mean": 0.3}})
    'beats SPADE'
    """

    def delta(metric: str) -> float:
        if metric not in model or metric not in reference:
            return math.nan
        return model[metric]["mean"] - reference[metric]["mean"]

    fidelity = delta("psnr_slice") > 0 or delta("ssim") > 0
    realism = delta("st_lpips")
    if math.isnan(realism):
        return (
            "higher" if fidelity else "no higher"
        ) + f" fidelity than {name}; realism (ST-LPIPS) not measured"
    if fidelity and realism <= 0:
        return f"beats {name}"
    if not fidelity and realism > 0:
        return f"worse than {name}"
    trade = f"{'higher' if fidelity else 'lower'} fidelity, {'better' if realism <= 0 else 'worse'} realism"
    return f"{trade} than {name}"


def within_spread(
    model: dict[str, dict], reference: dict[str, dict], metrics=("psnr_slice", "st_lpips")
) -> bool:
    """Whether every difference of means is at most the larger of the two seed std's (not resolved
    by the seeds run).

    >>> a, b = {"psnr_slice": {"mean": 26.5, "std": 0.3}}, {"psnr_slice": {"mean": 26.3, "std": 0.1}}
    >>> within_spread(a, b, ("psnr_slice",)), within_spread(a, {"psnr_slice": {"mean": 25.0, "std": 0.1}})
    (True, False)
    """
    shared = [m for m in metrics if m in model and m in reference]
    return bool(shared) and all(
        abs(model[m]["mean"] - reference[m]["mean"]) <= max(model[m]["std"], reference[m]["std"])
        for m in shared
    )


def verdict_with_spread(model: dict[str, dict], reference: dict[str, dict], name: str = "SPADE") -> str:
    """:func:`verdict`, marked when the differences are within the seeds' spread."""
    text = verdict(model, reference, name)
    return text + " (differences within the seed std)" if within_spread(model, reference) else text


def _cell_text(summary: dict[str, dict], metric: str, unavailable: dict[str, str]) -> str:
    if metric not in summary or summary[metric]["n"] == 0:
        return "unavailable" + (" (a)" if metric in unavailable else "")
    s, digits = summary[metric], METRICS[metric][1]
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def build_outputs(config: dict[str, Any], folder: ResultsFolder, results: dict[str, dict]) -> dict[str, Any]:
    """Write ``table.md``, ``ablation.png`` and ``results.json`` from the cells; return the summary."""
    variants, seeds = config["variants"], config["seeds"]
    unavailable: dict[str, str] = {}
    for r in results.values():
        unavailable.update(r["unavailable"])
    summary = {view: {v: seed_summary(results, v, seeds, view) for v in variants} for view in VIEWS}
    baseline_cells = [r["baseline"] for r in results.values() if r["baseline"]]
    baseline = subject_summary(baseline_cells[0]) if baseline_cells else {}
    columns = [m for m in METRICS if m == "lpips" or any(m in summary["blended"][v] for v in variants)]
    subjects = sorted(next(iter(results.values()))["views"]["blended"])
    lines = [
        f"# AnatoMaskGAN ablation ({Path(config['bundle']).name}, scale {config['scale']})",
        "",
        f"Mean ± std across {len(seeds)} seeds ({', '.join(map(str, seeds))}) of each seed's mean over "
        f"{len(subjects)} test subjects ({', '.join(subjects)}); the same split, {config['epochs']} epochs "
        f"and checkpoint rule (best validation `psnr_slice`, every {config['val_interval']} epochs) for "
        "every variant; the mask encoder in every variant. The label-mean row: mean ± std across subjects.",
    ]
    header = ["model"] + [METRICS[m][0] for m in columns] + ["vs SPADE"]
    for view, (_, heading) in VIEWS.items():
        rows = []
        for v in variants:
            row = [LABELS[v]] + [_cell_text(summary[view][v], m, unavailable) for m in columns]
            ref = summary[view].get("spade")
            row.append("—" if v == "spade" or ref is None else verdict_with_spread(summary[view][v], ref))
            rows.append(row)
        if baseline:
            rows.append([BASELINE_LABEL] + [_cell_text(baseline, m, unavailable) for m in columns] + ["—"])
        lines += ["", f"## {heading}", "", markdown_table(header, rows)]
    wall = sum(r["train_wall_s"] + r["eval_wall_s"] for r in results.values()) / 60
    lines += ["", f"Train + evaluate: {wall:.0f} min for {len(results)} cells.", ""]
    for m, reason in unavailable.items():
        name = METRICS[m][0].split(" ")[0] if m in METRICS else m
        lines.append(f"(a) {name} unavailable: {reason}")
    kind = (config.get("demo") or {}).get("kind") or _dataset_kind(config)
    if kind in PAPER_TABLE_II:
        dataset, paper = PAPER_TABLE_II[kind]
        lines += [
            "",
            f"Paper, Table II ({dataset}; for reference, not measured here):",
            "",
            markdown_table(
                ["model", "PSNR (dB) ↑", "SSIM ↑", "LPIPS ↓"],
                [
                    [LABELS[v], f"{p[0]:.2f}", f"{p[1]:.4f}", f"{p[2]:.4f}"]
                    for v, p in paper.items()
                    if v in variants
                ],
            ),
        ]
    if config.get("dataset_dir") is None:
        lines += [
            "",
            "Data: the bundle's procedural demo dataset. These numbers check the method end to end at CPU "
            "scale and say nothing about the paper's figures (real data, 224 x 224, 100 epochs, GPU).",
        ]
    folder.write_text("table.md", "\n".join(lines) + "\n")
    names = [LABELS[v].replace(" (AnatoMaskGAN)", "") for v in variants] + (
        [BASELINE_LABEL] if baseline else []
    )
    panels = {
        METRICS[m][0]: {
            VIEWS[view][1].split(" (")[0]: [
                (summary[view][v][m]["mean"], summary[view][v][m]["std"])
                if m in summary[view][v]
                else (math.nan, 0)
                for v in variants
            ]
            + (
                [(baseline[m]["mean"], baseline[m]["std"]) if m in baseline else (math.nan, 0)]
                if baseline
                else []
            )
            for view in VIEWS
        }
        for m in columns
        if m in summary["blended"][variants[0]]
    }
    grouped_bar_panels(
        folder.path("ablation.png"), names, panels,
        title=f"AnatoMaskGAN ablation, {Path(config['bundle']).name} ({config['scale']}, {len(seeds)} seeds)",
    )  # fmt: skip
    summary_doc = {**summary, "baseline": baseline}
    return folder.write_results(results, summary_doc, "ablation.png", unavailable=unavailable)


def _dataset_kind(config: dict[str, Any]) -> str | None:
    """``brain`` / ``abdomen`` from the bundle's demo kind, to pick the paper's column."""
    train = json.loads((Path(config["bundle"]) / "configs" / "train.json").read_text())
    return train.get("demo_kind")


def run(
    config: dict[str, Any], out: str | Path, overwrite: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Run (or resume) the ablation in ``out``; return the ``results.json`` document.

    Args:
        config: a scale of :data:`SCALES` with overrides applied, plus ``"scale"``.
        out: the results folder.
        overwrite: discard earlier results in ``out``.
        progress: show progress bars.
    """
    config = resolve_config(config)
    folder = ResultsFolder.open(out, NAME, config, overwrite=overwrite)
    data_dir = dataset_root(config, folder, progress)
    cells = [
        Cell(cell_id(v, s), {"variant": v, "seed": s, **VARIANTS[v], **COMMON_SWITCHES})
        for s in config["seeds"]  # seed-major: an interrupted run has every variant of the first seeds
        for v in config["variants"]
    ]
    return run_grid(
        folder,
        cells,
        lambda c: _variant_cell(config, folder, data_dir, c, progress),
        lambda results: build_outputs(config, folder, results),
        NAME,
        progress,
    )
