"""ACIS reconstruction (paper Sec. 3.1 and 3.3, Table 2): super-resolution x2 / x4, deblurring and
denoising of 2-D chest CT slices by ResNet (EDSR-style), RED-CNN and ESRT (super-resolution only,
as in the paper), trained with the L2 loss on a few real scans, on a few real scans + synthetic
data, and on all real scans (upper bound); PSNR and SSIM on held-out real slices.

Grid: one resumable cell per (task, network, arm).

- tasks (:mod:`anatosynth_components.data.degradations`): ``sr2``, ``sr4`` (bilinear downsampling),
  ``blur1``, ``blur2``, ``blur5`` (Gaussian sigma in pixels), ``noise0.1``, ``noise0.2``,
  ``noise0.5`` (additive Gaussian on the [0, 1] scale).  Training degrades each batch on the fly
  (a fresh noise draw every time); the test slices are degraded once per task with a fixed seed,
  so every network and arm is scored on the same inputs.
- networks: ``resnet`` (:class:`~anatosynth_components.experiments.networks.resnet.EDSRNet`, LR input,
  sub-pixel upsampler), ``redcnn`` (:class:`~anatosynth_components.experiments.networks.redcnn.REDCNN`,
  no upsampler, so for SR it gets the bilinearly upsampled LR image), ``esrt``
  (:class:`~anatosynth_components.experiments.networks.esrt.ESRT`, LR input, SR tasks only).
- arms: ``baseline`` (the slices of ``baseline_scans`` real training scans; paper 8),
  ``synthetic`` (the same + the synthetic images of
  :mod:`~anatosynth_components.experiments.synthetic`, 2-D slices or 3-D volumes), ``upper_bound``
  (every real training scan; paper 80).  Same iterations, batch and seed for every arm.
- evaluation: every slice (``slice_stride``) of the held-out test scans, network output clipped
  to [0, 1]; PSNR (dB, peak 1) and SSIM per slice with MONAI metrics
  (:mod:`~anatosynth_components.metrics.image_scores`); mean ± std over test slices; one-sided
  Wilcoxon signed-rank p-values (greater) paired by test slice against the baseline; the degraded
  input itself is scored too (``input``) as the floor a network must beat.

Data (Sec. 3.1): PENet ``data.hdf5`` (read by ``read_penet``; its ``series_list.pkl`` phases give
the split: ``train`` scans for training, ``test`` scans for testing), CT clipped to [-1000, 600]
HU and scaled to [0, 1], slices resized to ``spatial_size`` (paper 256 x 256).  Synthetic images
are read on the scale ``synthetic_intensity`` gives: ``"chest"`` (HU, windowed like the real CT;
what the ACIS bundles write) or ``"unit"`` (already in [0, 1]; checked, never silently clipped).  Any layout
``read_dataset`` reads works; without a predefined split the test scans are drawn with ``seed``.
"""

from __future__ import annotations

import copy
import functools
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import Dataset
from monai.transforms import RandSpatialCropd, Resized
from monai.utils import convert_to_tensor

from anatosynth_components.checks import check_choices
from anatosynth_components.data import LoadVolumed, ResizeSlicesd, read_dataset
from anatosynth_components.data.degradations import PAPER_TASKS, Task, degrade, parse_task, upsample
from anatosynth_components.errors import ConfigError, DataError
from anatosynth_components.experiments.cells import Cell
from anatosynth_components.experiments.datasets import dataset_root, resolve_dataset_dir, to_unit_range
from anatosynth_components.experiments.markdown import demo_data_lines, markdown_table, p_value_lines
from anatosynth_components.experiments.networks.esrt import ESRT
from anatosynth_components.experiments.networks.redcnn import REDCNN
from anatosynth_components.experiments.networks.resnet import EDSRNet
from anatosynth_components.experiments.plots import grouped_bar_panels
from anatosynth_components.experiments.results_folder import ResultsFolder
from anatosynth_components.experiments.summary import mean_std, summarize
from anatosynth_components.experiments.synthetic import (
    acis_synthetic,
    read_synthetic_items,
    resolve_synthetic,
    run_downstream,
    synthetic_source,
)
from anatosynth_components.experiments.training import determinism, train_cell
from anatosynth_components.metrics.image_scores import image_scores
from anatosynth_components.metrics.wilcoxon import one_sided_wilcoxon

