"""``anatosynth inspect``: read a dataset with the real loaders, print a summary, draw a montage.

Loads up to ``--subjects`` volumes through ``LoadVolumed`` and ``ValidateVolumed`` (so it checks
files, shapes, affines and label ids exactly as training does) and writes a PNG with the middle
slice of each volume along each axis, the image alone and with the label map overlaid.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from anatosynth_components.data import LoadVolumed, ValidateVolumed, read_dataset
from anatosynth_components.visualize import display_range, overlay, save_montage


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="dataset folder (or Learn2Reg JSON, datalist JSON, PENet HDF5)")
    parser.add_argument("--layout", default="auto", help="learn2reg, neurite_oasis, penet, datalist or auto")
    parser.add_argument("--subjects", type=int, default=3, help="volumes to load and draw (default 3)")
    parser.add_argument("--png", help="write a montage PNG here")


def describe(name: str, image: np.ndarray, label: np.ndarray | None, spacing: np.ndarray) -> str:
    text = (
        f"  {name}: shape {tuple(image.shape)}, spacing {' x '.join(f'{s:.3g}' for s in spacing)} mm, "
        f"intensity [{image.min():.3g}, {image.max():.3g}]"
    )
    if label is not None:
        text += f", {len(np.unique(label)) - 1} label ids present"
    return text


def run(args: argparse.Namespace) -> int:
    index = read_dataset(args.dataset, args.layout)
    print(
        f"{index.name}: {index.layout} layout, {len(index.items)} volumes of {len(index.subjects)} subjects"
    )
    print(f"  source: {index.source}")
    if index.labels:
        shown = ", ".join(f"{k} {v}" for k, v in list(index.labels.items())[:6])
        print(f"  {len(index.labels)} labels: {shown}{', ...' if len(index.labels) > 6 else ''}")
    keys = ["image", "label"] if "label" in index.items[0] else ["image"]
    load = LoadVolumed(keys)
    check = ValidateVolumed("image", "label" if "label" in keys else None, index.labels or None)
    panels, names = [], []
    for item in index.items[: max(args.subjects, 0)]:
        d = check(load(item))
        image = d["image"][0].numpy()
        label = d["label"][0].numpy() if "label" in d else None
        spacing = np.linalg.norm(np.asarray(d["image"].affine)[:3, :3], axis=0)
        print(describe(item["subject"], image, label, spacing))
        shown = display_range(image)
        row = []
        for axis in range(3):
            mid = image.shape[axis] // 2
            img2d = np.take(shown, mid, axis=axis)
            row.append(img2d)
            if label is not None:
                row.append(
                    overlay(img2d, np.take(label, mid, axis=axis), num_labels=max(index.labels, default=1))
                )
        panels.append(row)
        names.append(item["subject"])
    if args.png and panels:
        views = ["sagittal (x)", "coronal (y)", "axial (z)"]
        titles = [[f"{v}{s}" for v in views for s in ((" image", " labels") if len(row) == 6 else ("",))]
                  for row in panels]  # fmt: skip
        path = save_montage(Path(args.png), panels, titles, names)
        print(f"montage: {path.resolve()}")
    return 0
