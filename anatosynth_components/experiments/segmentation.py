"""ACIS few-shot segmentation (paper Sec. 3.1-3.2, Table 1): 3D UNet and MedNeXt trained with Dice
loss on n real volumes, without and with synthetic image-annotation pairs, scored by Dice and mean
surface distance on held-out real volumes, with one-sided Wilcoxon signed-rank tests against the
baseline.

Grid: one resumable cell per (n, model, arm).

- n in ``n_train`` (paper: 4, 8, 16, 80), capped by the real volumes left after the test set; the
  subsets are nested (the first n of one seeded permutation), and the capping is stated in the
  table.  Requested values that cap to the same n run once.
- models (Sec. 3.1): ``unet``, MONAI ``UNet`` with 4 levels, channels (16, 32, 64, 128), strides 2
  (num_res_units 2, MONAI's usual setting; the paper does not say); ``mednext``, MONAI's MedNeXt
  small variant with 3 x 3 x 3 kernels (``create_mednext("S", kernel_size=3)``, [29]).
- arms: ``baseline`` (the n real volumes), ``augment`` (the same with plain augmentation: random
  flip, rotation, affine and histogram shift, the list of Sec. 3.1, on volumes reoriented to RAS;
  flips along ``flip_axes``, never the left-right axis 0: a mirrored lobe map has no correct labels,
  the left lung having two lobes and the right three, see ``data.lateral_flip``), ``acis_minus``
  (the n real volumes + the pairs sampled from the ACIS bundle trained on them, not refined: the
  paper's ACIS-) and ``acis`` (the same bundle after registration training and refinement,
  ``configs/refine.json``), both from :mod:`~anatosynth_components.experiments.synthetic`, one
  synthetic set per n.
- training: Dice loss (MONAI ``DiceLoss(softmax, to_onehot_y)``), Adam, a fixed number of
  iterations for every arm and n (:mod:`~anatosynth_components.experiments.training`); with
  synthetic pairs every batch mixes real and synthetic samples at ``real_synthetic_ratio`` (default
  1:1) at every n; the model after the last iteration is evaluated (the paper states no model
  selection).
- evaluation: every held-out test volume, whole-volume forward at ``spatial_size``; Dice (%) and
  MSD (mm, on the resampled grid's spacing) from MONAI metrics
  (:mod:`~anatosynth_components.metrics.segmentation_scores`): a class the prediction misses has no
  surface distance; it is left out of the MSD and counted in the ``missed`` column.  One-sided
  Wilcoxon signed-rank tests paired by test subject (Dice: greater, MSD: less) of each arm against
  the baseline (``*``) and against the best other arm (``†``) of the same (n, model)
  (:mod:`~anatosynth_components.experiments.statistics`).

Preprocessing (Sec. 3.1): CT clipped to [-1000, 600] HU and scaled to [0, 1]; volumes resampled to
``spatial_size`` (paper 192 x 192 x 160; trilinear for images, nearest for labels).  Synthetic
images are read on the scale ``synthetic_intensity`` says: ``"chest"`` (Hounsfield units, windowed
like the real CT; what the ACIS bundles' sampling writes, in their ``output_range``) or ``"unit"``
(already in [0, 1]; checked, so HU images given as ``"unit"`` are an error, never silently clipped).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import CacheDataset, Dataset
from monai.losses import DiceLoss
from monai.networks.nets import UNet
from monai.networks.nets.mednext import create_mednext
from monai.transforms import (
    Compose,
    EnsureTyped,
    RandAffined,
    RandHistogramShiftd,
    RandRotated,
    Resized,
)

from anatosynth_components.atomic import atomic_path
from anatosynth_components.checks import check_choices
from anatosynth_components.data import (
    LoadVolumed,
    OrientToRASd,
    ValidateVolumed,
    anatomy_safe_flips,
    read_dataset,
)
from anatosynth_components.errors import ConfigError, DataError
from anatosynth_components.experiments.cells import Cell
from anatosynth_components.experiments.datasets import dataset_root, resolve_dataset_dir, to_unit_range
from anatosynth_components.experiments.markdown import demo_data_lines, markdown_table, p_value_lines
from anatosynth_components.experiments.plots import line_panels
from anatosynth_components.experiments.results_folder import ResultsFolder
from anatosynth_components.experiments.statistics import compare_arms, significance_marks, smallest_p_lines
from anatosynth_components.experiments.summary import mean_std, summarize
from anatosynth_components.experiments.synthetic import (
    ACIS_ARMS,
    acis_synthetic,
    outside_subset_lines,
    resolve_synthetic,
    run_downstream,
    synthetic_arm_items,
    synthetic_source,
)
from anatosynth_components.experiments.synthetic_quality import (
    class_intensities,
    intensity_gap,
    label_agreement,
)
from anatosynth_components.experiments.training import determinism, train_cell
from anatosynth_components.metrics.segmentation_scores import segmentation_scores

NAME = "segmentation"
MODELS = ("unet", "mednext")
ARMS = ("baseline", "augment", "acis_minus", "acis")
ARM_LABELS = {"baseline": "Baseline", "augment": "Augmentation", "acis_minus": "+ ACIS-", "acis": "+ ACIS"}
MODEL_LABELS = {"unet": "3D UNet", "mednext": "MedNeXt-S"}

SCALES: dict[str, dict[str, Any]] = {
    "demo": {
        "dataset_dir": None,
        "demo": {"kind": "chest", "subjects": 16, "seed": 0, "shape": [32, 32, 32]},
        "num_classes": 7,
        "spatial_size": [32, 32, 32],
        "test_subjects": 6,
        "n_train": [4, 8, 16, 80],
        "models": list(MODELS),
        "arms": ["baseline", "acis_minus", "acis"],
        "iterations": 300,
        "batch_size": 2,
        "real_synthetic_ratio": [1, 1],
        "lr": 0.001,
        "seed": 0,
        "device": "cpu",
        "synthetic": acis_synthetic("acis_tlobes", 8, [32, 32, 32]),
        "synthetic_intensity": "chest",
        "flip_axes": [1, 2],
    },
    "paper": {
        "dataset_dir": None,
        "demo": {"kind": "chest", "subjects": 100, "seed": 0, "shape": None},
        "num_classes": 7,
        "spatial_size": [192, 192, 160],
        "test_subjects": 20,
        "n_train": [4, 8, 16, 80],
        "models": list(MODELS),
        "arms": ["baseline", "augment", "acis_minus", "acis"],
        "iterations": 20000,
        "batch_size": 2,
        "real_synthetic_ratio": [1, 1],
        "lr": 0.0001,
        "seed": 0,
        "device": "cuda",
        "synthetic": acis_synthetic("acis_tlobes", 80),
        "synthetic_intensity": "chest",
        "flip_axes": [1, 2],
    },
}
FREE_DICTS = ("synthetic.train_overrides", "synthetic.refine_overrides", "synthetic.inference_overrides")


def build_network(model: str, num_classes: int) -> torch.nn.Module:
    """The paper's two segmentation networks, from MONAI."""
    if model == "unet":
        return UNet(3, 1, num_classes, channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=2)
    if model == "mednext":
        return create_mednext("S", spatial_dims=3, in_channels=1, out_channels=num_classes, kernel_size=3)
    raise ConfigError(f"models: unknown model {model!r}; choose from {list(MODELS)}")


