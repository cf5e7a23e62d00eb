"""2-D pictures of ACIS items for TensorBoard grids and montages: gray images, coloured annotations.

A 2-D item (1, H, W) is shown as it is; a 3-D item (1, X, Y, Z) by its middle slice along Z (axial
for RAS CT).

>>> import torch
>>> gray_panel(torch.rand(1, 8, 6, 4)).shape, label_panel(torch.ones(1, 8, 6), num_classes=3).shape
((8, 6), (8, 6, 3))
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from anatosynth_components.visualize import label_colors


def middle(x: Any) -> np.ndarray:
    """(1, H, W) -> (H, W); (1, X, Y, Z) -> the middle Z slice (X, Y); float32 numpy."""
    array = torch.as_tensor(x).detach().float().cpu().numpy()
    if array.ndim not in (3, 4):
        raise ValueError(f"expected a (1, H, W) or (1, X, Y, Z) item, got shape {array.shape}")
    array = array[0]
    return array[..., array.shape[-1] // 2] if array.ndim == 3 else array


def gray_panel(x: Any) -> np.ndarray:
    """A [0, 1] image item as a (H, W) panel, clipped to [0, 1]."""
    return np.clip(middle(x), 0.0, 1.0)


def label_panel(x: Any, num_classes: int) -> np.ndarray:
    """A label-id item as an RGB (H, W, 3) panel, one fixed colour per id (0 black)."""
    ids = np.clip(np.rint(middle(x)).astype(np.int64), 0, num_classes - 1)
    return label_colors(num_classes - 1)[ids]


def rgb(panel: np.ndarray) -> np.ndarray:
    """Gray (H, W) -> (H, W, 3); RGB unchanged."""
    return panel if panel.ndim == 3 else np.repeat(panel[..., None], 3, axis=-1)
