"""``anatosynth benchmark inference``: whole-volume synthesis against the bare network forward.

What the anatomask bundles' ``inference.json`` runs on one label volume, against the network alone on
exactly the same slices, in one run:

(a) **pipeline**: the bundles' inference path built from the same components as their
    ``inference.json`` (``LoadVolumed`` -> ``RemapLabelsd(table=None)`` -> ``ValidateVolumed`` in a
    MONAI ``Dataset`` / ``DataLoader``, a ``SupervisedEvaluator`` with ``MaskToImageBatch`` and
    ``SliceStackInferer`` (overlapping stacks, triangular blending, in-plane resize when the volume's
    size differs from the network's), ``SaveSynthesisd`` writing ``.nii.gz`` into a temporary
    folder).  Timed from ``evaluator.run()`` until the synthesized volume is on disk.
(b) **bare**: ``AnatoMaskNet.forward`` (the bundles' ``network_def``, one-hot encoding included) on
    the stacks the inferer feeds (same starts, same batches, same ``z_index`` and noise seed), cut
    and resized beforehand and held in memory; no blending, no I/O.

Both pay the overlap of the stacks (slices computed / output slices, printed).  Both run in one
child process, alternating, after a warm-up of each (one batch of stacks), with ``torch`` threads
fixed (``--threads``, default 1).  Two overhead figures:

- ``pipeline / bare - 1`` of the best wall (and CPU) times of separate runs: the plain definition of
  the overhead, but on a shared machine the runs drift apart by tens of per cent (other processes);
- the **in-run split**: forward hooks time ``network.forward`` inside the pipeline run itself, and
  everything else in that run (load, validate, collate, stacking, blending, save, engine) divided by
  that network time is what stacking, blending and I/O add, free of drift between runs.  The target
  is judged on this one; the ratio of the network's time in the pipeline run to the bare run (1 on a
  quiet machine) and the load average are printed so the two figures can be reconciled.

The check: the volume the pipeline wrote equals the blend of (b)'s outputs recomputed here in
float64 with ``blend_weights`` (max abs difference about 1e-7), and has the input's affine, so both
sides did the same work.

(c) **memory**: the pipeline alone on volumes of ``k x --depth`` slices (``--memory-multiples``;
    the label volume repeated along the stacking axis), each in its own child process so that the
    peak resident set is per depth, with glibc's malloc set to hand freed blocks of 64 KiB or more
    back to the system (``FIXED_MALLOC``; ``--default-malloc`` turns that off) so that the resident
    set follows live memory rather than allocation history.  Peaks per phase (load + validate +
    collate, inference, save) come from ``VmHWM``, reset between phases through
    ``/proc/self/clear_refs``; the run's peak is the largest.  The growth of the peak per extra
    slice is compared with what must grow: one float32 output slice plus one float32 input slice
    (the label volume as loaded).

Targets: stacking, blending and I/O add at most 15 % (``TARGET_OVERHEAD``); peak memory
does not grow with depth beyond the volumes themselves (growth <= (1 + ``MEMORY_TOLERANCE``) x
(output + input slice bytes) per slice; the tolerance absorbs allocator granularity).  Exit status
1 when the equivalence check fails; the targets are reported, not enforced.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from anatosynth_components.errors import ConfigError

HELP = "whole-volume synthesis (bundle inference path) vs the bare network forward; peak memory vs depth"
TARGET_OVERHEAD = 0.15
MEMORY_TOLERANCE = 0.10
MiB = 1024.0 * 1024.0
PHASES = ("load", "inference", "save")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=128, help="network slice size H = W (default 128)")
    parser.add_argument(
        "--volume-size", type=int, default=None,
        help="in-plane size of the label volume on disk (default --size: no resizing; another value "
        "includes the inferer's resize to the network and back)",
    )  # fmt: skip
    parser.add_argument("--num-slices", type=int, default=5, help="slices per stack n (default 5)")
    parser.add_argument("--depth", type=int, default=96, help="slices of the volume along the axis (96)")
    parser.add_argument("--classes", type=int, default=36, help="label classes incl. background (36)")
    parser.add_argument("--base-channels", type=int, default=16, help="generator channel unit (16)")
    parser.add_argument(
        "--channel-mults", type=int, nargs="+", default=[16, 16, 8, 4, 2, 1], metavar="M",
        help="generator level widths in base channels (default the bundles' 16 16 8 4 2 1; size must be "
        "divisible by 2^(levels - 1) and leave at least 2 x 2 at the lowest level)",
    )  # fmt: skip
    parser.add_argument("--spade-hidden", type=int, default=128, help="SPADE hidden channels (128)")
    parser.add_argument("--stride", type=int, default=None, help="slices between stacks (ceil(n / 2))")
    parser.add_argument("--batch-size", type=int, default=4, help="stacks per network call (4, the bundles')")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of each path, best kept (1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in every child (1)")
    parser.add_argument(
        "--memory-multiples", type=int, nargs="*", default=[1, 2], metavar="K",
        help="depths K x --depth for the peak-memory children (default 1 2; none: skip)",
    )  # fmt: skip
    parser.add_argument(
        "--default-malloc", action="store_true",
        help="measure memory with glibc's default malloc settings (noisier; see FIXED_MALLOC)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="phantom and noise seed (0)")
    parser.add_argument("--json", default=None, metavar="OUT", help="write every number to this JSON file")


# --- the work, shared by the children and the tests ----------------------------------------------


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The benchmark's settings as a plain (picklable, JSON-able) dict, defaults resolved."""
    n = int(args.num_slices)
    cfg = {
        "size": int(args.size),
        "volume_size": int(args.volume_size or args.size),
        "num_slices": n,
        "depth": int(args.depth),
        "classes": int(args.classes),
        "base_channels": int(args.base_channels),
        "channel_mults": [int(m) for m in args.channel_mults],
        "spade_hidden": int(args.spade_hidden),
        "stride": int(args.stride) if args.stride else math.ceil(n / 2),
        "batch_size": int(args.batch_size),
        "repeats": max(int(args.repeats), 1),
        "threads": int(args.threads),
        "memory_multiples": sorted({int(k) for k in (args.memory_multiples or []) if int(k) >= 1}),
        "seed": int(args.seed),
        "default_malloc": bool(getattr(args, "default_malloc", False)),
        "axis": 2,
    }
    if cfg["classes"] < 2 or min(cfg["size"], cfg["volume_size"], n, cfg["batch_size"]) < 1:
        raise ConfigError(
            "need --classes >= 2 and positive --size, --volume-size, --num-slices, --batch-size"
        )
    if cfg["depth"] < n:
        raise ConfigError(f"--depth {cfg['depth']} is smaller than --num-slices {n}")
    if not 1 <= cfg["stride"] <= n:
        raise ConfigError(f"--stride must be in 1..{n}, got {cfg['stride']}")
    return cfg