NAME = "reconstruction"
NETWORKS = ("resnet", "redcnn", "esrt")
ARMS = ("baseline", "synthetic", "upper_bound")
ARM_LABELS = {"baseline": "Baseline", "synthetic": "+ Synthetic", "upper_bound": "Upper bound"}
NET_LABELS = {"resnet": "ResNet", "redcnn": "RED", "esrt": "ESRT"}

SCALES: dict[str, dict[str, Any]] = {
    "demo": {
        "dataset_dir": None,
        "demo": {"kind": "penet", "subjects": 12, "seed": 0, "shape": [64, 64, 24]},
        "spatial_size": [32, 32],
        "slice_stride": 2,
        "tasks": list(PAPER_TASKS),
        "networks": list(NETWORKS),
        "arms": list(ARMS),
        "baseline_scans": 4,
        "iterations": 150,
        "batch_size": 8,
        "train_patch": None,
        "lr": 0.001,
        "eval_batch_size": 32,
        "seed": 0,
        "device": "cpu",
        "network_sizes": {
            "resnet": {"features": 16, "num_blocks": 4},
            "redcnn": {"features": 16},
            "esrt": {"channels": 16, "num_hpb": 3, "num_heads": 4, "low_repeats": 2},
        },
        "synthetic": acis_synthetic("acis_penet", 16, [32, 32], num_points=256),
        "synthetic_intensity": "chest",
    },
    "paper": {
        "dataset_dir": None,
        "demo": {"kind": "penet", "subjects": 100, "seed": 0, "shape": None},
        "spatial_size": [256, 256],
        "slice_stride": 1,
        "tasks": list(PAPER_TASKS),
        "networks": list(NETWORKS),
        "arms": list(ARMS),
        "baseline_scans": 8,
        "iterations": 20000,
        "batch_size": 16,
        "train_patch": 96,
        "lr": 0.0001,
        "eval_batch_size": 4,
        "seed": 0,
        "device": "cuda",
        "network_sizes": {"resnet": {}, "redcnn": {}, "esrt": {}},
        "synthetic": acis_synthetic("acis_penet", 80),
        "synthetic_intensity": "chest",
    },
}
FREE_DICTS = (
    "network_sizes.resnet",
    "network_sizes.redcnn",
    "network_sizes.esrt",
    "synthetic.train_overrides",
    "synthetic.inference_overrides",
)


def build_network(name: str, task: Task, sizes: dict[str, Any]) -> torch.nn.Module:
    """The paper's reconstruction networks; ``sizes`` are their constructor arguments."""
    if name == "resnet":
        return EDSRNet(spatial_dims=2, scale=task.scale, **sizes)
    if name == "redcnn":
        return REDCNN(spatial_dims=2, **sizes)
    if name == "esrt":
        if task.kind != "sr":
            raise ConfigError(f"ESRT is a super-resolution network; task {task.name} is not SR")
        return ESRT(scale=task.scale, **sizes)
    raise ConfigError(f"networks: unknown network {name!r}; choose from {list(NETWORKS)}")


def network_input(name: str, degraded: torch.Tensor, task: Task, size: tuple[int, int]) -> torch.Tensor:
    """What a network gets: the degraded image, bilinearly upsampled for RED-CNN in SR tasks."""
    return upsample(degraded, size) if name == "redcnn" and task.kind == "sr" else degraded