def volume_transforms(config: dict[str, Any], intensity: str) -> Compose:
    """Load, check, scale to [0, 1] and resample one (image, label) pair."""
    return Compose(
        [
            LoadVolumed(["image", "label"]),
            ValidateVolumed(label_ids=range(1, config["num_classes"])),
            OrientToRASd(["image", "label"]),
            to_unit_range(intensity),
            Resized(["image", "label"], spatial_size=config["spatial_size"], mode=("trilinear", "nearest")),
            EnsureTyped(["image", "label"], dtype=(torch.float32, torch.int64), track_meta=True),
        ]
    )


def augmentations(config: dict[str, Any]) -> Compose:
    """Plain augmentation of the ``augment`` arm (Sec. 3.1's list)."""
    keys, modes = ["image", "label"], ("bilinear", "nearest")
    return Compose(
        [
            *anatomy_safe_flips(
                keys, config["flip_axes"], "lobes_heart", prob=0.5, label_ids=range(1, config["num_classes"])
            ),
            RandRotated(
                keys, range_x=0.26, range_y=0.26, range_z=0.26, prob=0.5, mode=modes, padding_mode="border"
            ),
            RandAffined(
                keys, prob=0.5, scale_range=0.1, translate_range=[2, 2, 2], mode=modes, padding_mode="border"
            ),
            RandHistogramShiftd("image", num_control_points=10, prob=0.5),
        ]
    )