def stack_batches(depth: int, num_slices: int, stride: int, batch_size: int) -> list[list[int]]:
    """The stack starts the inferer uses, grouped into its batches."""
    from anatosynth_components.data import stack_starts

    starts = stack_starts(depth, num_slices, stride)
    return [starts[i : i + batch_size] for i in range(0, len(starts), batch_size)]


def make_label_volume(size: int, depth: int, classes: int, seed: int) -> tuple[np.ndarray, tuple]:
    """A procedural brain label map (OASIS seg35 ids) of shape (size, size, depth), uint8, and its
    spacing; ids above ``classes - 1`` are folded into ``1 .. classes - 1``."""
    from anatosynth_components.data.demo.brain import brain_phantom

    full = max(depth, 16)
    phantom = brain_phantom((max(size, 16), max(size, 16), full), seed)
    z0 = (full - depth) // 2
    label = phantom.label[:size, :size, z0 : z0 + depth]
    if int(label.max()) >= classes:
        label = np.where(label >= classes, (label - 1) % (classes - 1) + 1, label)
    return np.ascontiguousarray(label, dtype=np.uint8), tuple(float(s) for s in phantom.spacing)


def write_label_volume(path: Path, label: np.ndarray, spacing: Sequence[float]) -> Path:
    from anatosynth_components.atomic import write_nifti

    return write_nifti(path, label, np.diag([*spacing, 1.0]))


