"""``TensorBoardImageGrid``: mask | real | synthetic rows in TensorBoard.

MONAI's ``TensorBoardImageHandler`` draws one image (or a 3-D volume as an animation) per key;
judging a mask-to-image generator needs the mask, the real and the synthetic slice side by side,
so this handler composes one grid image per epoch from the trainer's output.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.handlers.tensorboard_handlers import TensorBoardHandler

from anatosynth_components.visualize import label_colors


def grid_rows(labels: torch.Tensor, real: torch.Tensor, fake: torch.Tensor, num_classes: int) -> np.ndarray:
    """Middle slices of stacks -> one RGB grid (3, rows * H, 3 * W + 4), one stack per row.

    Args:
        labels: label ids (B, 1, n, H, W); real, fake: images (B, 1, n, H, W) in [0, 1].
    """
    mid = labels.shape[2] // 2
    colors = label_colors(num_classes - 1)
    rows = []
    for b in range(labels.shape[0]):
        ids = labels[b, 0, mid].round().long().clamp(0, num_classes - 1).cpu().numpy()
        gray = [
            np.repeat(x[b, 0, mid].float().clamp(0, 1).cpu().numpy()[..., None], 3, -1) for x in (real, fake)
        ]
        gap = np.ones((ids.shape[0], 2, 3), np.float32)
        rows.append(np.concatenate([colors[ids], gap, gray[0], gap, gray[1]], axis=1))
    return np.concatenate(rows, axis=0).transpose(2, 0, 1)


class TensorBoardImageGrid(TensorBoardHandler):
    """Write ``mask | real | synthetic`` (middle slice of the first ``max_items`` stacks of the
    epoch's last batch) every ``interval`` epochs, tag ``tag_name``.

    Args:
        num_classes: K, for the mask colours.
        log_dir / summary_writer: as MONAI's TensorBoard handlers.
        interval: epochs between grids.
        max_items: stacks per grid.
        output_transform: engine output -> (label ids, real, synthetic); default reads the
            ``"label"``, ``"image"`` and ``"pred"`` entries of ``AnatoMaskTrainer``'s output.
    """

    def __init__(
        self,
        num_classes: int,
        log_dir: str = "./runs",
        summary_writer: Any = None,
        interval: int = 1,
        max_items: int = 4,
        tag_name: str = "mask | real | synthetic",
        output_transform: Any = None,
    ) -> None:
        super().__init__(summary_writer=summary_writer, log_dir=log_dir)
        self.num_classes, self.interval, self.max_items = int(num_classes), int(interval), int(max_items)
        self.tag_name = tag_name
        self.output_transform = output_transform or (lambda o: (o["label"], o["image"], o["pred"]))

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval), self)

    def __call__(self, engine: Engine) -> None:
        labels, real, fake = (
            x[: self.max_items].detach() for x in self.output_transform(engine.state.output)
        )
        grid = grid_rows(labels, real, fake, self.num_classes)
        self._writer.add_image(self.tag_name, grid, engine.state.epoch, dataformats="CHW")
        self._writer.flush()
