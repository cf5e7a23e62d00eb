"""Training budgets counted in iterations, the same whatever the size of the training set.

A budget in epochs shrinks with the data: 100 epochs are 400 updates on 4 volumes and 8,000 on 80.
ACIS's few-shot settings (n = 4 ... 80 real volumes) need the same number of updates for every n, so
every phase is given ``iterations`` and an ``epoch_length`` (the iterations between two checkpoints,
validations and epoch means).  The data loader draws each epoch's ``epoch_length x batch_size``
samples uniformly *with replacement* (:func:`budget_sampler`), so an epoch is ``epoch_length``
iterations on 4 volumes as on 80, and ``max_epochs = iterations / epoch_length``
(:func:`budget_epochs`).

In a bundle config::

    "max_epochs": "$anatosynth_components.engines.budget_epochs(@phase1_iterations, @epoch_length,
                   'phase1_iterations')",
    "sampler": {"_target_": "anatosynth_components.engines.budget_sampler", "dataset": "@train#dataset",
                "epoch_length": "@epoch_length", "batch_size": "@batch_size"}

Example:
    >>> budget_epochs(2000, 100, "phase1_iterations")
    20
    >>> budget_epochs(150, 100, "phase1_iterations")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    anatosynth_components.errors.ConfigError: phase1_iterations=150 is not a multiple of ...; use 100 or 200
    >>> len(budget_sampler(list(range(4)), epoch_length=10, batch_size=2))
    20
"""

from __future__ import annotations

from collections.abc import Sized

import torch
from torch.utils.data import RandomSampler

from anatosynth_components.checks import check_positive_int
from anatosynth_components.errors import ConfigError


def budget_epochs(iterations: int, epoch_length: int, key: str = "iterations") -> int:
    """``iterations / epoch_length``: the epochs of a phase whose budget is ``iterations`` updates.

    Raises:
        ConfigError: either is not a positive integer, or ``iterations`` is not a multiple of
            ``epoch_length`` (naming ``key`` and the two nearest valid budgets).
    """
    check_positive_int(key, iterations)
    check_positive_int("epoch_length", epoch_length)
    epochs, rest = divmod(int(iterations), int(epoch_length))
    if rest:
        options = " or ".join(str(e * epoch_length) for e in (epochs, epochs + 1) if e > 0)
        raise ConfigError(
            f"{key}={iterations} is not a multiple of epoch_length={epoch_length} (an epoch is "
            f"epoch_length iterations); use {options}"
        )
    return epochs


def budget_sampler(
    dataset: Sized, epoch_length: int, batch_size: int, generator: torch.Generator | None = None
) -> RandomSampler:
    """A sampler drawing ``epoch_length * batch_size`` indices of ``dataset`` uniformly with
    replacement per epoch: every epoch is ``epoch_length`` batches, whatever ``len(dataset)``.

    Raises:
        ConfigError: ``dataset`` is empty, or a count is not a positive integer.
    """
    check_positive_int("epoch_length", epoch_length)
    check_positive_int("batch_size", batch_size)
    if len(dataset) == 0:
        raise ConfigError("the training set is empty: no volume to draw the epoch's batches from")
    return RandomSampler(
        dataset, replacement=True, num_samples=int(epoch_length) * int(batch_size), generator=generator
    )