def build_network(cfg: dict[str, Any]):  # noqa: ANN201
    import torch

    from anatosynth_components.anatomask import AnatoMaskNet

    torch.manual_seed(cfg["seed"])
    net = AnatoMaskNet(
        cfg["classes"], cfg["num_slices"], (cfg["size"], cfg["size"]), base_channels=cfg["base_channels"],
        channel_mults=cfg["channel_mults"], spade_hidden=cfg["spade_hidden"],
    )  # fmt: skip
    return net.eval()


def build_inferer(cfg: dict[str, Any]):  # noqa: ANN201
    from anatosynth_components.anatomask import SliceStackInferer

    return SliceStackInferer(
        cfg["num_slices"], axis=cfg["axis"], stride=cfg["stride"], batch_size=cfg["batch_size"],
        spatial_size=(cfg["size"], cfg["size"]), noise_seed=cfg["seed"], progress=False,
    )  # fmt: skip


def build_pipeline(
    cfg: dict[str, Any],
    label_path: Path,
    output_dir: Path,
    network: Any,
    inferer: Any = None,
):  # noqa: ANN201
    """A ``SupervisedEvaluator`` wired as the bundles' ``inference.json`` (without the checkpoint
    loader: the network's weights do not change the work)."""
    import torch
    from monai.data import DataLoader, Dataset
    from monai.engines import SupervisedEvaluator
    from monai.transforms import Compose

    from anatosynth_components.anatomask import MaskToImageBatch
    from anatosynth_components.data import LoadVolumed, RemapLabelsd, SaveSynthesisd, ValidateVolumed

    preprocessing = Compose(
        [
            LoadVolumed(keys="image"),
            RemapLabelsd(keys="image", table=None),
            ValidateVolumed(image_key=None, label_key="image", label_ids=range(1, cfg["classes"])),
        ]
    )
    items = [{"image": str(label_path), "noise_seed": cfg["seed"], "sample": 0}]
    loader = DataLoader(Dataset(items, preprocessing), batch_size=1, shuffle=False, num_workers=0)
    postprocessing = Compose([SaveSynthesisd(keys="pred", output_dir=str(output_dir), num_samples=1)])
    return SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=loader,
        network=network,
        inferer=inferer if inferer is not None else build_inferer(cfg),
        prepare_batch=MaskToImageBatch(label_key="image", image_key=None),
        postprocessing=postprocessing,
    )


def bare_inputs(cfg: dict[str, Any], label: np.ndarray) -> list[tuple[Any, Any, Any]]:
    """(stacks, z_index, noise_seed) per network call, exactly as the inferer cuts them."""
    import torch

    inferer = build_inferer(cfg)
    volume = torch.movedim(torch.from_numpy(label.astype(np.float32))[None, None], cfg["axis"] + 2, 2)
    n = cfg["num_slices"]
    calls = []
    for batch in stack_batches(volume.shape[2], n, cfg["stride"], cfg["batch_size"]):
        stacks = inferer.resize(torch.cat([volume[:, :, s : s + n] for s in batch])).contiguous()
        z_index = torch.stack([torch.arange(s, s + n) for s in batch])
        seeds = torch.full((len(batch),), cfg["seed"], dtype=torch.long)
        calls.append((stacks, z_index, seeds))
    return calls


def bare_forward(network: Any, calls: Sequence[tuple[Any, Any, Any]]) -> list[Any]:
    import torch

    with torch.no_grad():
        return [network(stacks, z_index=z, noise_seed=s) for stacks, z, s in calls]


