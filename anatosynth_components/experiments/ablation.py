"""AnatoMaskGAN ablation (paper Tables I-II): SPADE and the three cumulative additions, trained and
evaluated through the bundle's own workflows with the same budget and seed.

Each variant is one resumable cell.  It runs, in its own bundle root ``<out>/variants/<variant>``:

1. ``python -m monai.bundle run training --config_file <bundle>/configs/train.json`` with the
   variant's switches (``use_gnn_sif``, ``use_noise3d``, ``use_gtc``, paper Sec. IV-E: "starting
   from a SPADE backbone and successively adding GNN-SASE, 3D Spatial-Noise, and G-TC"), the same
   ``seed``, epochs and overrides for every variant, one shared subject split (``split_file``) and
   one dataset folder;
2. ``python -m monai.bundle run evaluating --config_file "['<bundle>/configs/train.json',
   '<bundle>/configs/evaluate.json']"`` (``evaluate.json`` is an overlay of ``train.json``) with the
   same network keys, which writes ``eval/metrics.json``: PSNR, SSIM, inter-slice coherence and,
   only with its genuine pretrained weights, LPIPS (otherwise the reason is recorded and the
   table says "unavailable").

A crash during training resumes from the variant's latest checkpoint (``--resume true``); a
finished training is not redone when only the evaluation failed.  The table gives mean ± std over
the test subjects (population std, as the evaluation report), read from each variant's
``metrics.json``; the paper's Table II numbers are printed below it for reference, never mixed
with the measured ones.

Scales: ``demo`` is the CPU configuration of ``scripts/quickstart.sh`` (64 x 64 slices, a narrow
network, no VGG term since its weights cannot be downloaded offline, 48 epochs; 12 minutes for the
four variants on 2 cores) on the bundle's own demo dataset; ``paper`` is the bundle's defaults
(224 x 224, base_channels 64, lambda_vgg 5, 100 epochs, paper Sec. IV-B), which needs the VGG19
weights in torchvision's cache and a GPU.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

from anatosynth_components.checks import check_choices, check_positive_int
from anatosynth_components.errors import ConfigError, DataError
from anatosynth_components.experiments.bundle_runner import resolve_bundle, run_bundle
from anatosynth_components.experiments.cells import Cell, run_grid
from anatosynth_components.experiments.datasets import dataset_root, resolve_dataset_dir
from anatosynth_components.experiments.markdown import markdown_table
from anatosynth_components.experiments.plots import bar_panels
from anatosynth_components.experiments.results_folder import ResultsFolder
from anatosynth_components.experiments.summary import mean_std, summarize

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

#: metric -> (column title, digits, direction); the order of the table's columns.
METRICS: dict[str, tuple[str, int, str]] = {
    "psnr": ("PSNR (dB) ↑", 2, "higher"),
    "ssim": ("SSIM ↑", 4, "higher"),
    "lpips": ("LPIPS ↓", 4, "lower"),
    "coherence": ("coherence (dB) ↑", 2, "higher"),
    "st_lpips": ("ST-LPIPS ↓", 4, "lower"),
}

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
        "seed": 0,
        "epochs": 48,
        "network": _DEMO_NETWORK,
        "train": {"disc_channels": 32, "lambda_vgg": 0, "batch_size": 2, "stacks_per_volume": 2},
        "evaluate": {},
    },
    "paper": {
        "bundle": "anatomask_oasis",
        "dataset_dir": None,
        "variants": list(VARIANTS),
        "seed": 0,
        "epochs": 100,
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
    for key in FREE_DICTS:
        clash = sorted(set(config[key]) & {"use_gnn_sif", "use_noise3d", "use_gtc", "seed", "bundle_root"})
        if clash:
            raise ConfigError(f"{key}: {clash} are set by the experiment itself, not as overrides")
    bundle = bundle_dir(config["bundle"])
    config["bundle"] = str(bundle)
    # validate once, after the last epoch (model.pt is then the final model), unless set otherwise
    config["train"].setdefault("val_interval", config["epochs"])
    if config["dataset_dir"] is None:
        train = json.loads((bundle / "configs" / "train.json").read_text())
        config["demo"] = {k: train[f"demo_{k}"] for k in ("kind", "subjects", "seed")}
    else:
        resolve_dataset_dir(config)
    return config


def _variant_cell(
    config: dict[str, Any], folder: ResultsFolder, data_dir: Path, cell: Cell, progress: bool = False
) -> dict[str, Any]:
    variant = cell.params["variant"]
    bundle = Path(config["bundle"])
    root = folder.root / "variants" / variant
    switches = VARIANTS[variant]
    common = {
        "dataset_dir": str(data_dir),
        "split_file": str(folder.root / "split.json"),
        "seed": config["seed"],
    }
    net = {**config["network"], **{k: v for k, v in switches.items() if k not in TRAIN_ONLY_SWITCHES}}
    marker = root / "train_done.json"
    if marker.is_file():
        trained = json.loads(marker.read_text())
    else:
        resume = any((root / "models").glob("latest_checkpoint_epoch=*.pt"))
        overrides = {
            **common,
            **net,
            **config["train"],
            "use_gtc": switches["use_gtc"],
            "train#trainer#max_epochs": config["epochs"],
            "resume": resume,
        }
        t0 = time.perf_counter()
        cmd = run_bundle(
            "training",
            bundle / "configs" / "train.json",
            root,
            overrides,
            root / "train.log",
            progress=progress,
            total_epochs=None if resume else config["epochs"],
            desc=f"{variant}: train",
        )
        trained = {"command": cmd, "wall_s": round(time.perf_counter() - t0, 1), "resumed": resume}
        folder.write_json(str(marker.relative_to(folder.root)), trained)
    t0 = time.perf_counter()
    cmd = run_bundle(
        "evaluating",
        json.dumps([str(bundle / "configs" / "train.json"), str(bundle / "configs" / "evaluate.json")]),
        root,
        {**common, **net, **config["evaluate"]},
        root / "evaluate.log",
    )
    eval_wall = round(time.perf_counter() - t0, 1)
    metrics_file = root / "eval" / "metrics.json"
    if not metrics_file.is_file():
        raise DataError(
            f"{metrics_file}: the evaluation workflow wrote no metrics (see {root / 'evaluate.log'})"
        )
    metrics = json.loads(metrics_file.read_text())
    # float() also reads the report's "inf" / "nan" strings
    per_subject = {s: {m: float(v) for m, v in vals.items()} for s, vals in metrics["per_subject"].items()}
    return {
        "per_subject": per_subject,
        "unavailable": metrics.get("unavailable", {}),
        "definitions": metrics.get("definitions", {}),
        "train_wall_s": trained["wall_s"],
        "eval_wall_s": eval_wall,
        "train_command": trained["command"],
        "eval_command": cmd,
    }


def _column(results: dict[str, dict], variants: list[str], metric: str) -> list[list[float]]:
    return [[vals[metric] for vals in results[v]["per_subject"].values() if metric in vals] for v in variants]


def build_outputs(config: dict[str, Any], folder: ResultsFolder, results: dict[str, dict]) -> dict[str, Any]:
    """Write ``table.md``, ``ablation.png`` and ``results.json`` from the cells; return the summary."""
    variants = config["variants"]
    computed = [m for m in METRICS if any(_column(results, variants, m)[i] for i in range(len(variants)))]
    unavailable: dict[str, str] = {}
    for v in variants:
        unavailable.update(results[v]["unavailable"])
    columns = [m for m in METRICS if m in computed or (m == "lpips")]
    summary = {
        v: {
            m: summarize(vals)
            for m, vals in zip(computed, (_column(results, [v], m)[0] for m in computed), strict=True)
        }
        for v in variants
    }
    rows = []
    for v in variants:
        row = [LABELS[v]]
        for m in columns:
            title, digits, _ = METRICS[m]
            values = _column(results, [v], m)[0]
            row.append(
                mean_std(values, digits) if values else "unavailable" + (" (a)" if m in unavailable else "")
            )
        row.append(f"{(results[v]['train_wall_s'] + results[v]['eval_wall_s']) / 60:.1f}")
        rows.append(row)
    subjects = sorted(next(iter(results.values()))["per_subject"])
    header = ["model"] + [METRICS[m][0] for m in columns] + ["train + eval (min)"]
    lines = [
        f"# AnatoMaskGAN ablation ({Path(config['bundle']).name}, scale {config['scale']})",
        "",
        f"Mean ± std over {len(subjects)} test subjects ({', '.join(subjects)}); the same seed "
        f"({config['seed']}), split and {config['epochs']} epochs for every variant.",
        "",
        markdown_table(header, rows),
        "",
    ]
    for m, reason in unavailable.items():
        name = METRICS[m][0].split(" ")[0] if m in METRICS else m
        if m in columns:  # a column of the table, marked (a)
            lines.append(f"(a) {name} unavailable: {reason}")
        else:  # an optional extra (ST-LPIPS) that has no column when it was not computed
            lines.append(f"{name} not computed: {reason}")
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
            "Data: the bundle's procedural demo dataset. These numbers check the pipeline end to end and "
            "say nothing about the paper's figures (real data, 224 x 224, 100 epochs, GPU).",
        ]
    folder.write_text("table.md", "\n".join(lines) + "\n")
    panels = {
        METRICS[m][0]: [(summary[v][m]["mean"], summary[v][m]["std"]) for v in variants] for m in computed
    }
    bar_panels(
        folder.path("ablation.png"),
        [LABELS[v].replace(" (AnatoMaskGAN)", "") for v in variants],
        panels,
        title=f"AnatoMaskGAN ablation, {Path(config['bundle']).name} ({config['scale']})",
    )
    return folder.write_results(results, summary, "ablation.png", unavailable=unavailable)


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
    cells = [Cell(v, {"variant": v, **VARIANTS[v]}) for v in config["variants"]]
    return run_grid(
        folder,
        cells,
        lambda c: _variant_cell(config, folder, data_dir, c, progress),
        lambda results: build_outputs(config, folder, results),
        NAME,
        progress,
    )
