"""``anatosynth pseudomask IN OUT --num-points N --seed S``: the ACIS pseudo-mask of one volume.

Reads ``IN`` through ``LoadVolumed`` (NIfTI, NRRD, MHA, DICOM folders, ``file.hdf5::study``),
computes :func:`anatosynth_components.acis.pseudomask.pseudo_mask` with the voxel spacing of the file's
affine, and writes the pseudo-mask with the input's affine and dtype (atomically) as NIfTI, NRRD or MHA,
after its suffix (``.nii.gz``, ``.nii``, ``.nrrd``, ``.mha``).
``--seeds-out`` writes the seed voxel indices as an (N, ndim) int64 ``.npy``; ``--png`` a montage
of the middle slice along each axis: image | density | pseudo-mask | pseudo-mask with cell borders
(blue) and the seeds that lie in the slice (red); CT in HU is shown in the abdomen window (-160, 240) HU.

Every output is checked before any work (:func:`check_outputs`): none may be the input file (or a link
to it) or lie inside an input folder, each needs a writer for its suffix, and its folder is created or
must be writable; the error names the path.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from anatosynth_components.acis.pseudomask.density import DEFAULT_BANDWIDTH_MM, DEFAULT_FLOOR
from anatosynth_components.acis.pseudomask.edges import DEFAULT_HIGH_THRESHOLD, DEFAULT_LOW_THRESHOLD
from anatosynth_components.atomic import VOLUME_WRITERS, atomic_path, write_volume
from anatosynth_components.data.output_path import check_distinct, check_output_file, suffix_of
from anatosynth_components.errors import DataError

#: (option, default, help) of the numeric pseudo-mask settings whose default is the library's; the
#: help names the default
_LIBRARY_DEFAULTS = (
    ("--bandwidth-mm", DEFAULT_BANDWIDTH_MM, "KDE bandwidth h in mm (Eq. 1; default {:g})"),
    ("--floor", DEFAULT_FLOOR, "uniform share of the sampling probability (default {:g})"),
    ("--canny-sigma", 1.0, "Canny smoothing in voxels ({:g})"),
    ("--low-threshold", DEFAULT_LOW_THRESHOLD, "Canny low threshold, a gradient magnitude quantile ({:g})"),
    ("--high-threshold", DEFAULT_HIGH_THRESHOLD, "Canny high threshold, the same kind of quantile ({:g})"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="image volume (NIfTI or any format LoadVolumed reads)")
    parser.add_argument("output", help=f"pseudo-mask to write ({', '.join(VOLUME_WRITERS)})")
    parser.add_argument("--num-points", type=int, required=True, help="number of seeds N (Voronoi cells)")
    parser.add_argument("--seed", type=int, required=True, help="random seed (same seed, same mask)")
    parser.add_argument("--edge-points", type=int, help="use a random subset of n edge points (Eq. 1's n)")
    for option, default, text in _LIBRARY_DEFAULTS:
        parser.add_argument(option, type=float, default=default, help=text.format(default))
    parser.add_argument(
        "--edge-method", default="auto", choices=("auto", "nd", "slices"),
        help="auto: skimage Canny in 2D, 3D Canny in 3D; slices: 2D Canny per slice of the last axis",
    )  # fmt: skip
    parser.add_argument("--seeds-out", help="write the seed voxel indices, (N, ndim) int64, as .npy")
    parser.add_argument("--png", help="write a montage of the middle slices here")


def load(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(spatial array in the file's dtype, 4x4 affine, spacing in mm) of a single-channel volume."""
    from monai.data.utils import affine_to_spacing

    from anatosynth_components.data.load_volume import LoadVolumed

    image = LoadVolumed(keys="image", dtype=None)({"image": path})["image"]
    shape = tuple(image.shape)
    if image.ndim not in (3, 4) or shape[0] != 1:
        spatial = tuple(image.meta.get("spatial_shape", shape[1:]))
        raise DataError(
            f"{path}: expected one 2D or 3D volume, got {image.ndim}D data of shape {shape} "
            f"(channel-first; spatial shape {spatial}); split 4D files into single volumes first"
        )
    affine = np.asarray(image.affine, dtype=np.float64)
    array = image[0].numpy()
    spacing = np.asarray(affine_to_spacing(affine, r=array.ndim), dtype=np.float64)
    if array.ndim == 2:  # keep a 4x4 affine for NIfTI
        full = np.eye(4)
        full[:2, :2], full[:2, 3] = affine[:2, :2], affine[:2, 2]
        affine = full if affine.shape == (3, 3) else affine
    return array, affine, spacing


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any work, an output that is the input (or a link to it), two outputs naming one
    file, a suffix without a writer (a volume for the pseudo-mask, ``.npy`` for ``--seeds-out``, ``.png``
    for ``--png``) and a folder that cannot be created or written."""
    check_distinct({"pseudo-mask": args.output, "--seeds-out": args.seeds_out, "--png": args.png})
    hint = " (a PNG montage is written by --png)" if suffix_of(args.output).lower() == ".png" else ""
    check_output_file(args.output, [args.input], hint=hint, what="the pseudo-mask output")
    if args.seeds_out:
        check_output_file(args.seeds_out, [args.input], suffixes=(".npy",), what="--seeds-out")
    if args.png:
        check_output_file(args.png, [args.input], suffixes=(".png",), what="--png")


def run(args: argparse.Namespace) -> int:
    from anatosynth_components.acis.pseudomask import pseudo_mask

    check_outputs(args)
    array, affine, spacing = load(args.input)
    result = pseudo_mask(
        array,
        args.num_points,
        np.random.default_rng(args.seed),
        spacing=spacing,
        bandwidth_mm=args.bandwidth_mm,
        floor=args.floor,
        num_edge_points=args.edge_points,
        canny_sigma=args.canny_sigma,
        low_threshold=args.low_threshold,
        high_threshold=args.high_threshold,
        edge_method=args.edge_method,
        name=args.input,
    )
    write_volume(args.output, result.mask, affine)
    print(
        f"{args.output}: pseudo-mask {' x '.join(map(str, array.shape))}, {args.num_points} cells, "
        f"spacing {' x '.join(f'{s:.3g}' for s in spacing)} mm, {int(result.edges.sum())} edge voxels, "
        f"h = {args.bandwidth_mm:g} mm"
    )
    if args.seeds_out:
        with atomic_path(args.seeds_out) as tmp, open(tmp, "wb") as fh:
            np.save(fh, result.seeds.astype(np.int64))
        print(
            f"seeds: {args.seeds_out} ({result.seeds.shape[0]} x {result.seeds.shape[1]} int64 voxel indices)"
        )
    if args.png:
        path = save_pseudomask_montage(Path(args.png), array, result)
        print(f"montage: {path.resolve()}")
    return 0


def _cell_borders(cells: np.ndarray) -> np.ndarray:
    border = np.zeros(cells.shape, dtype=bool)
    border[1:, :] |= cells[1:, :] != cells[:-1, :]
    border[:, 1:] |= cells[:, 1:] != cells[:, :-1]
    return border


def display_window(image: np.ndarray) -> tuple[float, float]:
    """Grey-level window: the abdomen CT window (-160, 240) HU for images that look like CT in HU
    (air near -1000, bone above 300), else the 1st and 99th percentiles."""
    lowest, highest = float(image.min()), float(image.max())
    if lowest <= -900 and highest >= 300:
        return -160.0, 240.0
    lo, hi = np.percentile(image, [1, 99])
    return float(lo), float(hi)


def montage_row(image: np.ndarray, result, axis: int) -> list[np.ndarray]:  # noqa: ANN001
    """Panels of the middle slice along ``axis``: image, density, pseudo-mask, pseudo-mask with cell
    borders and seeds."""
    from anatosynth_components.visualize import display_range

    lo, hi = display_window(image)
    scale = lambda x: np.clip((np.asarray(x, np.float32) - lo) / (hi - lo if hi > lo else 1.0), 0, 1)  # noqa: E731
    take = (lambda x: x) if image.ndim == 2 else (lambda x: np.take(x, image.shape[axis] // 2, axis=axis))
    img2d, mask2d, cells2d = scale(take(image)), scale(take(result.mask)), take(result.cells)
    density2d = display_range(take(result.density), 0, 100) if result.density.any() else take(result.density)
    rgb = np.repeat(mask2d[..., None], 3, axis=-1)
    rgb[_cell_borders(cells2d)] = 0.6 * rgb[_cell_borders(cells2d)] + 0.4 * np.array([0.2, 0.6, 1.0])
    seeds = result.seeds
    if image.ndim == 3:
        seeds = np.delete(seeds[seeds[:, axis] == image.shape[axis] // 2], axis, axis=1)
    rgb[tuple(seeds.T)] = (1.0, 0.1, 0.1)
    return [img2d, density2d, mask2d, rgb]


def save_pseudomask_montage(path: Path, image: np.ndarray, result) -> Path:  # noqa: ANN001
    """PNG: one row per axis (one row for 2D): image | density | pseudo-mask | cells with seeds."""
    from anatosynth_components.visualize import save_montage

    axes = range(image.ndim) if image.ndim == 3 else [0]
    rows = [montage_row(image, result, a) for a in axes]
    names = ["axis 0 (x)", "axis 1 (y)", "axis 2 (z)"] if image.ndim == 3 else ["image"]
    titles = [["image", "density f (Eq. 1)", "pseudo-mask (Eq. 2)", "cells, seeds in slice"]] * len(rows)
    return save_montage(path, rows, titles, names)