def blend_reference(cfg: dict[str, Any], preds: Sequence[Any], volume_shape: Sequence[int]) -> np.ndarray:
    """The bare outputs blended in float64 with ``blend_weights``: (X, Y, Z) like the input."""
    from anatosynth_components.anatomask import SliceStackInferer, blend_weights

    n, axis = cfg["num_slices"], cfg["axis"]
    moved = list(volume_shape)
    depth = moved.pop(axis)
    weights = blend_weights(n).double().numpy()
    acc = np.zeros((depth, *moved), dtype=np.float64)
    total = np.zeros(depth, dtype=np.float64)
    resize_back = SliceStackInferer(n, spatial_size=(cfg["size"], cfg["size"])).resize_back
    batches = stack_batches(depth, n, cfg["stride"], cfg["batch_size"])
    for batch, pred in zip(batches, preds, strict=True):
        pred = resize_back(pred, (len(batch), 1, n, *moved))
        for k, s in enumerate(batch):
            acc[s : s + n] += pred[k, 0].double().numpy() * weights[:, None, None]
            total[s : s + n] += weights
    return np.moveaxis(acc / total[:, None, None], 0, axis)


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class PeakMeter:
    """Peak resident set per phase: ``VmHWM`` of ``/proc/self/status``, reset through
    ``/proc/self/clear_refs`` (Linux >= 4.0; the reset also resets ``ru_maxrss``); ``available`` is
    False elsewhere."""

    def __init__(self) -> None:
        self.available = self._reset() and self._hwm() is not None

    @staticmethod
    def status(field: str = "VmHWM") -> float | None:
        """A memory line of ``/proc/self/status`` in MiB (``VmHWM`` peak, ``VmRSS`` current)."""
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith(f"{field}:"):
                        return int(line.split()[1]) / 1024.0
        except OSError:
            return None
        return None

    _hwm = status

    @staticmethod
    def _reset() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            return True
        except OSError:
            return False

    def lap(self) -> float | None:
        """Peak since the last lap (MiB), then reset."""
        if not self.available:
            return None
        peak = self._hwm()
        self._reset()
        return peak


class _MeteredInferer:
    """Calls the inferer and records the peak of the inference phase."""

    def __init__(self, inferer: Any, meter: PeakMeter, phases: dict[str, float | None]) -> None:
        self.inferer, self.meter, self.phases = inferer, meter, phases

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.phases["load"] = self.meter.lap()
        out = self.inferer(*args, **kwargs)
        self.phases["inference"] = self.meter.lap()
        return out


class ForwardClock:
    """Wall and CPU time spent inside ``network.forward`` (forward pre- and post-hooks), so a
    pipeline run splits into the network's time and everything else, measured in the same run."""

    def __init__(self, network: Any) -> None:
        self.wall = self.cpu = 0.0
        self.calls = 0
        self._start = (0.0, 0.0)
        network.register_forward_pre_hook(self._enter)
        network.register_forward_hook(self._leave)

    def _enter(self, *_: Any) -> None:
        self._start = (time.perf_counter(), time.process_time())

    def _leave(self, *_: Any) -> None:
        self.wall += time.perf_counter() - self._start[0]
        self.cpu += time.process_time() - self._start[1]
        self.calls += 1

    def reset(self) -> None:
        self.wall = self.cpu = 0.0
        self.calls = 0


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


# --- children -------------------------------------------------------------------------------------


def _setup(cfg: dict[str, Any]) -> None:
    import torch

    torch.set_num_threads(cfg["threads"])


def timing_child(cfg: dict[str, Any], label_path: str, warm_path: str, out_dir: str) -> dict[str, Any]:
    """(a) and (b), alternating, then the equivalence check; one process."""
    import nibabel as nib
    import torch

    _setup(cfg)
    net = build_network(cfg)
    label_img = nib.load(label_path)
    label = np.asarray(label_img.dataobj)
    calls = bare_inputs(cfg, label)
    # warm-up: the pipeline on a short volume (one batch of stacks), the bare forward on one batch
    build_pipeline(cfg, Path(warm_path), Path(out_dir) / "warmup", net).run()
    bare_forward(net, calls[:1])

    clock = ForwardClock(net)
    wall: dict[str, list[float]] = {"pipeline": [], "bare": []}
    cpu: dict[str, list[float]] = {"pipeline": [], "bare": []}
    net_wall: dict[str, list[float]] = {"pipeline": [], "bare": []}
    net_cpu: dict[str, list[float]] = {"pipeline": [], "bare": []}
    calls_made: dict[str, list[int]] = {"pipeline": [], "bare": []}
    preds: list[Any] = []
    out_path = None
    load_before = load_average()
    for r in range(cfg["repeats"]):
        order = ("pipeline", "bare") if r % 2 == 0 else ("bare", "pipeline")
        for mode in order:
            if mode == "pipeline":
                evaluator = build_pipeline(cfg, Path(label_path), Path(out_dir), net)
                clock.reset()
                start, start_cpu = time.perf_counter(), time.process_time()
                evaluator.run()
            else:
                clock.reset()
                start, start_cpu = time.perf_counter(), time.process_time()
                preds = bare_forward(net, calls)
            wall[mode].append(time.perf_counter() - start)
            cpu[mode].append(time.process_time() - start_cpu)
            net_wall[mode].append(clock.wall)
            net_cpu[mode].append(clock.cpu)
            calls_made[mode].append(clock.calls)
            if mode == "pipeline":
                out_path = evaluator.state.output[0]["pred_path"]
                del evaluator

    written = nib.load(out_path)
    synth = np.asarray(written.dataobj, dtype=np.float64)
    reference = blend_reference(cfg, preds, label.shape)
    return {
        "wall": wall,
        "cpu": cpu,
        "network_wall": net_wall,
        "network_cpu": net_cpu,
        "network_calls": calls_made,
        "load_average": {"before": load_before, "after": load_average()},
        "params": int(sum(p.numel() for p in net.parameters())),
        "threads": int(torch.get_num_threads()),
        "output_shape": list(synth.shape),
        "max_abs_diff": float(np.abs(synth - reference).max()) if synth.shape == reference.shape else None,
        "affine_equal": bool(np.allclose(written.affine, label_img.affine, atol=1e-6)),
        "output_range": [float(synth.min()), float(synth.max())],
        "peak_rss_mib": _rss_mib(),
    }


