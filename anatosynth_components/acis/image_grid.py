"""``AcisImageGrid``: the ACIS training outputs side by side in TensorBoard, once per epoch.

One row per item of the epoch's last batch: real pseudo-mask | real annotation | real image |
reconstruction ``G_img(pm, y)`` | annotation of the real pseudo-mask ``argmax G_ann(pm)`` | generated
pseudo-mask ``G_pm(z)`` and, in phase 2, its generated annotation and image.  Columns whose key the
trainer's output lacks are left out.  (The package's ``TensorBoardImageGrid`` draws the fixed
mask | real | synthetic triple of slice stacks.)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from anatosynth_components.acis.panels import gray_panel, label_panel, rgb
from anatosynth_components.handlers.image_grid import EpochImageGrid

#: (output key, is a label map) in column order.
COLUMNS = (
    ("pseudo_mask", False),
    ("label", True),
    ("image", False),
    ("pred", False),
    ("pred_label", True),
    ("generated_pseudo_mask", False),
    ("generated_label", True),
    ("generated_image", False),
)


def grid_image(output: dict[str, Any], num_classes: int, max_items: int = 4) -> np.ndarray:
    """RGB grid (3, rows * H, columns * (W + 2)) of the present :data:`COLUMNS` of a trainer output."""
    keys = [(k, is_label) for k, is_label in COLUMNS if output.get(k) is not None]
    rows = []
    for b in range(min(max_items, len(output["image"]))):
        cells = []
        for key, is_label in keys:
            panel = label_panel(output[key][b], num_classes) if is_label else rgb(gray_panel(output[key][b]))
            cells += [panel, np.ones((panel.shape[0], 2, 3), np.float32)]
        rows.append(np.concatenate(cells, axis=1))
    return np.concatenate(rows, axis=0).transpose(2, 0, 1).astype(np.float32)


class AcisImageGrid(EpochImageGrid):
    """Write :func:`grid_image` of the trainer output every ``interval`` epochs under ``tag_name``
    (default ``"acis"``); arguments as :class:`~anatosynth_components.handlers.image_grid.EpochImageGrid`
    (``num_classes``: annotation classes; ``epoch_offset``: phase 2 continues phase 1's axis).
    """

    default_tag = "acis"

    def grid(self, output: Any) -> np.ndarray:
        return grid_image(output, self.num_classes, self.max_items)
