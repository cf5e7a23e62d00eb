"""``TensorBoardImageGrid``: mask | real | synthetic rows in TensorBoard.

MONAI's ``TensorBoardImageHandler`` draws one image (or a 3-D volume as an animation) per key;
judging a mask-to-image generator needs the mask, the real and the synthetic slice side by side,
so this handler composes one grid image per epoch from the trainer's output.  :class:`EpochImageGrid`
is the part every such grid handler shares (``acis.AcisImageGrid`` draws the ACIS columns with it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.handlers.tensorboard_handlers import TensorBoardHandler

from anatosynth_components.checks import check_positive_int
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


class EpochImageGrid(TensorBoardHandler):
    """Write the RGB grid :meth:`grid` makes of ``output_transform(engine.state.output)`` every
    ``interval`` epochs, tag ``tag_name``, at step ``epoch + epoch_offset``; subclasses implement
    :meth:`grid` and :meth:`default_output`, and name their :attr:`default_tag`.

    Args:
        num_classes: label classes (the colours of label maps).
        log_dir / summary_writer: as MONAI's TensorBoard handlers.
        interval: epochs between grids.
        max_items: rows per grid.
        tag_name: TensorBoard tag (``None``: :attr:`default_tag`).
        epoch_offset: added to the epoch (a second training phase continues the first one's axis).
        output_transform: engine output -> what :meth:`grid` draws (``None``: :meth:`default_output`).
    """

    default_tag = "grid"

    def __init__(
        self,
        num_classes: int,
        log_dir: str = "./runs",
        summary_writer: Any = None,
        interval: int = 1,
        max_items: int = 4,
        tag_name: str | None = None,
        epoch_offset: int = 0,
        output_transform: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(summary_writer=summary_writer, log_dir=log_dir)
        self.num_classes = check_positive_int("num_classes", num_classes)
        self.interval = check_positive_int("interval", interval)
        self.max_items = check_positive_int("max_items", max_items)
        self.tag_name = self.default_tag if tag_name is None else tag_name
        self.epoch_offset = int(epoch_offset)
        self.output_transform = output_transform or self.default_output

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval), self)

    @staticmethod
    def default_output(output: Any) -> Any:
        """What :meth:`grid` draws of an engine output by default: the output itself."""
        return output

    def grid(self, output: Any) -> np.ndarray:
        """The (3, H, W) RGB grid of ``output_transform(engine.state.output)``."""
        raise NotImplementedError

    def __call__(self, engine: Engine) -> None:
        grid = self.grid(self.output_transform(engine.state.output))
        self._writer.add_image(self.tag_name, grid, engine.state.epoch + self.epoch_offset, dataformats="CHW")
        self._writer.flush()


class TensorBoardImageGrid(EpochImageGrid):
    """Write ``mask | real | synthetic`` (middle slice of the first ``max_items`` stacks of the
    epoch's last batch) every ``interval`` epochs, tag ``tag_name``.

    Args: as :class:`EpochImageGrid` (``num_classes``: K, for the mask colours); ``output_transform``
    maps the engine output to (label ids, real, synthetic), by default the ``"label"``, ``"image"`` and
    ``"pred"`` entries of ``AnatoMaskTrainer``'s output.
    """

    default_tag = "mask | real | synthetic"

    @staticmethod
    def default_output(output: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return output["label"], output["image"], output["pred"]

    def grid(self, output: Any) -> np.ndarray:
        labels, real, fake = (x[: self.max_items].detach() for x in output)
        return grid_rows(labels, real, fake, self.num_classes)