def memory_child(cfg: dict[str, Any], label_path: str, out_dir: str) -> dict[str, Any]:
    """(c): the pipeline alone, once, with peaks per phase."""
    import torch
    from ignite.engine import Events

    _setup(cfg)
    net = build_network(cfg)
    meter = PeakMeter()
    phases: dict[str, float | None] = {}
    inferer = _MeteredInferer(build_inferer(cfg), meter, phases)
    evaluator = build_pipeline(cfg, Path(label_path), Path(out_dir), net, inferer=inferer)
    evaluator.add_event_handler(Events.ITERATION_COMPLETED, lambda _: phases.update(save=meter.lap()))
    meter.lap()
    baseline = PeakMeter.status("VmRSS")
    start = time.perf_counter()
    evaluator.run()
    seconds = time.perf_counter() - start
    measured = [v for v in phases.values() if v is not None]
    return {
        "peak_rss_mib": max(measured) if meter.available and measured else _rss_mib(),
        "baseline_rss_mib": baseline,
        "phases_mib": phases,
        "seconds": seconds,
        "threads": int(torch.get_num_threads()),
    }


def _child_main(fn: Callable[..., dict[str, Any]], queue: Any, *args: Any) -> None:
    try:
        queue.put(("ok", fn(*args)))
    except BaseException:  # noqa: BLE001 - reported to the parent
        queue.put(("error", traceback.format_exc()))


class Child:
    """``fn(*args)`` in a fresh spawned process (so ``ru_maxrss`` is its own), with ``env`` added to
    its environment; ``result()`` waits for the value it returns."""

    def __init__(self, fn: Callable[..., dict[str, Any]], *args: Any, env: dict[str, str] | None = None):
        ctx = mp.get_context("spawn")
        self.queue = ctx.Queue()
        self.proc = ctx.Process(target=_child_main, args=(fn, self.queue, *args))
        saved = {k: os.environ.get(k) for k in (env or {})}
        os.environ.update(env or {})
        try:
            self.proc.start()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def result(self) -> dict[str, Any]:
        while True:
            try:
                status, value = self.queue.get(timeout=1.0)
                break
            except Exception:  # queue.Empty
                if not self.proc.is_alive():
                    raise RuntimeError(f"benchmark child died with exit code {self.proc.exitcode}") from None
        self.proc.join()
        if status != "ok":
            raise RuntimeError(f"benchmark child failed:\n{value}")
        return value


def in_child(fn: Callable[..., dict[str, Any]], *args: Any, env: dict[str, str] | None = None) -> dict:
    """Run ``fn(*args)`` in a fresh spawned process and return its result."""
    return Child(fn, *args, env=env).result()


# --- the run --------------------------------------------------------------------------------------


