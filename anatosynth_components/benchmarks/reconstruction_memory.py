"""``anatosynth benchmark reconstruction-memory``: peak memory of the reconstruction experiment's data
path against the number of PENet studies.

On demo PENet datasets of ``--studies`` sizes (default 16 and 64 studies of ``--shape`` 128 x 128 x 48,
made by the repository's demo generator, ``generate_demo("penet", ...)``, as the experiment's
``dataset_root`` makes its demo), each in its own child process (``python -m
anatosynth_components.benchmarks.reconstruction_memory SPEC``), the data path of the
reconstruction grid runs as the experiment runs it
(:class:`~anatosynth_components.experiments.reconstruction.ReconstructionData`):

1. the split (nested baseline and upper-bound scans) and the test slices' index;
2. the training datasets of the arms ``baseline``, ``augment`` and ``upper_bound``, and a stand-in
   ACIS arm: the baseline's slices + ``--synthetic-slices`` 2-D synthetic NIfTI slices mixed into
   every batch at 1 : 1 (the experiments' ``MixedBatchSampler``), the same files for every size;
3. for each arm and ``--tasks`` task, ``--batches`` training batches of ``--batch-size`` slices drawn
   as training draws them (uniformly with replacement), degraded on the fly (``DegradeBatch``);
4. every test slice streamed, degraded with its per-slice seed and scored (PSNR, SSIM) with a trivial
   network: the degraded input itself, bilinearly upsampled for SR.

Each child reports its peak resident set, ``VmHWM`` of ``/proc/self/status`` (the high-water mark of
its own address space), its resident set before the data path (after imports), and the slice store's
counters.  The judged peak is ``VmHWM``: the child's ``getrusage`` ``ru_maxrss`` is printed too, but
Linux carries into it, across ``exec``, the resident set of the forked copy of the parent (here the
process that generated the datasets), so it overstates the child's own peak; ``ru_maxrss`` is used
only where ``/proc`` is missing.  glibc's
malloc is set to return freed blocks of 64 KiB or more to the system (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``; ``--default-malloc`` turns that off), so the peak follows live memory
rather than allocation history.  The slice cache is bounded by ``--cache-mib`` (default 32 MiB).

Target: the peak of the largest dataset is at most ``1 + --tolerance`` (default 1.10) times the peak
of the smallest: memory does not grow with the number of studies.  Prints PASS or FAIL; exit status 1
on FAIL.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HELP = "reconstruction data path: peak RSS on demo PENet datasets of 16 and 64 studies (must not grow)"
TOLERANCE = 0.10
FIXED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
ARMS = ("baseline", "augment", "upper_bound")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--studies", type=int, nargs="+", default=[16, 64], metavar="N",
        help="demo PENet dataset sizes, each run in its own child process (default 16 64)",
    )  # fmt: skip
    parser.add_argument(
        "--shape", type=int, nargs=3, default=[128, 128, 48], metavar=("X", "Y", "Z"),
        help="demo study shape (default 128 128 48)",
    )  # fmt: skip
    parser.add_argument(
        "--spatial-size", type=int, nargs=2, default=[128, 128], metavar=("H", "W"),
        help="slice size of the experiment, spatial_size (default 128 128)",
    )  # fmt: skip
    parser.add_argument("--slice-stride", type=int, default=1, help="slice_stride (default 1)")
    parser.add_argument("--baseline-scans", type=int, default=8, help="baseline_scans (default 8)")
    parser.add_argument("--upper-bound-scans", type=int, default=80, help="upper_bound_scans (default 80)")
    parser.add_argument(
        "--tasks", nargs="+", default=["sr2", "noise0.1"], help="tasks (default sr2 noise0.1)"
    )
    parser.add_argument("--batches", type=int, default=20, help="training batches per arm and task (20)")
    parser.add_argument("--batch-size", type=int, default=16, help="training batch size (16)")
    parser.add_argument("--eval-batch-size", type=int, default=16, help="eval_batch_size (16)")
    parser.add_argument(
        "--cache-mib", type=float, default=32.0, help="slice cache bound, cache_bytes (32 MiB)"
    )
    parser.add_argument(
        "--synthetic-slices", type=int, default=8,
        help="2-D synthetic stand-in slices of the ACIS arm (default 8; 0: no stand-in arm)",
    )  # fmt: skip
    parser.add_argument(
        "--tolerance", type=float, default=TOLERANCE,
        help=f"allowed growth of the peak from the smallest to the largest dataset (default {TOLERANCE})",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="demo data and sampling seed (0)")
    parser.add_argument("--work", help="folder for the demo datasets (default: a temporary folder, removed)")
    parser.add_argument("--default-malloc", action="store_true", help="glibc's default malloc settings")
    parser.add_argument("--json", metavar="OUT", help="write every number to this JSON file")


# --- the child -------------------------------------------------------------------------------------


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """The data path on one dataset (run in a fresh process: its peak RSS is the measurement)."""
    import torch
    from monai.data import DataLoader
    from torch.utils.data import ConcatDataset, RandomSampler

    from anatosynth_components.data.degradations import parse_task
    from anatosynth_components.experiments import reconstruction
    from anatosynth_components.experiments.mixed_batches import MixedBatchSampler, real_per_batch

    torch.set_num_threads(1)
    before = _status_kib("VmRSS")
    t0 = time.perf_counter()
    config = {
        **reconstruction.SCALES["demo"],
        "dataset_dir": spec["dataset_dir"],
        "spatial_size": spec["spatial_size"],
        "slice_stride": spec["slice_stride"],
        "tasks": spec["tasks"],
        "networks": ["resnet"],
        "arms": list(ARMS),
        "baseline_scans": spec["baseline_scans"],
        "upper_bound_scans": spec["upper_bound_scans"],
        "batch_size": spec["batch_size"],
        "eval_batch_size": spec["eval_batch_size"],
        "cache_bytes": spec["cache_bytes"],
        "seed": spec["seed"],
        "scale": "benchmark",
    }
    config = reconstruction.resolve_config(config)
    data = reconstruction.ReconstructionData(config, Path(spec["dataset_dir"]))
    loaders = {arm: data.train_dataset(arm) for arm in ARMS}
    sizes = {arm: len(ds) for arm, ds in loaders.items()}
    synthetic = None
    if spec["synthetic"]:
        synthetic = data.synthetic_dataset(
            [{"image": p, "subject": f"synthetic:{i}"} for i, p in enumerate(spec["synthetic"])]
        )
        sizes["acis (stand-in)"] = len(loaders["baseline"])
    drawn = 0
    cpu = torch.device("cpu")
    for name in spec["tasks"]:
        task = parse_task(name)
        for arm in [*ARMS, *(["acis (stand-in)"] if synthetic is not None else [])]:
            if arm == "acis (stand-in)":
                real = real_per_batch(spec["batch_size"])
                sampler = MixedBatchSampler(
                    len(loaders["baseline"]),
                    len(synthetic),
                    spec["batch_size"],
                    real,
                    spec["batches"],
                    spec["seed"],
                )
                loader = DataLoader(ConcatDataset([loaders["baseline"], synthetic]), batch_sampler=sampler)
            else:
                generator = torch.Generator().manual_seed(spec["seed"])
                n = spec["batches"] * spec["batch_size"]
                sampler = RandomSampler(loaders[arm], replacement=True, num_samples=n, generator=generator)
                loader = DataLoader(loaders[arm], batch_size=spec["batch_size"], sampler=sampler)
            prepare = reconstruction.DegradeBatch(task, "resnet", spec["seed"])
            for batch in loader:
                x, y = prepare(batch, cpu)
                drawn += len(y)
    psnr = {}
    for name in spec["tasks"]:
        scores = data.evaluate(None, parse_task(name))
        psnr[name] = sum(scores["per_slice"]["psnr"]) / len(scores["per_slice"]["psnr"])
    return {
        "studies": spec["studies"],
        "training_scans": len(data.split["training"]),
        "test_scans": len(data.split["test"]),
        "train_slices": sizes,
        "test_slices": len(data.test_refs),
        "slices_drawn": drawn,
        "input_psnr": psnr,
        "store": data.store.stats(),
        "rss_before_mib": None if before is None else before / 1024,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "vmhwm_mib": None if _status_kib("VmHWM") is None else _status_kib("VmHWM") / 1024,
        "wall_s": round(time.perf_counter() - t0, 2),
    }


def child_main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    print(json.dumps(measure(spec)))
    return 0


# --- the parent ------------------------------------------------------------------------------------


def write_synthetic_slices(folder: Path, count: int, shape: list[int], seed: int) -> list[str]:
    """``count`` 2-D synthetic stand-in slices (NIfTI, HU): axial slices of a demo chest phantom."""
    import numpy as np

    from anatosynth_components.atomic import write_nifti
    from anatosynth_components.data.demo.chest import chest_phantom

    if count == 0:
        return []
    phantom = chest_phantom(tuple(shape), np.random.default_rng([seed, 99]), contrast=True)
    volume = np.asarray(phantom.image, dtype=np.float32)
    zs = np.linspace(0, volume.shape[2] - 1, count).round().astype(int)
    return [
        str(write_nifti(folder / f"slice_{i:03d}.nii.gz", volume[:, :, z], np.eye(4)))
        for i, z in enumerate(zs)
    ]


def run_child(spec: dict[str, Any], work: Path, env: dict[str, str]) -> dict[str, Any]:
    path = work / f"spec_{spec['studies']}.json"
    path.write_text(json.dumps(spec))
    cmd = [sys.executable, "-m", "anatosynth_components.benchmarks.reconstruction_memory", str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env}, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child ({spec['studies']} studies) failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def benchmark(args: argparse.Namespace, work: Path, echo: Any = print) -> dict[str, Any]:
    from anatosynth_components.data.demo.generate import generate_demo

    studies = sorted(set(args.studies))
    if len(studies) < 2:
        raise SystemExit("--studies: give at least two different dataset sizes")
    synthetic = write_synthetic_slices(work / "synthetic", args.synthetic_slices, args.shape, args.seed)
    env = {"OMP_NUM_THREADS": "1", **({} if args.default_malloc else FIXED_MALLOC)}
    runs = []
    for n in studies:
        root = generate_demo(
            "penet", work / f"penet_{n}", subjects=n, seed=args.seed, shape=args.shape, progress=False
        )
        spec = {
            "studies": n,
            "dataset_dir": str(root),
            "spatial_size": list(args.spatial_size),
            "slice_stride": args.slice_stride,
            "tasks": list(args.tasks),
            "baseline_scans": args.baseline_scans,
            "upper_bound_scans": args.upper_bound_scans,
            "batch_size": args.batch_size,
            "eval_batch_size": args.eval_batch_size,
            "batches": args.batches,
            "cache_bytes": int(args.cache_mib * 2**20),
            "seed": args.seed,
            "synthetic": synthetic,
        }
        runs.append(run_child(spec, work, env))
    first, last = runs[0], runs[-1]
    ratio = _peak(last) / _peak(first)
    ok = ratio <= 1 + args.tolerance
    echo(
        f"reconstruction data path, demo PENet studies {args.shape[0]}x{args.shape[1]}x{args.shape[2]} -> "
        f"slices {args.spatial_size[0]}x{args.spatial_size[1]}, stride {args.slice_stride}; cache "
        f"{args.cache_mib:g} MiB; {args.batches} batches of {args.batch_size} per arm and task "
        f"({', '.join(args.tasks)}); malloc {'default' if args.default_malloc else 'trimmed (64 KiB mmap)'}"
    )
    header = f"{'studies':>7} {'train':>5} {'test':>4} {'train slices per arm':<44} {'test slices':>11} "
    header += f"{'RSS before':>10} {'peak (VmHWM)':>12} {'ru_maxrss':>10} {'wall':>6}"
    echo(header)
    for r in runs:
        arms = "/".join(str(v) for v in r["train_slices"].values())
        scans = f"{r['studies']:>7} {r['training_scans']:>5} {r['test_scans']:>4}"
        rss = f"{r['rss_before_mib'] or 0:>6.1f} MiB {_peak(r):>8.1f} MiB {r['peak_rss_mib']:>6.1f} MiB"
        echo(f"{scans} {arms:<44} {r['test_slices']:>11} {rss} {r['wall_s']:>5.1f}s")
    echo(f"  (train slices per arm: {' / '.join(first['train_slices'])})")
    growth = [_peak(r) - (r["rss_before_mib"] or 0) for r in (first, last)]
    echo(
        f"data path alone (peak - RSS before): {growth[0]:.1f} MiB -> {growth[1]:.1f} MiB "
        f"(+{growth[1] - growth[0]:.1f} MiB for {last['studies'] - first['studies']} more studies)"
    )
    echo(
        f"peak RSS (VmHWM) ratio {last['studies']} / {first['studies']} studies: {ratio:.3f} "
        f"(limit {1 + args.tolerance:.2f}): {'PASS' if ok else 'FAIL'}"
    )
    peaks = {r["studies"]: _peak(r) for r in runs}
    return {"runs": runs, "peak_mib": peaks, "ratio": ratio, "tolerance": args.tolerance, "pass": ok}


def _peak(result: dict[str, Any]) -> float:
    """The judged peak of a child (MiB): ``VmHWM``, else ``ru_maxrss``."""
    return result["vmhwm_mib"] if result["vmhwm_mib"] is not None else result["peak_rss_mib"]


def run(args: argparse.Namespace) -> int:
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="anatosynth-bench-recon-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        result = benchmark(args, work)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"numbers written to {args.json}")
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
