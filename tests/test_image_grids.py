"""The TensorBoard grid handlers: when they write, under which tag and step, and what."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ignite.engine import Engine

from anatosynth_components.acis.image_grid import AcisImageGrid, grid_image
from anatosynth_components.errors import ConfigError
from anatosynth_components.handlers import TensorBoardImageGrid, grid_rows


class Writer:
    """A stand-in ``SummaryWriter`` that records ``add_image`` calls."""

    def __init__(self) -> None:
        self.images: list[tuple[str, np.ndarray, int]] = []

    def add_image(self, tag, grid, step, dataformats):
        assert dataformats == "CHW"
        self.images.append((tag, np.asarray(grid), step))

    def flush(self):
        pass


def _run(handler, output, epochs: int) -> None:
    engine = Engine(lambda e, batch: output)
    handler.attach(engine)
    engine.run([0], max_epochs=epochs)


def test_acis_grid_every_interval_with_the_epoch_offset():
    g = torch.Generator().manual_seed(0)
    output = {
        "image": torch.rand(3, 1, 8, 8, generator=g),
        "label": torch.randint(0, 4, (3, 1, 8, 8), generator=g),
        "pred": torch.rand(3, 1, 8, 8, generator=g),
    }
    writer = Writer()
    _run(
        AcisImageGrid(num_classes=4, summary_writer=writer, interval=2, max_items=2, epoch_offset=10),
        output,
        5,
    )
    assert [(tag, step) for tag, _, step in writer.images] == [("acis", 12), ("acis", 14)]
    expected = grid_image(output, num_classes=4, max_items=2)
    assert expected.shape == (3, 2 * 8, 3 * (8 + 2))
    np.testing.assert_array_equal(writer.images[0][1], expected)


def test_anatomask_grid_draws_the_first_stacks_under_its_tag():
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 3, (4, 1, 3, 6, 6), generator=g)
    real, fake = torch.rand(4, 1, 3, 6, 6, generator=g), torch.rand(4, 1, 3, 6, 6, generator=g)
    writer = Writer()
    handler = TensorBoardImageGrid(num_classes=3, summary_writer=writer, max_items=2)
    _run(handler, {"label": labels, "image": real, "pred": fake}, 2)
    assert [(tag, step) for tag, _, step in writer.images] == [
        ("mask | real | synthetic", 1),
        ("mask | real | synthetic", 2),
    ]
    np.testing.assert_array_equal(writer.images[0][1], grid_rows(labels[:2], real[:2], fake[:2], 3))
    renamed = Writer()
    handler = TensorBoardImageGrid(3, summary_writer=renamed, max_items=2, output_transform=lambda o: o["t"])
    _run(handler, {"t": (labels, real, fake)}, 1)
    np.testing.assert_array_equal(renamed.images[0][1], writer.images[0][1])
    # the real slice sits after the mask and a 2-pixel gap: its gray value in all three channels
    np.testing.assert_allclose(writer.images[0][1][:, 0, 8], real[0, 0, 1, 0, 0].item())


def test_grid_settings_are_checked():
    with pytest.raises(ConfigError, match="interval must be an integer >= 1, got 0"):
        AcisImageGrid(num_classes=4, summary_writer=Writer(), interval=0)
    with pytest.raises(ConfigError, match="max_items must be an integer >= 1"):
        TensorBoardImageGrid(num_classes=4, summary_writer=Writer(), max_items=-1)
