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
from ignite.engine import Engine, Events
from monai.handlers.tensorboard_handlers import TensorBoardHandler

from anatosynth_components.acis.panels import gray_panel, label_panel, rgb

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


class AcisImageGrid(TensorBoardHandler):
    """Write :func:`grid_image` of the trainer output every ``interval`` epochs under ``tag_name``.

    Args:
        num_classes: annotation classes (colours).
        log_dir / summary_writer: as MONAI's TensorBoard handlers.
        interval: epochs between grids.
        max_items: rows per grid.
        tag_name: TensorBoard tag.
        epoch_offset: added to the epoch (phase 2 continues phase 1's axis).
    """

    def __init__(
        self,
        num_classes: int,
        log_dir: str = "./runs",
        summary_writer: Any = None,
        interval: int = 1,
        max_items: int = 4,
        tag_name: str = "acis",
        epoch_offset: int = 0,
    ) -> None:
        super().__init__(summary_writer=summary_writer, log_dir=log_dir)
        self.num_classes, self.interval, self.max_items = int(num_classes), int(interval), int(max_items)
        self.tag_name, self.epoch_offset = tag_name, int(epoch_offset)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval), self)

    def __call__(self, engine: Engine) -> None:
        grid = grid_image(engine.state.output, self.num_classes, self.max_items)
        self._writer.add_image(self.tag_name, grid, engine.state.epoch + self.epoch_offset, dataformats="CHW")
        self._writer.flush()