def benchmark(cfg: dict[str, Any], work: Path, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (a), (b), (c) in children and print the report; returns every number."""
    n, depth, size, vsize = cfg["num_slices"], cfg["depth"], cfg["size"], cfg["volume_size"]
    batches = stack_batches(depth, n, cfg["stride"], cfg["batch_size"])
    starts = [s for b in batches for s in b]
    computed = len(starts) * n
    overlap = computed / depth
    label, spacing = make_label_volume(vsize, depth, cfg["classes"], cfg["seed"])
    label_path = write_label_volume(work / "labels" / "volume.nii.gz", label, spacing)
    warm_depth = min(depth, n + cfg["stride"] * (cfg["batch_size"] - 1))
    warm_path = write_label_volume(work / "warmup" / "warmup.nii.gz", label[..., :warm_depth], spacing)
    result: dict[str, Any] = {"config": cfg, "cpus": os.cpu_count()}
    result["stacks"] = {
        "count": len(starts),
        "batches": len(batches),
        "starts": starts,
        "slices_computed": computed,
        "output_slices": depth,
        "overlap_factor": overlap,
    }

    resize = f", resized to {size} x {size} and back" if vsize != size else " (no resizing)"
    echo("anatosynth benchmark inference: bundle inference path vs bare network forward, same stacks")
    echo(
        f"volume: brain phantom labels {vsize} x {vsize} x {depth} (uint8 NIfTI, "
        f"{label_path.stat().st_size / 1024:.0f} kB on disk), stacks along axis {cfg['axis']}{resize}"
    )
    more = ", ..." if len(starts) > 6 else ""
    shown = ", ".join(map(str, starts[:4])) + (more + f", {starts[-2]}, {starts[-1]}" if more else "")
    echo(
        f"stacks: n = {n}, stride {cfg['stride']}, batch {cfg['batch_size']}: {len(starts)} stacks "
        f"(starts {shown}) in {len(batches)} calls -> {computed} slices computed for {depth} output "
        f"slices: overlap factor {overlap:.3f} (paid by both paths)"
    )
    echo(
        "pipeline: LoadVolumed -> RemapLabelsd -> ValidateVolumed -> DataLoader -> SupervisedEvaluator"
        "(MaskToImageBatch, SliceStackInferer) -> SaveSynthesisd (.nii.gz), as inference.json"
    )
    echo("bare: AnatoMaskNet.forward on the same batches of stacks (cut beforehand), no blending, no I/O")

    timing = in_child(timing_child, cfg, str(label_path), str(warm_path), str(work / "out"))
    result["timing"] = timing
    echo(
        f"network: AnatoMaskNet {cfg['classes']} classes, n = {n}, {size} x {size}, base channels "
        f"{cfg['base_channels']} x {cfg['channel_mults']}, SPADE hidden {cfg['spade_hidden']} "
        f"({timing['params'] / 1e6:.2f} M parameters), GNN-SIF + 3D-SNI; "
        f"torch threads {timing['threads']} of {os.cpu_count()} CPUs"
    )
    r = cfg["repeats"]
    echo(f"\ntiming ({r} run{'s' if r > 1 else ''} of each, alternating, after one warm-up batch each):")
    best = {m: min(timing["wall"][m]) for m in ("pipeline", "bare")}
    med = {m: statistics.median(timing["wall"][m]) for m in ("pipeline", "bare")}
    best_cpu = {m: min(timing["cpu"][m]) for m in ("pipeline", "bare")}
    for mode in ("pipeline", "bare"):
        extra = f" ({computed / best[mode]:.2f} computed slices/s)" if mode == "bare" else ""
        spread = f", median {med[mode]:.2f} s" if r > 1 else ""
        echo(
            f"  {mode:8s} wall {best[mode]:7.2f} s{spread}   CPU {best_cpu[mode]:7.2f} s   "
            f"-> {depth / best[mode]:.3f} output slices/s{extra}"
        )
    overhead = best["pipeline"] / best["bare"] - 1.0
    overhead_cpu = best_cpu["pipeline"] / best_cpu["bare"] - 1.0
    overhead_med = med["pipeline"] / med["bare"] - 1.0
    med_text = f", median {overhead_med * 100:+.1f} %" if r > 1 else ""
    echo(
        f"  pipeline / bare - 1 (separate runs): wall {overhead * 100:+.1f} %{med_text}; CPU "
        f"{overhead_cpu * 100:+.1f} %"
    )
    # the same pipeline run split into network forward and the rest: free of drift between runs
    splits = [
        (w - nw) / nw
        for w, nw in zip(timing["wall"]["pipeline"], timing["network_wall"]["pipeline"], strict=True)
    ]
    splits_cpu = [
        (c - nc) / nc
        for c, nc in zip(timing["cpu"]["pipeline"], timing["network_cpu"]["pipeline"], strict=True)
    ]
    i = int(np.argmin(timing["wall"]["pipeline"]))
    added = timing["wall"]["pipeline"][i] - timing["network_wall"]["pipeline"][i]
    split, split_cpu = splits[i], splits_cpu[i]
    echo(
        f"  split of the (best) pipeline run: network forward {timing['network_wall']['pipeline'][i]:.2f} s "
        f"in {timing['network_calls']['pipeline'][i]} calls, everything else (load, validate, collate, "
        f"stacking, blending, save, engine) {added:.2f} s = {split * 100:+.1f} % of the network time "
        f"(CPU {split_cpu * 100:+.1f} %)   (target <= {TARGET_OVERHEAD * 100:.0f} %)"
    )
    drift = min(timing["network_wall"]["pipeline"]) / min(timing["network_wall"]["bare"])
    load = timing["load_average"]
    echo(
        f"  same network calls, pipeline run / bare run: {drift:.3f} (1 on a quiet machine; the rest of "
        f"pipeline / bare - 1 is drift between runs); load average (1, 5, 15 min) "
        f"{load['before']} -> {load['after']} on {os.cpu_count()} CPUs"
    )
    diff = timing["max_abs_diff"]
    equal = diff is not None and diff < 1e-5 and timing["affine_equal"]
    echo(
        f"check: pipeline output on disk {tuple(timing['output_shape'])} == blend of the bare outputs "
        f"(float64, blend_weights): max |diff| = "
        f"{'shape mismatch' if diff is None else f'{diff:.1e}'}; affine as the input: "
        f"{timing['affine_equal']} -> {'OK' if equal else 'FAILED'}"
    )
    result["overhead"] = {
        "wall_best": overhead,
        "wall_median": overhead_med,
        "cpu_best": overhead_cpu,
        "split_wall": split,
        "split_cpu": split_cpu,
        "split_wall_runs": splits,
        "network_pipeline_over_bare": drift,
    }
    result["throughput"] = {
        "pipeline_output_slices_per_s": depth / best["pipeline"],
        "bare_output_slices_per_s": depth / best["bare"],
        "bare_computed_slices_per_s": computed / best["bare"],
    }
    result["check"] = {"max_abs_diff": diff, "affine_equal": timing["affine_equal"], "ok": equal}

    memory = run_memory(cfg, label, spacing, work, echo)
    result["memory"] = memory
    targets = {"overhead": split <= TARGET_OVERHEAD}
    line = (
        f"\nsummary: stacking, blending and I/O add {split * 100:+.1f} % (in-run split; pipeline / bare - 1 "
        f"= {overhead * 100:+.1f} %) <= {TARGET_OVERHEAD * 100:.0f} %: "
        f"{'PASS' if targets['overhead'] else 'FAIL'}; "
    )
    if memory.get("growth_ratio") is not None:
        targets["memory"] = memory["growth_ratio"] <= 1.0 + MEMORY_TOLERANCE
        line += (
            f"memory growth {memory['growth_ratio']:.2f} x (output + input) per slice "
            f"<= {1 + MEMORY_TOLERANCE:.2f}: {'PASS' if targets['memory'] else 'FAIL'}; "
        )
    else:
        line += "memory growth: not measured (needs two --memory-multiples); "
    line += f"equivalence: {'OK' if equal else 'FAILED'}"
    echo(line)
    result["targets"] = targets
    return result


#: glibc settings of the memory children: every allocation of 64 KiB or more gets its own mapping,
#: returned to the system when freed, so the resident set follows the live memory.  glibc's default
#: (a threshold that grows as blocks are freed) keeps freed activations in the heap and makes the
#: peak depend on allocation history (+-50 MB between runs at the defaults, more than the volumes).
FIXED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


def run_memory(
    cfg: dict[str, Any], label: np.ndarray, spacing: tuple, work: Path, echo: Callable[[str], None]
) -> dict[str, Any]:
    """(c): one child per depth, as many at once as the CPUs allow at ``--threads`` each."""
    multiples = cfg["memory_multiples"]
    env = {} if cfg["default_malloc"] else FIXED_MALLOC
    out: dict[str, Any] = {"depths": [], "runs": [], "malloc_env": env}
    if not multiples:
        return out
    vsize, depth, axis = cfg["volume_size"], cfg["depth"], cfg["axis"]
    slice_bytes = vsize * vsize * 4
    at_once = max(1, (os.cpu_count() or 1) // max(cfg["threads"], 1))
    how = " ".join(f"{k}={v}" for k, v in env.items()) or "glibc's default malloc"
    echo(
        f"\nmemory (pipeline alone, one child process per depth, up to {at_once} at once; {how}; "
        "peak RSS in MiB):"
    )
    paths = {}
    for k in multiples:
        z_spacing = list(spacing)
        z_spacing[axis] /= k
        volume = np.repeat(label, k, axis=axis)
        paths[k] = write_label_volume(work / "labels" / f"volume_x{k}.nii.gz", volume, z_spacing)
    results: dict[int, dict[str, Any]] = {}
    for i in range(0, len(multiples), at_once):
        wave = multiples[i : i + at_once]
        children = {
            k: Child(memory_child, cfg, str(paths[k]), str(work / f"out_x{k}"), env=env) for k in wave
        }
        results.update({k: child.result() for k, child in children.items()})
    for k in multiples:
        run = results[k]
        run["depth"] = depth * k
        out["runs"].append(run)
        out["depths"].append(depth * k)
        ph = run["phases_mib"]
        phases = (
            f"; phase peaks: load {ph['load']:.1f}, inference {ph['inference']:.1f}, save {ph['save']:.1f}"
            if all(ph.get(p) is not None for p in PHASES)
            else ""
        )
        base = run["baseline_rss_mib"]
        echo(
            f"  depth {depth * k:5d}: peak {run['peak_rss_mib']:8.1f}  (resident before the run "
            f"{base if base is not None else float('nan'):.1f}{phases}; {run['seconds']:.1f} s)"
        )
        shutil.rmtree(work / f"out_x{k}", ignore_errors=True)
        paths[k].unlink(missing_ok=True)
    out["slice_bytes_output"] = slice_bytes
    out["slice_bytes_input"] = slice_bytes
    if len(out["runs"]) >= 2:
        first, last = out["runs"][0], out["runs"][-1]
        extra = last["depth"] - first["depth"]
        growth = (last["peak_rss_mib"] - first["peak_rss_mib"]) * MiB / extra
        allowed = 2 * slice_bytes
        out["growth_bytes_per_slice"] = growth
        out["allowed_bytes_per_slice"] = allowed
        out["growth_ratio"] = growth / allowed
        echo(
            f"  growth of the peak from depth {first['depth']} to {last['depth']}: "
            f"{growth / 1024:.1f} KiB per extra slice vs {allowed / 1024:.1f} KiB = one output slice "
            f"+ one input slice ({slice_bytes / 1024:.1f} KiB each, float32 {vsize} x {vsize}): "
            f"ratio {out['growth_ratio']:.2f} (target <= 1 + tolerance {MEMORY_TOLERANCE:.2f})"
        )
        per_phase = {}
        for p in PHASES:
            a, b = first["phases_mib"].get(p), last["phases_mib"].get(p)
            if a is not None and b is not None:
                per_phase[p] = (b - a) * MiB / extra / slice_bytes
        if len(per_phase) == len(PHASES):
            out["phase_growth_slices_per_slice"] = per_phase
            echo(
                "  growth per extra slice of each phase's peak, in float32 slices: "
                + ", ".join(f"{p} {v:.2f}" for p, v in per_phase.items())
                + f" (the run's peak is the {max(PHASES, key=lambda p: last['phases_mib'][p])} phase)"
            )
    return out


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    work = Path(tempfile.mkdtemp(prefix="anatosynth-bench-inference-"))
    try:
        result = benchmark(cfg, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"numbers written to {args.json}")
    return 0 if result["check"]["ok"] else 1