class DegradeBatch:
    """MONAI ``prepare_batch`` that degrades clean slices on the fly: (network input, clean target)."""

    def __init__(self, task: Task, network: str, seed: int) -> None:
        self.task, self.network = task, network
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(
        self, batch: dict[str, Any], device: torch.device, non_blocking: bool = False, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        clean = torch.as_tensor(batch["image"]).float()
        degraded = degrade(clean, self.task, generator=self.generator)
        x = network_input(self.network, degraded, self.task, tuple(clean.shape[-2:]))
        return x.to(device, non_blocking=non_blocking), clean.to(device, non_blocking=non_blocking)


def _plain(image: Any) -> torch.Tensor:
    """A float tensor without MONAI metadata (2-D and 3-D sources carry different metadata)."""
    return convert_to_tensor(image, dtype=torch.float32, track_meta=False)


def load_slices(items: list[dict[str, Any]], config: dict[str, Any], intensity: str) -> list[torch.Tensor]:
    """Every ``slice_stride``-th 2-D slice (1, H, W) at ``spatial_size``, in [0, 1], of each item:
    a 3-D volume gives its slices along the last axis, a 2-D image (or an (X, Y, 1) volume) itself.

    Raises:
        DataError: an image that is neither 2-D nor 3-D, or (``intensity`` "unit") outside [0, 1].
    """
    out = []
    h, w = config["spatial_size"]
    for item in items:
        image = LoadVolumed("image")({"image": item["image"]})["image"]
        image = to_unit_range(intensity)({"image": image})["image"]
        if image.ndim == 4 and image.shape[-1] == 1:
            image = image[..., 0]
        if image.ndim == 3:
            image = Resized("image", (h, w), mode="bilinear", anti_aliasing=True)({"image": image})["image"]
            out.append(_plain(image))
        elif image.ndim == 4:
            image = _plain(ResizeSlicesd("image", (h, w), axis=2)({"image": image})["image"])
            out += [image[..., z] for z in range(0, image.shape[-1], config["slice_stride"])]
        else:
            raise DataError(
                f"{item['image']}: expected a 2-D slice or a 3-D volume, got shape {tuple(image.shape)}"
            )
    return out


def resolve_config(config: dict[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(config)
    check_choices("networks", config["networks"], NETWORKS)
    check_choices("arms", config["arms"], ARMS)
    tasks = [parse_task(t) for t in config["tasks"]]
    if not tasks:
        raise ConfigError("tasks: give at least one task")
    size = config["spatial_size"]
    scales = sorted({t.scale for t in tasks})
    patch = config["train_patch"] or min(size)
    if len(size) != 2 or any(s % math.lcm(*scales) for s in [*size, patch]):
        raise ConfigError(
            f"spatial_size {size} and train_patch {config['train_patch']} must be multiples of every "
            f"SR factor {scales}"
        )
    return resolve_dataset_dir(resolve_synthetic(config))


def split_scans(items: list[dict[str, Any]], config: dict[str, Any]) -> dict[str, list[str]]:
    """Training and test scans (the dataset's own split when it has one), and the baseline subset."""
    subjects = sorted({it["subject"] for it in items})
    if all("split" in it for it in items):
        train = sorted({it["subject"] for it in items if it["split"] == "training"})
        test = sorted({it["subject"] for it in items if it["split"] == "test"})
    else:
        order = [subjects[i] for i in np.random.default_rng(config["seed"]).permutation(len(subjects))]
        k = max(1, round(0.15 * len(order)))
        test, train = sorted(order[:k]), sorted(order[k:])
    if not train or not test:
        raise DataError(f"the dataset needs training and test scans; got {len(train)} and {len(test)}")
    order = [train[i] for i in np.random.default_rng(config["seed"]).permutation(len(train))]
    baseline = sorted(order[: min(config["baseline_scans"], len(train))])
    return {"training": train, "test": test, "baseline": baseline}


class _Experiment:
    """Slices shared by the cells of one run; loaded on the first cell that needs them."""

    def __init__(self, config: dict[str, Any], folder: ResultsFolder, progress: bool) -> None:
        self.config, self.folder, self.progress = config, folder, progress
        index = read_dataset(dataset_root(config, folder, progress))
        self.split = split_scans(index.items, config)
        folder.write_json("split.json", self.split)
        self.by_subject = {it["subject"]: it for it in index.items}
        self.source = synthetic_source(config["synthetic"], progress)
        self.test_inputs: dict[str, torch.Tensor] = {}

    def _slices(self, subjects: list[str]) -> list[torch.Tensor]:
        return load_slices([self.by_subject[s] for s in subjects], self.config, "chest")

    @functools.cached_property
    def train_slices(self) -> dict[str, list[torch.Tensor]]:
        per_scan = {s: self._slices([s]) for s in self.split["training"]}
        return per_scan

    @functools.cached_property
    def test_slices(self) -> torch.Tensor:
        return torch.stack(self._slices(self.split["test"]))

    @functools.cached_property
    def synthetic_slices(self) -> list[torch.Tensor]:
        real = [self.by_subject[s] for s in self.split["baseline"]]
        datalist = self.source.datalist(real, "baseline", self.folder.root / "synthetic")
        items = read_synthetic_items(datalist, need_label=False)
        return load_slices(items, self.config, self.config["synthetic_intensity"])

    def degraded_test(self, task: Task) -> torch.Tensor:
        if task.name not in self.test_inputs:
            generator = torch.Generator().manual_seed(
                self.config["seed"] + 7919 * (1 + PAPER_TASKS.index(task.name))
                if task.name in PAPER_TASKS
                else self.config["seed"]
            )
            self.test_inputs[task.name] = degrade(self.test_slices, task, generator=generator)
        return self.test_inputs[task.name]

    def pool(self, arm: str) -> list[torch.Tensor]:
        scans = self.split["training"] if arm == "upper_bound" else self.split["baseline"]
        slices = [s for scan in scans for s in self.train_slices[scan]]
        return slices + (self.synthetic_slices if arm == "synthetic" else [])

    def evaluate(self, net: torch.nn.Module | None, name: str, task: Task) -> dict[str, list[float]]:
        clean, degraded = self.test_slices, self.degraded_test(task)
        size, step = tuple(clean.shape[-2:]), self.config["eval_batch_size"]
        preds = []
        with torch.no_grad():
            for i in range(0, len(clean), step):
                x = degraded[i : i + step]
                if net is None:  # the degraded input itself, bilinearly upsampled for SR
                    y = upsample(x, size) if task.kind == "sr" else x
                else:
                    y = net(network_input(name, x, task, size).to(self.config["device"])).cpu()
                preds.append(y.clamp(0, 1))
        return image_scores(torch.cat(preds), clean)

    def cells(self) -> list[Cell]:
        return _cells(self.config)

    def outputs(self, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return build_outputs(self.config, self.folder, self.split, results)

    def compute(self, cell: Cell) -> dict[str, Any]:
        config, p = self.config, cell.params
        task = parse_task(p["task"])
        if p["arm"] == "input":
            return {"per_slice": self.evaluate(None, "input", task), "n_train_slices": 0}
        pool = self.pool(p["arm"])
        patch = config["train_patch"]
        transform = RandSpatialCropd("image", (patch, patch), random_size=False) if patch else None
        dataset = Dataset([{"image": s} for s in pool], transform=transform)
        with determinism(config["seed"]):
            net = build_network(p["network"], task, config["network_sizes"].get(p["network"], {}))
            degrade_batch = DegradeBatch(task, p["network"], config["seed"])
            trained = train_cell(
                net, torch.nn.MSELoss(), dataset, config, cell.id, self.progress, prepare_batch=degrade_batch
            )
            scores = self.evaluate(net, p["network"], task)
        n_syn = len(self.synthetic_slices) if p["arm"] == "synthetic" else 0
        return {
            "per_slice": scores,
            "n_train_slices": len(pool),
            "n_synthetic_slices": n_syn,
            **trained,
            "parameters": sum(q.numel() for q in net.parameters()),
        }


def _cells(config: dict[str, Any]) -> list[Cell]:
    cells = []
    for name in config["tasks"]:
        task = parse_task(name)
        cells.append(Cell(f"{name}-input", {"task": name, "network": None, "arm": "input"}))
        for net in config["networks"]:
            if net == "esrt" and task.kind != "sr":
                continue  # the paper runs ESRT for super-resolution only
            cells += [
                Cell(f"{name}-{net}-{arm}", {"task": name, "network": net, "arm": arm})
                for arm in config["arms"]
            ]
    return cells


def _task_label(task: Task) -> str:
    return {
        "sr": f"SR x{task.scale}",
        "blur": f"deblur sigma={task.level:g}",
        "noise": f"denoise sigma={task.level:g}",
    }[task.kind]


def build_outputs(
    config: dict[str, Any], folder: ResultsFolder, split: dict[str, Any], results: dict[str, dict]
) -> dict[str, Any]:
    """``table.md``, ``reconstruction.png`` and ``results.json`` from the cells."""
    stats: dict[str, Any] = {}
    rows = []
    for name in config["tasks"]:
        task = parse_task(name)
        floor = results[f"{name}-input"]["per_slice"]
        stats[f"{name}-input"] = {m: summarize(floor[m]) for m in ("psnr", "ssim")}
        for net in config["networks"]:
            if net == "esrt" and task.kind != "sr":
                continue
            base = results[f"{name}-{net}-baseline"]["per_slice"]
            row = [
                _task_label(task),
                NET_LABELS[net],
                f"{stats[f'{name}-input']['psnr']['mean']:.2f} / "
                f"{stats[f'{name}-input']['ssim']['mean']:.3f}",
            ]
            for arm in config["arms"]:
                cell = results[f"{name}-{net}-{arm}"]["per_slice"]
                entry: dict[str, Any] = {m: summarize(cell[m]) for m in ("psnr", "ssim")}
                marks = ["", ""]
                if arm != "baseline":
                    for i, m in enumerate(("psnr", "ssim")):
                        entry[f"p_{m}"] = one_sided_wilcoxon(cell[m], base[m], higher_is_better=True)
                        marks[i] = "*" if entry[f"p_{m}"]["p"] < 0.05 else ""
                stats[f"{name}-{net}-{arm}"] = entry
                row += [mean_std(cell["psnr"], 2) + marks[0], mean_std(cell["ssim"], 3) + marks[1]]
            rows.append(row)
    header = ["task", "model", "input PSNR / SSIM"] + [
        f"{ARM_LABELS[a]} {m}" for a in config["arms"] for m in ("PSNR (dB) ↑", "SSIM ↑")
    ]
    n_slices = len(next(iter(results.values()))["per_slice"]["psnr"])
    lines = [
        f"# ACIS reconstruction (scale {config['scale']})",
        "",
        f"Mean ± std over {n_slices} slices of {len(split['test'])} held-out real test scans; baseline: "
        f"{len(split['baseline'])} real training scans, upper bound: all {len(split['training'])}; "
        f"{config['iterations']} iterations of batch {config['batch_size']} (L2 loss) for every cell; `*`: "
        'one-sided Wilcoxon signed-rank p < 0.05 against the baseline (paired by test slice). "input": the '
        "degraded test input itself (bilinearly upsampled for SR).",
        "",
        markdown_table(header, rows),
        "",
    ]
    if config["baseline_scans"] > len(split["training"]):
        lines.append(
            f"Capped by the data: baseline_scans = {config['baseline_scans']} requested, "
            f"{len(split['training'])} real training scans available."
        )
    caption = "p-values (one-sided Wilcoxon signed-rank, greater, vs baseline):"
    lines += p_value_lines(stats, ["p_psnr", "p_ssim"], ["p (PSNR)", "p (SSIM)"], caption)
    if config["synthetic"] is not None:
        n_syn = sorted({v.get("n_synthetic_slices", 0) for v in results.values()} - {0})
        lines += ["", f"Synthetic slices added: {n_syn}; source: {config['synthetic']}"]
    lines += demo_data_lines(config, "CTPA phantoms in the PENet layout", "PENet")
    folder.write_text("table.md", "\n".join(lines) + "\n")
    groups = [k.rsplit("-", 1)[0] for k in stats if k.endswith("-baseline")]
    panels = {
        title: {
            ARM_LABELS[arm]: [(stats[f"{g}-{arm}"][m]["mean"], stats[f"{g}-{arm}"][m]["std"]) for g in groups]
            for arm in config["arms"]
        }
        for m, title in (("psnr", "PSNR (dB)"), ("ssim", "SSIM"))
    }
    grouped_bar_panels(
        folder.path("reconstruction.png"), groups, panels, title=f"ACIS reconstruction ({config['scale']})"
    )
    return folder.write_results(results, stats, "reconstruction.png", split=split)


def run(
    config: dict[str, Any], out: str | Path, overwrite: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Run (or resume) the reconstruction experiment in ``out``; return the ``results.json`` document."""
    return run_downstream(NAME, resolve_config(config), out, overwrite, progress, _Experiment)
