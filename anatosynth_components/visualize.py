"""Pictures: label overlays and montages written as PNG (atomically).

Example::

    rgb = overlay(image[:, :, 40], label[:, :, 40])
    save_montage("montage.png", [[rgb, image[:, :, 40]]], titles=[["overlay", "image"]])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from anatosynth_components.atomic import atomic_path  # noqa: E402


def display_range(image: np.ndarray, lower: float = 1.0, upper: float = 99.0) -> np.ndarray:
    """Scale ``image`` so its ``lower`` / ``upper`` percentiles map to 0 / 1 (clipped)."""
    image = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(image, [lower, upper])
    return np.clip((image - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)


def label_colors(num_labels: int, seed: int = 3) -> np.ndarray:
    """A fixed RGB colour per label id 0..num_labels (id 0 black), shape (num_labels + 1, 3)."""
    cmap = matplotlib.colormaps["tab20"]
    colors = np.array([cmap(i % 20)[:3] for i in range(num_labels + 1)], dtype=np.float32)
    colors[1:] = np.random.default_rng(seed).permutation(colors[1:]) if num_labels > 1 else colors[1:]
    colors[0] = 0.0
    return colors


def overlay(
    image: np.ndarray, label: np.ndarray, alpha: float = 0.45, num_labels: int | None = None
) -> np.ndarray:
    """Blend a 2-D gray ``image`` in [0, 1] with the colours of a 2-D ``label`` map -> (H, W, 3)."""
    label = np.asarray(label).astype(np.int64)
    colors = label_colors(int(num_labels if num_labels is not None else max(label.max(), 1)))
    gray = np.repeat(np.clip(np.asarray(image, np.float32), 0, 1)[..., None], 3, axis=-1)
    tint = colors[np.clip(label, 0, len(colors) - 1)]
    mask = (label > 0)[..., None]
    return np.where(mask, (1 - alpha) * gray + alpha * tint, gray)


def save_montage(
    path: str | os.PathLike,
    panels: Sequence[Sequence[np.ndarray]],
    titles: Sequence[Sequence[str]] | None = None,
    row_names: Sequence[str] | None = None,
    panel_size: float = 2.4,
) -> Path:
    """Save a grid of 2-D panels (gray (H, W) or RGB (H, W, 3)), one list per row, as PNG.

    Panels are drawn transposed with the origin at the lower left: the array's first axis runs left
    to right and its second bottom to top (for RAS volumes: patient right on the right, anterior
    or superior up).
    """
    rows, cols = len(panels), max(len(r) for r in panels)
    fig, axes = plt.subplots(rows, cols, figsize=(panel_size * cols, panel_size * rows), squeeze=False)
    for r, row in enumerate(panels):
        for c in range(cols):
            ax = axes[r][c]
            ax.axis("off")
            if c >= len(row):
                continue
            panel = np.asarray(row[c])
            shown = np.swapaxes(panel, 0, 1)
            ax.imshow(shown, cmap="gray", vmin=0, vmax=1, origin="lower", interpolation="nearest")
            if titles is not None and c < len(titles[r]):
                ax.set_title(titles[r][c], fontsize=8)
        if row_names is not None:
            axes[r][0].text(-0.05, 0.5, row_names[r], transform=axes[r][0].transAxes, rotation=90,
                            ha="right", va="center", fontsize=8)  # fmt: skip
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
