"""``anatosynth benchmark pseudomask``: the ACIS pseudo-mask fast path against a naive reference.

Both run in this one process, pinned to one CPU core (``os.sched_setaffinity``, the core that was
idlest over a short sample of /proc/stat; the BLAS thread pools of NumPy and SciPy are set to one
thread through their ``*_set_num_threads`` entry points, torch's with ``torch.set_num_threads(1)``),
on two volumes:

1. the CT given with ``--volume PATH`` (a real scan, e.g. a 122 x 101 x 30 thorax-abdomen CT of
   3 mm voxels); without ``--volume``, a generated chest CT phantom (the ACIS demo data's
   generator, ``--phantom-shape``, default 96 x 96 x 80), and the output says so: its timings
   and checks are those of a phantom, not of a real scan;
2. the same volume resampled (trilinear) to ``--resampled-shape`` (default 192 x 192 x 160, the
   paper's 3D size), keeping its field of view.

Fast path: :func:`anatosynth_components.acis.pseudomask.pseudo_mask` (Canny, exact grid KDE by separable
matrix products, sampling, separable Voronoi), best of ``--repeats`` runs, with a per-stage split.

Naive reference: ``scipy.stats.gaussian_kde`` over the edge points (with
the isotropic kernel covariance h^2 I in mm, i.e. Eq. 1 up to its constant) evaluated voxel by
voxel, then a ``scipy.spatial.cKDTree`` query of every voxel for its nearest seed. Canny and the
sampling are shared with the fast path and counted in both totals. The naive KDE costs
O(edge points x voxels) (minutes to hours here), so it is evaluated on ``--naive-voxels`` voxels
drawn uniformly at random (seeded) and its time extrapolated linearly to all voxels; the output says
so. ``--naive-voxels 0`` evaluates it at every voxel. The KD-tree query always runs in full.

Checks: the fast density equals the naive KDE (scaled by the constant) at the evaluated voxels, and
both Voronoi assignments agree at every voxel (where they differ, the two seeds must be at exactly
the same distance: a tie, which each method breaks its own way). Exit status 1 if a check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HELP = "ACIS pseudo-mask: fast path vs naive KDE + KD-tree reference (a CT and it at 192x192x160)"
BIG_SHAPE = (192, 192, 160)
TARGET_RATIO = 50.0
TARGET_SECONDS = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--volume", metavar="PATH",
        help="the CT to benchmark (NIfTI, in HU); default: a generated chest CT phantom (said in the output)",
    )  # fmt: skip
    parser.add_argument(
        "--phantom-shape", type=int, nargs=3, default=None, metavar=("X", "Y", "Z"),
        help="shape of the generated phantom without --volume (default 96 96 80)",
    )  # fmt: skip
    parser.add_argument(
        "--resampled-shape", type=int, nargs=3, default=list(BIG_SHAPE), metavar=("X", "Y", "Z"),
        help="the second volume: the first resampled to this shape (default 192 192 160, the paper's)",
    )  # fmt: skip
    parser.add_argument("--num-points", type=int, default=4096, help="seeds N (default 4096)")
    parser.add_argument("--bandwidth-mm", type=float, default=None, help="h in mm (default: the package's)")
    parser.add_argument("--repeats", type=int, default=3, help="fast-path runs per volume, best reported (3)")
    parser.add_argument(
        "--naive-voxels", type=int, default=2000,
        help="voxels at which the naive KDE is evaluated, then extrapolated (default 2000; 0: all voxels)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")


# --- one core -----------------------------------------------------------------------------------


def _blas_libraries() -> list[str]:
    try:
        with open("/proc/self/maps") as fh:
            return sorted({line.split()[-1] for line in fh if "blas" in line.lower() and ".so" in line})
    except OSError:
        return []


def limit_blas_threads(num: int) -> list[str]:
    """Set the thread count of every loaded OpenBLAS (what threadpoolctl does, which is not installed)."""
    done = []
    for path in _blas_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in (
            "scipy_openblas_set_num_threads64_",
            "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_",
            "openblas_set_num_threads",
        ):
            if hasattr(lib, symbol):
                getattr(lib, symbol)(int(num))
                done.append(f"{Path(path).name}:{symbol}")
                break
    return done


def _idle_shares(cores: set[int], interval: float = 0.3) -> dict[int, float]:
    """Share of ``interval`` seconds each core spent idle (from /proc/stat); empty if unavailable."""

    def sample() -> dict[int, tuple[int, int]]:
        out = {}
        with open("/proc/stat") as fh:
            for line in fh:
                name, *fields = line.split()
                if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cores:
                    ticks = [int(f) for f in fields]
                    out[int(name[3:])] = (ticks[3] + ticks[4], sum(ticks))  # idle + iowait, total
        return out

    try:
        first = sample()
        time.sleep(interval)
        second = sample()
    except (OSError, ValueError, IndexError):
        return {}
    return {
        c: (second[c][0] - first[c][0]) / max(second[c][1] - first[c][1], 1) for c in first if c in second
    }


@contextlib.contextmanager
def one_core() -> Iterator[str]:
    """Pin this process to one CPU core and single-threaded BLAS / torch; yields a description.

    The core is the allowed one that was idle longest over a short sample (the lowest-numbered
    on a tie or when /proc/stat is unreadable), so that other work on the machine disturbs the
    timings as little as possible."""
    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    idle = _idle_shares(before) if before else {}
    core = (max(sorted(idle), key=lambda c: idle[c]) if idle else min(before)) if before else None
    if core is not None:
        os.sched_setaffinity(0, {core})
    blas = limit_blas_threads(1)
    torch_threads = None
    with contextlib.suppress(ImportError):
        import torch

        torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)
    available = len(before) if before else os.cpu_count()
    busy = f", {100 * (1 - idle[core]):.0f} % busy just before" if core in idle else ""
    text = (
        f"pinned to CPU core {core}{busy} (1 core used of {available} available); "
        f"BLAS set to 1 thread in {len(blas)} librar{'y' if len(blas) == 1 else 'ies'}; torch threads 1"
    )
    try:
        yield text
    finally:
        if before:
            os.sched_setaffinity(0, before)
        if torch_threads:
            import torch

            torch.set_num_threads(torch_threads)


# --- naive reference ----------------------------------------------------------------------------


def isotropic_kde(points_mm: np.ndarray, bandwidth_mm: float):  # noqa: ANN201
    """``scipy.stats.gaussian_kde`` with the kernel covariance fixed to ``h^2 I`` (mm).

    gaussian_kde only offers a covariance proportional to the data's; its documented extension point
    ``_compute_covariance`` is overridden to set ``h^2 I`` instead.
    """
    from scipy.stats import gaussian_kde

    class _IsotropicKDE(gaussian_kde):
        def _compute_covariance(self) -> None:
            self.factor = 1.0
            self._data_covariance = np.eye(self.d) * bandwidth_mm**2
            self._data_cho_cov = np.eye(self.d) * bandwidth_mm
            self.covariance = self._data_covariance
            self.cho_cov = self._data_cho_cov.astype(np.float64)
            self.log_det = 2 * self.d * np.log(bandwidth_mm * np.sqrt(2 * np.pi))

    return _IsotropicKDE(points_mm.T)


@dataclass
class Result:
    name: str
    shape: tuple[int, ...]
    spacing: np.ndarray
    fast: dict[str, float] = field(default_factory=dict)
    naive: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    ok: bool = True


def _best(fn: Callable[[], object], repeats: int, cpu: list[float] | None = None) -> tuple[float, object]:
    """Best wall time of ``repeats`` runs (and, into ``cpu``, the best CPU time of this process)."""
    best, best_cpu, out = np.inf, np.inf, None
    for _ in range(max(repeats, 1)):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn()
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    if cpu is not None:
        cpu.append(best_cpu)
    return best, out


def bench_volume(
    name: str, image: np.ndarray, spacing: np.ndarray, args: argparse.Namespace, bandwidth: float
) -> Result:
    from scipy.spatial import cKDTree

    from anatosynth_components.acis.pseudomask import (
        canny_edges,
        edge_density,
        pseudo_mask,
        sample_without_replacement,
        sampling_weights,
        voronoi_fill,
    )

    res = Result(name, image.shape, spacing)
    m = image.size

    def run_fast():  # noqa: ANN202
        return pseudo_mask(image, args.num_points, args.seed, spacing=spacing, bandwidth_mm=bandwidth)

    cpu: list[float] = []
    res.fast["total"], result = _best(run_fast, args.repeats, cpu)
    res.fast["total_cpu"] = cpu[0]
    # the same stages one by one, for the split (best of the repeats each)
    res.fast["canny"], edges = _best(lambda: canny_edges(image), args.repeats)
    res.fast["density"], density = _best(lambda: edge_density(edges, bandwidth, spacing), args.repeats)

    def sample():  # noqa: ANN202
        weights = sampling_weights(density)
        return sample_without_replacement(weights, args.num_points, np.random.default_rng(args.seed))

    res.fast["sampling"], _ = _best(sample, args.repeats)
    res.fast["voronoi"], _ = _best(lambda: voronoi_fill(image, result.seeds, spacing), args.repeats)

    # naive KDE at a random subset of voxels (or all), extrapolated linearly
    edge_idx = np.argwhere(edges)
    kde = isotropic_kde(edge_idx * spacing, bandwidth)
    rng = np.random.default_rng(args.seed + 1)
    count = m if args.naive_voxels <= 0 or args.naive_voxels >= m else args.naive_voxels
    subset = np.arange(m) if count == m else np.sort(rng.choice(m, count, replace=False))
    query = np.stack(np.unravel_index(subset, image.shape), axis=1)
    start = time.perf_counter()
    naive_f = kde(query.T * spacing[:, None])
    elapsed = time.perf_counter() - start
    res.naive["kde"] = elapsed * m / count
    res.naive["kde_measured"] = elapsed
    res.naive["kde_voxels"] = count
    res.naive["edge_points"] = len(edge_idx)
    # Eq. 1 vs gaussian_kde: f = kde * (2 pi)^((d - 1) / 2) * h^d
    constant = (2 * np.pi) ** ((image.ndim - 1) / 2) * bandwidth**image.ndim
    fast_f = density.reshape(-1)[subset].astype(np.float64)
    err = np.abs(fast_f - naive_f * constant).max() / max(float(density.max()), 1e-300)
    res.naive["kde_error"] = err
    if err > 1e-5:
        res.ok = False
        res.notes.append(f"density differs from the naive KDE by {err:.2e} of the max")

    # naive Voronoi: KD-tree query of every voxel (in mm), in full
    start = time.perf_counter()
    tree = cKDTree(result.seeds * spacing)
    grid = np.indices(image.shape, dtype=np.float32).reshape(image.ndim, -1).T
    grid *= spacing.astype(np.float32)
    _, nearest = tree.query(grid.astype(np.float64), workers=1)
    res.naive["voronoi"] = time.perf_counter() - start
    res.naive["canny"] = res.fast["canny"]
    res.naive["sampling"] = res.fast["sampling"]
    res.naive["total"] = res.naive["canny"] + res.naive["kde"] + res.naive["sampling"] + res.naive["voronoi"]

    cells = result.cells.reshape(-1)
    differ = np.flatnonzero(cells != nearest)
    if differ.size:
        pts = np.stack(np.unravel_index(differ, image.shape), axis=1) * spacing
        d_fast = ((pts - result.seeds[cells[differ]] * spacing) ** 2).sum(1)
        d_tree = ((pts - result.seeds[nearest[differ]] * spacing) ** 2).sum(1)
        not_ties = int(np.count_nonzero(~np.isclose(d_fast, d_tree, rtol=1e-9, atol=1e-9)))
        res.naive["voronoi_ties"] = differ.size
        if not_ties:
            res.ok = False
            res.notes.append(f"Voronoi assignment differs at {not_ties} voxels that are not ties")
    else:
        res.naive["voronoi_ties"] = 0
    return res


def _load() -> str:
    with contextlib.suppress(OSError, AttributeError):
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return "unknown"


def _fmt_shape(shape: tuple[int, ...]) -> str:
    return " x ".join(map(str, shape))


def report(res: Result) -> None:
    f, n = res.fast, res.naive
    sp = " x ".join(f"{s:.3g}" for s in res.spacing)
    print(f"\n[{res.name}] {_fmt_shape(res.shape)} = {int(np.prod(res.shape)):,} voxels, spacing {sp} mm")
    print(
        f"  fast path  (best of runs): total {f['total']:.3f} s wall, {f['total_cpu']:.3f} s CPU   "
        f"[canny {f['canny']:.3f} + density {f['density']:.3f} + sampling {f['sampling']:.3f} "
        f"+ voronoi {f['voronoi']:.3f}]"
    )
    extrapolated = n["kde_voxels"] < int(np.prod(res.shape))
    how = (
        f"measured {n['kde_measured']:.2f} s at {int(n['kde_voxels']):,} random voxels, "
        f"EXTRAPOLATED linearly to all voxels: {n['kde']:.1f} s"
        if extrapolated
        else f"measured at all voxels: {n['kde']:.1f} s"
    )
    print(f"  naive KDE  (gaussian_kde over {int(n['edge_points']):,} edge points): {how}")
    print(f"  naive Voronoi (cKDTree query of every voxel, measured): {n['voronoi']:.3f} s")
    print(
        f"  naive total (canny and sampling shared): {n['total']:.1f} s"
        f"{' (extrapolated)' if extrapolated else ''}"
    )
    print(
        f"  ratio naive / fast: {n['total'] / f['total']:.0f}x   "
        f"(KDE {n['kde'] / f['density']:.0f}x, Voronoi {n['voronoi'] / f['voronoi']:.1f}x)"
    )
    print(
        f"  check density: max |fast - naive| = {n['kde_error']:.1e} of the max at the "
        f"{int(n['kde_voxels']):,} evaluated voxels: {'OK' if n['kde_error'] <= 1e-5 else 'FAILED'}"
    )
    ties = int(n["voronoi_ties"])
    voronoi_ok = not any("Voronoi" in note for note in res.notes)
    print(
        f"  check Voronoi: same nearest-seed assignment at all {int(np.prod(res.shape)):,} voxels"
        f"{f' up to {ties} exact ties (equal distance, each method picks its own seed)' if ties else ''}: "
        f"{'OK' if voronoi_ok else 'FAILED'}"
    )
    for note in res.notes:
        print(f"  ! {note}")


def load_volumes(
    path: str | None,
    big_shape: tuple[int, ...] = BIG_SHAPE,
    phantom_shape: tuple[int, ...] | None = None,
    seed: int = 0,
) -> tuple[list[tuple[str, np.ndarray, np.ndarray]], str]:
    """``([(name, volume, spacing mm)] for the CT and its resampled copy, a line saying where the CT
    comes from)``: the NIfTI file ``path``, or, when ``path`` is None, a generated chest CT phantom."""
    import nibabel as nib
    from scipy.ndimage import zoom

    from anatosynth_components.errors import DataError

    if path is not None:
        if not Path(path).is_file():
            raise DataError(f"--volume {path}: file not found")
        img = nib.load(path)
        ct = np.asarray(img.dataobj).astype(np.int16)
        spacing = np.asarray(img.header.get_zooms()[:3], dtype=np.float64)
        name = f"CT {Path(path).name}"
        source = f"volume: {path} (--volume)"
    else:
        from anatosynth_components.data.demo.chest import CHEST_SHAPE, chest_phantom

        shape = tuple(phantom_shape or CHEST_SHAPE)
        phantom = chest_phantom(shape, seed)
        ct, spacing = phantom.image.astype(np.int16), np.asarray(phantom.spacing, dtype=np.float64)
        name = f"generated chest CT phantom (seed {seed})"
        source = (
            f"volume: no --volume given, so a generated chest CT phantom ({_fmt_shape(shape)}, seed {seed}; "
            "the ACIS demo data's generator) stands in for a real scan: timings and checks are the "
            "phantom's; pass --volume PATH to benchmark a real CT"
        )
    factors = [b / a for a, b in zip(ct.shape, big_shape, strict=True)]
    big = zoom(ct.astype(np.float32), factors, order=1)
    big_spacing = spacing * np.asarray(ct.shape) / np.asarray(big_shape)
    return [
        (name, ct, spacing),
        (
            f"the {'CT' if path is not None else 'phantom'} resampled to {_fmt_shape(tuple(big_shape))}",
            big,
            big_spacing,
        ),
    ], source


def run(args: argparse.Namespace) -> int:
    from anatosynth_components.acis.pseudomask import DEFAULT_BANDWIDTH_MM, DEFAULT_FLOOR

    bandwidth = args.bandwidth_mm if args.bandwidth_mm is not None else DEFAULT_BANDWIDTH_MM
    big_shape = tuple(args.resampled_shape)
    volumes, source = load_volumes(args.volume, big_shape, args.phantom_shape, args.seed)
    print("ACIS pseudo-mask benchmark: fast path vs naive reference (gaussian_kde + cKDTree), one process")
    print(source)
    with one_core() as where:
        print(f"CPU: {where}; load average (1, 5, 15 min) at the start: {_load()}")
        where_naive = "all voxels" if args.naive_voxels <= 0 else f"{args.naive_voxels:,} random voxels"
        print(
            f"N = {args.num_points} seeds, h = {bandwidth:g} mm, floor {DEFAULT_FLOOR:g}, seed {args.seed}; "
            f"naive KDE at {where_naive}"
        )
        results = []
        for name, image, spacing in volumes:
            results.append(bench_volume(name, image, spacing, args, bandwidth))
            report(results[-1])
    ratio = min(r.naive["total"] / r.fast["total"] for r in results)
    big = results[-1].fast["total"]
    big_cpu = results[-1].fast["total_cpu"]
    speed = (
        ("MET" if big <= TARGET_SECONDS else "MISSED")
        if big_shape == BIG_SHAPE
        else f"not assessed, the target is for {_fmt_shape(BIG_SHAPE)}"
    )
    print(
        f"\ntargets: naive / fast >= {TARGET_RATIO:g}x: {'MET' if ratio >= TARGET_RATIO else 'MISSED'} "
        f"(lowest {ratio:.0f}x); fast path <= {TARGET_SECONDS:g} s for {_fmt_shape(BIG_SHAPE)} "
        f"with N = {args.num_points} on one core: {speed} ({_fmt_shape(big_shape)}: {big:.3f} s wall, "
        f"{big_cpu:.3f} s CPU)"
    )
    print(f"load average (1, 5, 15 min) at the end: {_load()} on {os.cpu_count()} cores")
    return 0 if all(r.ok for r in results) else 1