def resolve_config(config: dict[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(config)
    check_choices("models", config["models"], MODELS)
    check_choices("arms", config["arms"], ARMS)
    size = config["spatial_size"]
    if len(size) != 3 or any(s % 16 for s in size) or max(size) < 32:
        # MedNeXt downsamples 4 times and group-normalises its bottleneck, which needs > 1 voxel
        raise ConfigError(
            f"spatial_size must be 3 sizes divisible by 16, one of them at least 32 (MedNeXt's 4 "
            f"downsamplings leave a bottleneck of more than one voxel), got {size}"
        )
    return resolve_dataset_dir(resolve_synthetic(config))


def split_real(items: list[dict[str, Any]], config: dict[str, Any]) -> dict[str, Any]:
    """Seeded held-out test subjects and a nested order of the remaining training pool."""
    subjects = sorted({it["subject"] for it in items})
    k = config["test_subjects"]
    if not 1 <= k < len(subjects):
        raise DataError(
            f"test_subjects={k}: the dataset has {len(subjects)} subjects; at least one must stay for "
            "training and one for testing"
        )
    order = [subjects[i] for i in np.random.default_rng(config["seed"]).permutation(len(subjects))]
    test, pool = sorted(order[:k]), order[k:]
    n_values: dict[int, list[int]] = {}
    for n in config["n_train"]:
        if not isinstance(n, int) or n < 1:
            raise ConfigError(f"n_train: {n!r} is not a positive integer")
        n_values.setdefault(min(n, len(pool)), []).append(n)
    return {"test": test, "pool": pool, "n": {str(k): v for k, v in sorted(n_values.items())}}


def _evaluate(net: torch.nn.Module, test_ds: Dataset, config: dict[str, Any], device: str) -> dict[str, Any]:
    out = {}
    with torch.no_grad():
        for item in test_ds:
            logits = net(item["image"][None].to(device))
            pred = logits.argmax(dim=1, keepdim=True).cpu()
            spacing = [float(s) for s in item["label"].pixdim[:3]]
            scores = segmentation_scores(
                pred, item["label"][None].as_tensor().cpu(), config["num_classes"], spacing
            )
            scores["dice"] = 100.0 * scores["dice"]  # the paper reports DCS in %
            scores["dice_per_class"] = [100.0 * v for v in scores["dice_per_class"]]
            out[item["subject"]] = scores
    return out


class _Experiment:
    """The data shared by the cells of one run; volumes are loaded on the first cell that needs them,
    so a rerun whose cells are all finished loads nothing."""

    def __init__(self, config: dict[str, Any], folder: ResultsFolder, progress: bool) -> None:
        self.config, self.folder, self.progress = config, folder, progress
        self.index = read_dataset(dataset_root(config, folder, progress))
        self.split = split_real(self.index.items, config)
        folder.write_json("split.json", self.split)
        by_subject = {it["subject"]: it for it in self.index.items}
        self.pool = [by_subject[s] for s in self.split["pool"]]
        self.test_items = [by_subject[s] for s in self.split["test"]]
        self.source = synthetic_source(config["synthetic"], progress)
        self.synthetic_cache: dict[tuple[str, str], tuple[list[dict[str, Any]], dict[str, Any]]] = {}

    @functools.cached_property
    def test_ds(self) -> CacheDataset:
        return CacheDataset(self.test_items, volume_transforms(self.config, "chest"), progress=False)

    @functools.cached_property
    def real_cache(self) -> dict[str, dict[str, Any]]:
        data = CacheDataset(self.pool, volume_transforms(self.config, "chest"), progress=False)
        return dict(zip(self.split["pool"], data, strict=True))

    def synthetic(self, arm: str, n: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The loaded synthetic pairs of ACIS ``arm`` for the first ``n`` real volumes (one set per n
        when the experiment trains ACIS itself), and where they came from."""
        key = (arm, str(n) if self.source.per_subset else "all")
        if key not in self.synthetic_cache:
            items, record = synthetic_arm_items(
                self.source,
                arm,
                self.pool[:n],
                self.split["test"],
                f"n{n}",
                self.folder.root / "synthetic",
                need_label=True,
            )
            tf = volume_transforms(self.config, self.config["synthetic_intensity"])
            self.synthetic_cache[key] = (list(CacheDataset(items, tf, progress=False)), record)
        return self.synthetic_cache[key]

    def cells(self) -> list[Cell]:
        return _cells(self.config, self.split)

    def outputs(self, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return build_outputs(self.config, self.folder, self.split, results)

    def compute(self, cell: Cell) -> dict[str, Any]:
        config, p = self.config, cell.params
        train = [self.real_cache[s] for s in self.split["pool"][: p["n"]]]
        transform = augmentations(config) if p["arm"] == "augment" else None
        dataset = Dataset([{"image": d["image"], "label": d["label"]} for d in train], transform=transform)
        synthetic, quality = None, {}
        if p["arm"] in ACIS_ARMS:
            pairs, record = self.synthetic(p["arm"], p["n"])
            synthetic = Dataset([{"image": d["image"], "label": d["label"]} for d in pairs])
            quality = {"synthetic_source": record, "synthetic_quality": self.quality(pairs, train, p)}
        with determinism(config["seed"]):
            net = build_network(p["model"], config["num_classes"])
            loss = DiceLoss(to_onehot_y=True, softmax=True)
            trained = train_cell(net, loss, dataset, config, cell.id, self.progress, synthetic=synthetic)
            per_subject = _evaluate(net, self.test_ds, config, config["device"])
        if p["arm"] == "baseline":  # the reference network of the row's synthetic-pair diagnostics
            with atomic_path(self.baseline_file(p)) as tmp:
                torch.save(net.state_dict(), tmp)
        return {
            "per_subject": per_subject,
            "n_real": p["n"],
            "n_synthetic": 0 if synthetic is None else len(synthetic),
            **quality,
            **trained,
        }

    def baseline_file(self, p: dict[str, Any]) -> Path:
        return self.folder.root / "models" / f"n{p['n']}-{p['model']}-baseline.pt"

    def quality(self, pairs: list[dict[str, Any]], real: list[dict[str, Any]], p: dict[str, Any]) -> dict:
        """Diagnostics of an ACIS arm's pairs (:mod:`.synthetic_quality`): their label agreement under
        the row's baseline network (when its weights were kept) and the class intensity gap to the
        row's real volumes."""
        classes = self.config["num_classes"]
        real_means = class_intensities(real, classes)
        synthetic_means = class_intensities(pairs, classes)
        out: dict[str, Any] = {
            "class_intensity_real": real_means,
            "class_intensity_synthetic": synthetic_means,
            "intensity_gap": intensity_gap(real_means, synthetic_means),
            "label_agreement": None,
        }
        path = self.baseline_file(p)
        if path.is_file():
            net = build_network(p["model"], classes)
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            agreement = label_agreement(net.to(self.config["device"]), pairs, classes, self.config["device"])
            out["label_agreement"] = summarize(agreement) | {"per_pair": agreement}
        return out


def _cells(config: dict[str, Any], split: dict[str, Any]) -> list[Cell]:
    return [
        Cell(f"n{n}-{model}-{arm}", {"n": int(n), "model": model, "arm": arm})
        for n in split["n"]
        for model in config["models"]
        for arm in config["arms"]
    ]


def _row_stats(cells: dict[str, dict[str, Any]], arms: list[str]) -> dict[str, dict[str, Any]]:
    """Per-arm summaries and tests of one (n, model) row; ``cells[arm]`` is the cell's per-subject scores.

    MSD is paired over the subjects whose MSD is finite in every arm (a subject whose every class was
    missed has none); ``msd_pairs`` says how many."""
    subjects = sorted(cells["baseline"])
    dice = {arm: [cells[arm][s]["dice"] for s in subjects] for arm in arms}
    msd = {arm: [cells[arm][s]["msd"] for s in subjects] for arm in arms}
    paired = [i for i in range(len(subjects)) if all(np.isfinite(msd[a][i]) for a in arms)]
    p_dice = compare_arms(dice, higher_is_better=True)
    p_msd = compare_arms({a: [msd[a][i] for i in paired] for a in arms}, higher_is_better=False)
    out = {}
    for arm in arms:
        out[arm] = {
            "dice": summarize(dice[arm]),
            "msd": summarize(msd[arm]),
            "missed": sum(cells[arm][s]["missed"] for s in subjects),
            "msd_pairs": len(paired),
        }
        if arm != "baseline":
            out[arm] |= {"p_dice": p_dice[arm], "p_msd": p_msd[arm]}
    return out


def quality_lines(
    config: dict[str, Any], ns: list[int], results: dict[str, dict], stats: dict[str, Any]
) -> list[str]:
    """The table of the ACIS arms' pair diagnostics (:mod:`.synthetic_quality`), one row per cell."""
    rows = []
    for n in ns:
        for model in config["models"]:
            real = stats[f"n{n}-{model}-baseline"]["dice"]["mean"]
            for arm in (a for a in config["arms"] if a in ACIS_ARMS):
                q = results[f"n{n}-{model}-{arm}"].get("synthetic_quality") or {}
                agreement = q.get("label_agreement")
                rows.append(
                    [
                        f"n={n}",
                        MODEL_LABELS[model],
                        ARM_LABELS[arm],
                        "n/a" if agreement is None else f"{agreement['mean']:.2f} ± {agreement['std']:.2f}",
                        f"{real:.2f}",
                        f"{q.get('intensity_gap', float('nan')):.4f}",
                    ]
                )
    if not rows:
        return []
    header = [
        "n",
        "model",
        "arm",
        "label agreement DCS (%)",
        "baseline DCS on real test (%)",
        "intensity gap",
    ]
    return [
        "",
        "Synthetic pairs (diagnostics): label agreement is the Dice between each pair's annotation and the "
        "row's baseline network's segmentation of the pair's image (as consistent as real data: about the "
        "baseline's Dice on the real test volumes); intensity gap is the mean absolute difference of the "
        "mean image value per class, real training volumes vs synthetic images ([0, 1] scale).",
        "",
        markdown_table(header, rows),
    ]


def build_outputs(
    config: dict[str, Any], folder: ResultsFolder, split: dict[str, Any], results: dict[str, dict]
) -> dict[str, Any]:
    """``table.md``, ``segmentation.png`` and ``results.json`` from the cells."""
    ns = [int(n) for n in split["n"]]
    arms = list(config["arms"])
    stats: dict[str, Any] = {}
    rows = []
    for n in ns:
        for model in config["models"]:
            row_cells = {arm: results[f"n{n}-{model}-{arm}"]["per_subject"] for arm in arms}
            row_stats = _row_stats(row_cells, arms)
            row = [f"n={n}", MODEL_LABELS[model]]
            for arm in arms:
                entry = stats[f"n{n}-{model}-{arm}"] = row_stats[arm]
                dice = [row_cells[arm][s]["dice"] for s in sorted(row_cells[arm])]
                msd = [row_cells[arm][s]["msd"] for s in sorted(row_cells[arm])]
                row += [
                    mean_std(dice, 2) + significance_marks(entry.get("p_dice")),
                    mean_std(msd, 2) + significance_marks(entry.get("p_msd")),
                    str(entry["missed"]),
                ]
            rows.append(row)
    header = ["n", "model"] + [
        f"{ARM_LABELS[a]} {m}" for a in arms for m in ("DCS (%) ↑", "MSD (mm) ↓", "missed")
    ]
    capped = {n: req for n, req in split["n"].items() if req != [int(n)]}
    lines = [
        f"# ACIS few-shot segmentation (scale {config['scale']})",
        "",
        f"Mean ± std over {len(split['test'])} held-out real test volumes; {config['iterations']} "
        f"iterations of batch {config['batch_size']} for every cell (real : synthetic "
        f"{config['real_synthetic_ratio'][0]} : {config['real_synthetic_ratio'][1]} per batch in the ACIS "
        "arms). One-sided Wilcoxon signed-rank tests paired by test subject (Dice greater, MSD less): "
        "`*` p < 0.05 against the baseline of the same row, `†` p < 0.05 against the best other arm of "
        "the row. `missed`: (class, subject) pairs where a class of the ground truth has no predicted "
        "voxel; they have no surface distance and are left out of the MSD.",
        "",
        markdown_table(header, rows),
        "",
    ]
    if capped:
        lines.append(
            "Capped by the data: "
            + "; ".join(
                f"n = {req} requested, {len(split['pool'])} real training volumes available, so n = {n}"
                for n, req in capped.items()
            )
        )
    lines += smallest_p_lines(len(split["test"]), "test subjects")
    caption = "p-values (one-sided Wilcoxon signed-rank, paired by test subject):"
    lines += p_value_lines(stats, ["p_dice", "p_msd"], ["DCS greater", "MSD less"], caption)
    lines += outside_subset_lines(results, "the row's n real volumes")
    if config["synthetic"] is not None:
        n_syn = {k: v["n_synthetic"] for k, v in results.items() if v["n_synthetic"]}
        lines += [
            "",
            f"Synthetic pairs per cell: {sorted(set(n_syn.values()))}; source: {config['synthetic']}",
        ]
        lines += quality_lines(config, ns, results, stats)
    lines += demo_data_lines(config, "chest phantoms", "TLobes")
    folder.write_text("table.md", "\n".join(lines) + "\n")
    panels = {}
    for model in config["models"]:
        for metric, title in (("dice", "DCS (%)"), ("msd", "MSD (mm)")):
            panels[f"{MODEL_LABELS[model]} {title}"] = {
                ARM_LABELS[a]: [
                    (stats[f"n{n}-{model}-{a}"][metric]["mean"], stats[f"n{n}-{model}-{a}"][metric]["std"])
                    for n in ns
                ]
                for a in config["arms"]
            }
    line_panels(
        folder.path("segmentation.png"),
        ns,
        panels,
        "real training volumes n",
        title=f"ACIS few-shot segmentation ({config['scale']})",
    )
    return folder.write_results(results, stats, "segmentation.png", split=split)


def run(
    config: dict[str, Any], out: str | Path, overwrite: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Run (or resume) the segmentation experiment in ``out``; return the ``results.json`` document."""
    return run_downstream(NAME, resolve_config(config), out, overwrite, progress, _Experiment)
