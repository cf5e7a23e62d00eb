"""Fixed-budget supervised training with MONAI's ``SupervisedTrainer``, shared by the downstream
experiments (segmentation, reconstruction).

Every arm of an experiment cell gets the same budget: ``iterations`` optimisation steps of
``batch_size`` samples drawn uniformly with replacement from its training pool, whatever the pool's
size, so that adding synthetic data adds variety, not compute.  With a ``synthetic`` pool, every
batch holds real and synthetic samples at the configuration's ``real_synthetic_ratio`` (default
1:1; :mod:`~anatosynth_components.experiments.mixed_batches`), the same at every few-shot size n.
The network is built after ``monai.utils.set_determinism(seed)``, so every arm of a cell starts
from the same weights and sees the same sampling sequence of indices.

Example::

    net = train_fixed_iterations(net, DiceLoss(softmax=True, to_onehot_y=True), dataset,
                                 iterations=200, batch_size=2, lr=1e-3, device="cpu", seed=0)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from ignite.engine import Events
from ignite.handlers import ProgressBar
from monai.data import DataLoader
from monai.engines import SupervisedTrainer
from monai.engines.utils import default_prepare_batch
from monai.utils import set_determinism
from torch.utils.data import ConcatDataset, Dataset, RandomSampler

from anatosynth_components.checks import check_positive_int
from anatosynth_components.errors import ConfigError
from anatosynth_components.experiments.mixed_batches import DEFAULT_RATIO, MixedBatchSampler, real_per_batch


@contextmanager
def determinism(seed: int) -> Iterator[None]:
    """``monai.utils.set_determinism(seed)`` for the block (build the network inside it, so every arm
    starts from the same weights), switched off again after it, also on an error."""
    set_determinism(seed=seed)
    try:
        yield
    finally:
        set_determinism(seed=None)


def train_cell(
    network: torch.nn.Module,
    loss_function: Callable,
    dataset: Dataset,
    config: dict[str, Any],
    desc: str,
    progress: bool = True,
    prepare_batch: Callable = default_prepare_batch,
    synthetic: Dataset | None = None,
) -> dict[str, Any]:
    """:func:`train_fixed_iterations` with the budget of an experiment ``config`` (``iterations``,
    ``batch_size``, ``lr``, ``device``, ``seed``, and ``real_synthetic_ratio`` when ``synthetic``
    samples are mixed in); returns ``{"train": its log, "train_wall_s": s}``."""
    t0 = time.perf_counter()
    log = train_fixed_iterations(
        network,
        loss_function,
        dataset,
        config["iterations"],
        config["batch_size"],
        config["lr"],
        config["device"],
        config["seed"],
        prepare_batch=prepare_batch,
        progress=progress,
        desc=desc,
        synthetic=synthetic,
        real_synthetic_ratio=config.get("real_synthetic_ratio", DEFAULT_RATIO),
    )
    return {"train": log, "train_wall_s": round(time.perf_counter() - t0, 2)}


def train_fixed_iterations(
    network: torch.nn.Module,
    loss_function: Callable,
    dataset: Dataset,
    iterations: int,
    batch_size: int,
    lr: float,
    device: str | torch.device,
    seed: int,
    prepare_batch: Callable = default_prepare_batch,
    progress: bool = True,
    desc: str = "train",
    weight_decay: float = 0.0,
    synthetic: Dataset | None = None,
    real_synthetic_ratio: list[int] | tuple[int, int] = DEFAULT_RATIO,
) -> dict[str, Any]:
    """Train ``network`` in place with Adam for ``iterations`` steps; return ``{"loss_first", "loss_last"}``.

    Args:
        dataset: yields dicts with ``image`` and ``label`` (or what ``prepare_batch`` reads).
        prepare_batch: MONAI's ``(batch, device, non_blocking, **kwargs) -> (inputs, targets)``.
        synthetic: a second pool mixed into every batch at ``real_synthetic_ratio`` (``[r, s]``);
            None: batches from ``dataset`` alone.
    """
    check_positive_int("iterations", iterations)
    check_positive_int("batch_size", batch_size)
    if len(dataset) == 0:
        raise ConfigError(f"{desc}: the training pool is empty")
    if synthetic is None:
        generator = torch.Generator().manual_seed(seed)
        sampler = RandomSampler(
            dataset, replacement=True, num_samples=iterations * batch_size, generator=generator
        )
        loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=0)
    else:
        real = real_per_batch(batch_size, real_synthetic_ratio)
        batches = MixedBatchSampler(len(dataset), len(synthetic), batch_size, real, iterations, seed)
        loader = DataLoader(ConcatDataset([dataset, synthetic]), batch_sampler=batches, num_workers=0)
    optimizer = torch.optim.Adam(network.parameters(), lr=lr, weight_decay=weight_decay)
    trainer = SupervisedTrainer(
        device=torch.device(device),
        max_epochs=1,
        epoch_length=iterations,
        train_data_loader=loader,
        network=network.to(device),
        optimizer=optimizer,
        loss_function=loss_function,
        prepare_batch=prepare_batch,
        decollate=False,
    )
    trainer.logger.setLevel(logging.WARNING)  # the progress bar reports; no per-epoch INFO lines
    losses: list[float] = []
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED, lambda e: losses.append(float(e.state.output["loss"].detach()))
    )
    if progress:
        ProgressBar(persist=False, desc=desc).attach(
            trainer, output_transform=lambda out: {"loss": out["loss"]}
        )
    trainer.run()
    network.eval()
    return {"loss_first": losses[0], "loss_last": losses[-1], "iterations": len(losses)}
