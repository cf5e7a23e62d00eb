"""Batches with a fixed ratio of real to synthetic samples, the same at every few-shot size n.

Concatenating a few real volumes with many synthetic ones and drawing uniformly lets the synthetic
share of each batch grow with the synthetic set (8 synthetic + 4 real: 2/3 synthetic; 8 + 80: 1/11)
and so differ between the n of one table.  :class:`MixedBatchSampler` instead fills every batch of
``batch_size`` with ``real_per_batch`` real samples and ``batch_size - real_per_batch`` synthetic
ones, each drawn uniformly with replacement from its own pool with one seeded generator.

The ratio is the experiment's ``real_synthetic_ratio`` ``[r, s]`` (default ``[1, 1]``):
``real_per_batch = round(batch_size * r / (r + s))``, at least one of each kind
(:func:`real_per_batch`).

Example:
    >>> sampler = MixedBatchSampler(num_real=4, num_synthetic=8, batch_size=4, real_per_batch=2,
    ...                             iterations=3, seed=0)
    >>> batches = list(sampler)
    >>> len(batches), [sum(i < 4 for i in b) for b in batches]   # indices < 4 are the real ones
    (3, [2, 2, 2])
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from anatosynth_components.checks import check_positive_int
from anatosynth_components.errors import ConfigError

DEFAULT_RATIO = (1, 1)


def real_per_batch(batch_size: int, ratio: Sequence[int] = DEFAULT_RATIO) -> int:
    """Real samples in a batch of ``batch_size`` for ``real_synthetic_ratio`` ``ratio = [r, s]``.

    >>> real_per_batch(2), real_per_batch(16, [3, 1]), real_per_batch(4, [1, 3])
    (1, 12, 1)

    Raises:
        ConfigError: ``ratio`` is not two positive integers, or ``batch_size`` < 2 (a batch cannot
            hold both kinds).
    """
    if (
        not isinstance(ratio, (list, tuple))
        or len(ratio) != 2
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in ratio)
    ):
        raise ConfigError(
            f"real_synthetic_ratio must be two positive integers [real, synthetic], got {ratio!r}"
        )
    check_positive_int("batch_size", batch_size)
    if batch_size < 2:
        raise ConfigError(
            "batch_size must be at least 2 when synthetic samples are mixed in (each batch holds real "
            f"and synthetic samples at real_synthetic_ratio {list(ratio)}), got 1"
        )
    real = round(batch_size * ratio[0] / (ratio[0] + ratio[1]))
    return min(max(real, 1), batch_size - 1)


class MixedBatchSampler(Sampler[list[int]]):
    """``iterations`` batches of indices into ``ConcatDataset([real, synthetic])``.

    Args:
        num_real, num_synthetic: sizes of the two pools (indices ``0 .. num_real - 1`` are real,
            ``num_real ..`` synthetic).
        batch_size: samples per batch.
        real_per_batch: real samples in each batch (the rest synthetic), in [1, batch_size - 1].
        iterations: batches per pass.
        seed: seed of the generator that draws both pools (the same sequence on every run).
    """

    def __init__(
        self,
        num_real: int,
        num_synthetic: int,
        batch_size: int,
        real_per_batch: int,
        iterations: int,
        seed: int = 0,
    ) -> None:
        for key, value in (("real pool", num_real), ("synthetic pool", num_synthetic)):
            if int(value) < 1:
                raise ConfigError(f"the {key} is empty: no sample to mix into the batches")
        if not 1 <= int(real_per_batch) < int(batch_size):
            raise ConfigError(
                f"real_per_batch must be in [1, batch_size - 1] = [1, {batch_size - 1}], got {real_per_batch}"
            )
        self.num_real, self.num_synthetic = int(num_real), int(num_synthetic)
        self.batch_size, self.real = int(batch_size), int(real_per_batch)
        self.iterations = check_positive_int("iterations", iterations)
        self.seed = int(seed)

    def __len__(self) -> int:
        return self.iterations

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed)
        synthetic = self.batch_size - self.real
        for _ in range(self.iterations):
            real = torch.randint(self.num_real, (self.real,), generator=generator)
            fake = self.num_real + torch.randint(self.num_synthetic, (synthetic,), generator=generator)
            yield [int(i) for i in torch.cat([real, fake])]
