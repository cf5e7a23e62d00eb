"""ACIS reconstruction (paper Sec. 3.1 and 3.3, Table 2): super-resolution x2 / x4, deblurring and
denoising of 2-D chest CT slices by ResNet (EDSR-style), RED-CNN and ESRT (super-resolution only,
as in the paper), trained with the L2 loss on a few real scans, on those + plain augmentation, on
those + ACIS- or ACIS samples, and on 80 real scans (upper bound); PSNR and SSIM on held-out real
slices.

Grid: one resumable cell per (task, network, arm), plus the degraded input itself per task.

- tasks (:mod:`anatosynth_components.data.degradations`): ``sr2``, ``sr4`` (bilinear downsampling),
  ``blur1``, ``blur2``, ``blur5`` (Gaussian sigma in pixels), ``noise0.1``, ``noise0.2``,
  ``noise0.5`` (additive Gaussian on the [0, 1] scale).  Training degrades each batch on the fly
  (a fresh noise draw every time).  A test slice is degraded on the fly too, by a generator seeded
  from (seed, task, scan, slice) (:func:`~anatosynth_components.experiments.slice_stream.slice_seed`):
  every network and arm is scored on exactly the same inputs, none of which is stored.
- networks: ``resnet`` (:class:`~anatosynth_components.experiments.networks.resnet.EDSRNet`, LR input,
  sub-pixel upsampler), ``redcnn`` (:class:`~anatosynth_components.experiments.networks.redcnn.REDCNN`,
  no upsampler, so for SR it gets the bilinearly upsampled LR image), ``esrt``
  (:class:`~anatosynth_components.experiments.networks.esrt.ESRT`, LR input, SR tasks only).
- arms: ``baseline`` (the slices of ``baseline_scans`` real training scans; paper 8), ``augment``
  (the same with plain 2-D augmentation: random flip, rotation, affine and histogram shift, the
  list of Sec. 3.1), ``acis_minus`` and ``acis`` (the baseline slices + the synthetic images of
  the ACIS bundle trained on the baseline scans, sampled before and after its refinement;
  :mod:`~anatosynth_components.experiments.synthetic`, 2-D slices or 3-D volumes, mixed into every
  batch at ``real_synthetic_ratio``), ``upper_bound`` (``upper_bound_scans`` real training scans;
  paper 80, drawn with the seed and nested: the baseline scans are among them; all of them when
  fewer exist, which the table says).  Same iterations, batch and seed for every arm.
- evaluation: every slice (``slice_stride``) of the held-out test scans, network output clipped
  to [0, 1]; PSNR (dB, peak 1) and SSIM per slice with MONAI metrics
  (:mod:`~anatosynth_components.metrics.image_scores`), averaged per test scan.  The table gives
  mean ± std over test scans of the per-scan means; the tests
  (:mod:`~anatosynth_components.experiments.statistics`) are one-sided Wilcoxon signed-rank
  (greater) paired by test scan (slices of one scan are not independent), of every arm against the
  baseline and against the best other arm (the upper bound is a reference, not a competitor).  The
  degraded input itself is scored too (``input``) as the floor a network must beat.

Data path (:mod:`~anatosynth_components.experiments.slice_stream`): the training sets are indexes
of (scan, slice) pairs, read lazily per batch through an LRU cache of resized slices of at most
``cache_bytes`` bytes (PENet studies one slice at a time from the HDF5 file); only the scans an arm
uses are read, and test slices are scored ``eval_batch_size`` at a time, streaming through the test
scans.  Memory does not grow with the number of scans (``anatosynth benchmark reconstruction-memory``).
A slice that misses the cache costs one HDF5 slice read, the HU window and one 2-D resize (about
10 ms for a 512 x 512 PENet slice on one CPU core); the baseline's 8 scans fit the paper scale's
1 GiB, the upper bound's 80 do not (about 6-8 GiB at 256 x 256 in float32): where the host has the
memory, ``--set cache_bytes=...`` large enough for them reads every slice once per run.

Data (Sec. 3.1): PENet ``data.hdf5`` (read by ``read_penet``; its ``series_list.pkl`` phases give
the split: ``train`` scans for training, ``test`` scans for testing), CT clipped to [-1000, 600]
HU and scaled to [0, 1], slices resized to ``spatial_size`` (paper 256 x 256).  Synthetic images
are read on the scale ``synthetic_intensity`` gives: ``"chest"`` (HU, windowed like the real CT;
what the ACIS bundles write) or ``"unit"`` (already in [0, 1]; checked, never silently clipped).  Any layout
``read_dataset`` reads works; without a predefined split the test scans are drawn with ``seed``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.transforms import (
    Compose,
    RandAffined,
    RandFlipd,
    RandHistogramShiftd,
    RandRotated,
    RandSpatialCropd,
)

from anatosynth_components.checks import check_choices, check_positive_int
from anatosynth_components.data import read_dataset
from anatosynth_components.data.degradations import PAPER_TASKS, Task, degrade, parse_task, upsample
from anatosynth_components.errors import ConfigError, DataError
from anatosynth_components.experiments.cells import Cell
from anatosynth_components.experiments.datasets import dataset_root, resolve_dataset_dir
from anatosynth_components.experiments.markdown import demo_data_lines, markdown_table, p_value_lines
from anatosynth_components.experiments.networks.esrt import ESRT
from anatosynth_components.experiments.networks.redcnn import REDCNN
from anatosynth_components.experiments.networks.resnet import EDSRNet
from anatosynth_components.experiments.plots import grouped_bar_panels
from anatosynth_components.experiments.results_folder import ResultsFolder
from anatosynth_components.experiments.slice_stream import (
    SliceDataset,
    SliceRef,
    SliceStore,
    degraded_batches,
)
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
from anatosynth_components.experiments.training import determinism, train_cell
from anatosynth_components.metrics.image_scores import image_scores

NAME = "reconstruction"
NETWORKS = ("resnet", "redcnn", "esrt")
ARMS = ("baseline", "augment", "acis_minus", "acis", "upper_bound")
ARM_LABELS = {
    "baseline": "Baseline",
    "augment": "Augmentation",
    "acis_minus": "+ ACIS-",
    "acis": "+ ACIS",
    "upper_bound": "Upper bound",
}
NET_LABELS = {"resnet": "ResNet", "redcnn": "RED", "esrt": "ESRT"}
METRICS = ("psnr", "ssim")
#: the arms that may be "the best other arm" of a row: all but the upper bound (a reference)
REFERENCE_ARMS = ("upper_bound",)

SCALES: dict[str, dict[str, Any]] = {
    "demo": {
        "dataset_dir": None,
        "demo": {"kind": "penet", "subjects": 40, "seed": 0, "shape": [64, 64, 24]},
        "spatial_size": [32, 32],
        "slice_stride": 2,
        "tasks": list(PAPER_TASKS),
        "networks": list(NETWORKS),
        "arms": ["baseline", "acis_minus", "acis", "upper_bound"],
        "baseline_scans": 4,
        "upper_bound_scans": 80,
        "iterations": 150,
        "batch_size": 8,
        "real_synthetic_ratio": [1, 1],
        "train_patch": None,
        "lr": 0.001,
        "eval_batch_size": 32,
        "cache_bytes": 64 * 2**20,
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
        "upper_bound_scans": 80,
        "iterations": 20000,
        "batch_size": 16,
        "real_synthetic_ratio": [1, 1],
        "train_patch": 96,
        "lr": 0.0001,
        "eval_batch_size": 4,
        "cache_bytes": 2**30,
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
    "synthetic.refine_overrides",
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


def augmentations(spatial_size: list[int]) -> Compose:
    """Plain 2-D augmentation of the ``augment`` arm (Sec. 3.1's list: random flip, rotation, affine,
    histogram shift), on one (1, H, W) slice in [0, 1]."""
    shift = [max(1, s // 16) for s in spatial_size]
    return Compose(
        [
            RandFlipd("image", prob=0.5, spatial_axis=[0, 1]),
            RandRotated("image", range_x=0.26, prob=0.5, mode="bilinear", padding_mode="border"),
            RandAffined(
                "image",
                prob=0.5,
                scale_range=0.1,
                translate_range=shift,
                mode="bilinear",
                padding_mode="border",
            ),
            RandHistogramShiftd("image", num_control_points=10, prob=0.5),
        ]
    )


def train_transform(config: dict[str, Any], augment: bool, seed: int) -> Compose | None:
    """The training transform of one pool: augmentation (``augment``), then the random
    ``train_patch`` crop; seeded; None when there is neither."""
    parts = [augmentations(config["spatial_size"])] if augment else []
    patch = config["train_patch"]
    if patch:
        parts.append(RandSpatialCropd("image", (patch, patch), random_size=False))
    if not parts:
        return None
    transform = Compose(parts)
    transform.set_random_state(seed=seed)
    return transform


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
    check_positive_int("baseline_scans", config["baseline_scans"])
    check_positive_int("upper_bound_scans", config["upper_bound_scans"])
    if config["upper_bound_scans"] < config["baseline_scans"]:
        raise ConfigError(
            f"upper_bound_scans ({config['upper_bound_scans']}) must be at least baseline_scans "
            f"({config['baseline_scans']}): the upper bound's scans include the baseline's"
        )
    check_positive_int("slice_stride", config["slice_stride"])
    check_positive_int("eval_batch_size", config["eval_batch_size"])
    check_positive_int("cache_bytes", config["cache_bytes"], minimum=0)
    return resolve_dataset_dir(resolve_synthetic(config))


def split_scans(items: list[dict[str, Any]], config: dict[str, Any]) -> dict[str, list[str]]:
    """Training and test scans (the dataset's own split when it has one), and the nested baseline and
    upper-bound subsets: the first ``baseline_scans`` and ``upper_bound_scans`` of one seeded
    permutation of the training scans (all of them when fewer exist)."""
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
    upper = sorted(order[: min(config["upper_bound_scans"], len(train))])
    return {"training": train, "test": test, "baseline": baseline, "upper_bound": upper}


Predict = Callable[[torch.Tensor, tuple[int, int]], torch.Tensor]


class ReconstructionData:
    """The streaming data path of one run: the split, the test slices' index, the arms' training
    datasets and the evaluation, all reading slices lazily through one :class:`SliceStore`.

    Building it reads metadata only (the dataset index, each test scan's slice count); pixels are read
    when a dataset item or a test batch is asked for."""

    def __init__(self, config: dict[str, Any], root: Path) -> None:
        self.config = config
        index = read_dataset(root)
        self.split = split_scans(index.items, config)
        self.by_subject = {it["subject"]: it for it in index.items}
        self.store = SliceStore(config["spatial_size"], config["cache_bytes"])
        self.test_refs = self.real_refs(self.split["test"])

    def real_refs(self, scans: list[str]) -> list[SliceRef]:
        """The (scan, slice) references of real ``scans``, every ``slice_stride``-th slice."""
        return self.store.index([self.by_subject[s] for s in scans], self.config["slice_stride"], "chest")

    def arm_scans(self, arm: str) -> list[str]:
        """The real training scans of an arm: the upper bound's, or the baseline's for every other."""
        return self.split["upper_bound" if arm == "upper_bound" else "baseline"]

    def train_dataset(self, arm: str, seed: int | None = None) -> SliceDataset:
        """The real training slices of ``arm`` (augmented for ``augment``; random crop to
        ``train_patch``), read lazily."""
        seed = self.config["seed"] if seed is None else seed
        transform = train_transform(self.config, arm == "augment", seed)
        return SliceDataset(self.real_refs(self.arm_scans(arm)), self.store, transform)

    def synthetic_dataset(self, items: list[dict[str, Any]], seed: int | None = None) -> SliceDataset:
        """The slices of synthetic images ``items`` (2-D slices or 3-D volumes), read lazily; with
        ``synthetic_intensity`` "unit" every file is read once now, so a file outside [0, 1] is an
        error before training starts."""
        seed = self.config["seed"] if seed is None else seed
        intensity = self.config["synthetic_intensity"]
        refs = self.store.index(items, self.config["slice_stride"], intensity)
        if intensity == "unit":
            self.store.check_all(refs)
        return SliceDataset(refs, self.store, train_transform(self.config, False, seed + 1))

    def test_slices(self) -> dict[str, Any]:
        """The test slices in scoring order: ``{"scan": [...], "slices": [[z, ...], ...]}`` (z None for
        a 2-D test image)."""
        scans: dict[str, list[int | None]] = {}
        for ref in self.test_refs:
            scans.setdefault(ref.scan, []).append(ref.z)
        return {"scan": list(scans), "slices": list(scans.values())}

    def evaluate(self, predict: Predict | None, task: Task) -> dict[str, Any]:
        """Scores of ``predict(degraded batch, (H, W))`` on every test slice (None: the degraded input
        itself, bilinearly upsampled for SR), output clipped to [0, 1]; streamed
        ``eval_batch_size`` slices at a time.  Returns ``{"per_slice": {psnr, ssim}, "per_scan":
        {"scan", "n_slices", "psnr", "ssim"}}`` (per-scan: the mean over the scan's slices)."""
        psnr: list[float] = []
        ssim: list[float] = []
        size = tuple(self.config["spatial_size"])
        with torch.no_grad():
            for _, clean, degraded in degraded_batches(
                self.store, self.test_refs, task, self.config["seed"], self.config["eval_batch_size"]
            ):
                if predict is None:
                    y = upsample(degraded, size) if task.kind == "sr" else degraded
                else:
                    y = predict(degraded, size)
                scores = image_scores(y.float().cpu().clamp(0, 1), clean)
                psnr += scores["psnr"]
                ssim += scores["ssim"]
        return {
            "per_slice": {"psnr": psnr, "ssim": ssim},
            "per_scan": per_scan_means(self.test_refs, psnr, ssim),
        }


def per_scan_means(refs: list[SliceRef], psnr: list[float], ssim: list[float]) -> dict[str, list]:
    """``{"scan", "n_slices", "psnr", "ssim"}``: each scan's mean over its slices, in order of appearance."""
    groups: dict[str, list[int]] = {}
    for i, ref in enumerate(refs):
        groups.setdefault(ref.scan, []).append(i)
    return {
        "scan": list(groups),
        "n_slices": [len(v) for v in groups.values()],
        "psnr": [float(np.mean([psnr[i] for i in v])) for v in groups.values()],
        "ssim": [float(np.mean([ssim[i] for i in v])) for v in groups.values()],
    }


class _Experiment:
    """The data of one run shared by its cells; nothing but metadata is read until a cell computes."""

    def __init__(self, config: dict[str, Any], folder: ResultsFolder, progress: bool) -> None:
        self.config, self.folder, self.progress = config, folder, progress
        self.data = ReconstructionData(config, dataset_root(config, folder, progress))
        self.split = self.data.split
        folder.write_json("split.json", self.split)
        self.source = synthetic_source(config["synthetic"], progress)
        self.synthetic_cache: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {}

    def synthetic(self, arm: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The synthetic items of ACIS ``arm`` (the bundle trained on the baseline scans) and their record."""
        if arm not in self.synthetic_cache:
            self.synthetic_cache[arm] = synthetic_arm_items(
                self.source,
                arm,
                [self.data.by_subject[s] for s in self.split["baseline"]],
                self.split["test"],
                "baseline",
                self.folder.root / "synthetic",
                need_label=False,
            )
        return self.synthetic_cache[arm]

    def cells(self) -> list[Cell]:
        return _cells(self.config)

    def outputs(self, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return build_outputs(self.config, self.folder, self.split, results, self.data.test_slices())

    def compute(self, cell: Cell) -> dict[str, Any]:
        config, p = self.config, cell.params
        task = parse_task(p["task"])
        if p["arm"] == "input":
            t0 = time.perf_counter()
            return {**self.data.evaluate(None, task), "n_train_slices": 0, "eval_wall_s": _since(t0)}
        dataset = self.data.train_dataset(p["arm"])
        synthetic, record = None, None
        if p["arm"] in ACIS_ARMS:
            items, record = self.synthetic(p["arm"])
            synthetic = self.data.synthetic_dataset(items)
        name, device = p["network"], config["device"]
        with determinism(config["seed"]):
            net = build_network(name, task, config["network_sizes"].get(name, {}))
            trained = train_cell(
                net,
                torch.nn.MSELoss(),
                dataset,
                config,
                cell.id,
                self.progress,
                prepare_batch=DegradeBatch(task, name, config["seed"]),
                synthetic=synthetic,
            )
            t0 = time.perf_counter()
            scores = self.data.evaluate(
                lambda x, size: net(network_input(name, x, task, size).to(device)), task
            )
        return {
            **scores,
            "n_train_slices": len(dataset),
            "n_synthetic_slices": 0 if synthetic is None else len(synthetic),
            "synthetic_source": record,
            **trained,
            "eval_wall_s": _since(t0),
            "parameters": sum(q.numel() for q in net.parameters()),
        }


def _since(t0: float) -> float:
    return round(time.perf_counter() - t0, 2)


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


def _row_stats(cells: dict[str, dict[str, Any]], arms: list[str]) -> dict[str, dict[str, Any]]:
    """Per-arm summaries and tests of one (task, network) row, from each arm's cell result: summaries
    over test scans (of the per-scan means) and over slices; for every arm but the baseline the
    one-sided Wilcoxon tests paired by test scan, against the baseline and the best other arm
    (:data:`REFERENCE_ARMS` are no competitors)."""
    scans = cells["baseline"]["per_scan"]["scan"]
    for arm in arms:
        if cells[arm]["per_scan"]["scan"] != scans:
            raise DataError(f"arm {arm} was scored on other test scans than the baseline; rerun the cell")
    competitors = [a for a in arms if a not in REFERENCE_ARMS]
    tests = {
        m: compare_arms({a: cells[a]["per_scan"][m] for a in arms}, True, competitors=competitors)
        for m in METRICS
    }
    out = {}
    for arm in arms:
        entry: dict[str, Any] = {m: summarize(cells[arm]["per_scan"][m]) for m in METRICS}
        entry |= {f"{m}_slices": summarize(cells[arm]["per_slice"][m]) for m in METRICS}
        if arm != "baseline":
            entry |= {f"p_{m}": tests[m][arm] for m in METRICS}
        out[arm] = entry
    return out


def build_outputs(
    config: dict[str, Any],
    folder: ResultsFolder,
    split: dict[str, Any],
    results: dict[str, dict],
    test_slices: dict[str, Any],
) -> dict[str, Any]:
    """``table.md``, ``reconstruction.png`` and ``results.json`` from the cells; ``test_slices`` (of
    :meth:`ReconstructionData.test_slices`) maps the cells' per-slice scores to (scan, slice)."""
    arms = list(config["arms"])
    stats: dict[str, Any] = {}
    rows = []
    for name in config["tasks"]:
        task = parse_task(name)
        floor = results[f"{name}-input"]
        stats[f"{name}-input"] = {m: summarize(floor["per_scan"][m]) for m in METRICS}
        stats[f"{name}-input"] |= {f"{m}_slices": summarize(floor["per_slice"][m]) for m in METRICS}
        floor_stats = stats[f"{name}-input"]
        for net in config["networks"]:
            if net == "esrt" and task.kind != "sr":
                continue
            row_cells = {arm: results[f"{name}-{net}-{arm}"] for arm in arms}
            row_stats = _row_stats(row_cells, arms)
            row = [
                _task_label(task),
                NET_LABELS[net],
                f"{floor_stats['psnr']['mean']:.2f} / {floor_stats['ssim']['mean']:.3f}",
            ]
            for arm in arms:
                entry = stats[f"{name}-{net}-{arm}"] = row_stats[arm]
                per_scan = row_cells[arm]["per_scan"]
                row += [
                    mean_std(per_scan["psnr"], 2) + significance_marks(entry.get("p_psnr")),
                    mean_std(per_scan["ssim"], 3) + significance_marks(entry.get("p_ssim")),
                ]
            rows.append(row)
    header = ["task", "model", "input PSNR / SSIM"] + [
        f"{ARM_LABELS[a]} {m}" for a in arms for m in ("PSNR (dB) ↑", "SSIM ↑")
    ]
    first = next(iter(results.values()))
    n_slices, n_scans = len(first["per_slice"]["psnr"]), len(first["per_scan"]["scan"])
    ratio = config["real_synthetic_ratio"]
    lines = [
        f"# ACIS reconstruction (scale {config['scale']})",
        "",
        f"Mean ± std over the {n_scans} held-out real test scans of each scan's mean over its slices "
        f"({n_slices} slices in all; results.json also holds the per-slice scores and their summaries "
        f"over slices). Baseline: {len(split['baseline'])} real training scans; upper bound: "
        f"{len(split['upper_bound'])} (nested: the baseline's among them); {config['iterations']} "
        f"iterations of batch {config['batch_size']} (L2 loss) for every cell (real : synthetic "
        f"{ratio[0]} : {ratio[1]} per batch in the ACIS arms). One-sided Wilcoxon signed-rank tests "
        "(greater) paired by test scan: `*` p < 0.05 against the baseline of the row, `†` p < 0.05 "
        'against the best other arm of the row (the upper bound is no competitor). "input": the degraded '
        "test input itself (bilinearly upsampled for SR).",
        "",
        markdown_table(header, rows),
        "",
    ]
    capped = [
        f"{key} = {config[key]} requested, {len(split['training'])} real training scans available, so "
        f"{len(split[part])}"
        for key, part in (("baseline_scans", "baseline"), ("upper_bound_scans", "upper_bound"))
        if config[key] > len(split["training"]) and (part == "baseline" or "upper_bound" in arms)
    ]
    if capped:
        lines.append("Capped by the data: " + "; ".join(capped) + ".")
    lines += smallest_p_lines(n_scans, "test scans")
    caption = "p-values (one-sided Wilcoxon signed-rank, greater, paired by test scan):"
    lines += p_value_lines(stats, ["p_psnr", "p_ssim"], ["PSNR", "SSIM"], caption)
    lines += outside_subset_lines(results, "the baseline's real scans")
    if config["synthetic"] is not None:
        n_syn = sorted({v.get("n_synthetic_slices", 0) for v in results.values()} - {0})
        lines += ["", f"Synthetic slices added: {n_syn}; source: {config['synthetic']}"]
    lines += demo_data_lines(config, "CTPA phantoms in the PENet layout", "PENet")
    folder.write_text("table.md", "\n".join(lines) + "\n")
    groups = [k.rsplit("-", 1)[0] for k in stats if k.endswith("-baseline")]
    panels = {
        title: {
            ARM_LABELS[arm]: [(stats[f"{g}-{arm}"][m]["mean"], stats[f"{g}-{arm}"][m]["std"]) for g in groups]
            for arm in arms
        }
        for m, title in (("psnr", "PSNR (dB)"), ("ssim", "SSIM"))
    }
    grouped_bar_panels(
        folder.path("reconstruction.png"), groups, panels, title=f"ACIS reconstruction ({config['scale']})"
    )
    if any(len(v["per_slice"]["psnr"]) != n_slices for v in results.values()) or n_slices != sum(
        len(z) for z in test_slices["slices"]
    ):
        raise DataError("cells were scored on different test slices; delete the results folder and rerun")
    return folder.write_results(results, stats, "reconstruction.png", split=split, test_slices=test_slices)


def run(
    config: dict[str, Any], out: str | Path, overwrite: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Run (or resume) the reconstruction experiment in ``out``; return the ``results.json`` document."""
    return run_downstream(NAME, resolve_config(config), out, overwrite, progress, _Experiment)
