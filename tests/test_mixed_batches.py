"""Real and synthetic samples mixed at a fixed ratio per batch, the same at every few-shot size n."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from anatosynth_components.errors import ConfigError
from anatosynth_components.experiments.mixed_batches import MixedBatchSampler, real_per_batch
from anatosynth_components.experiments.training import train_fixed_iterations


@pytest.mark.parametrize("num_real", [4, 80])
def test_every_batch_holds_the_ratio_whatever_the_pool_sizes(num_real):
    sampler = MixedBatchSampler(num_real, 8, batch_size=4, real_per_batch=2, iterations=200, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 200
    assert all(sum(i < num_real for i in b) == 2 for b in batches)
    real = torch.tensor([i for b in batches for i in b if i < num_real])
    fake = torch.tensor([i - num_real for b in batches for i in b if i >= num_real])
    assert real.min() >= 0 and real.max() < num_real and fake.min() >= 0 and fake.max() < 8
    # uniform within each pool: 400 synthetic draws, every sample about 50 times (std 6.6)
    counts = torch.bincount(fake, minlength=8)
    assert counts.min() > 25 and counts.max() < 75
    assert batches == list(MixedBatchSampler(num_real, 8, 4, 2, 200, seed=1))  # seeded


def test_real_per_batch_and_bad_ratios():
    assert real_per_batch(2) == 1 and real_per_batch(16, [3, 1]) == 12 and real_per_batch(8, [1, 3]) == 2
    assert real_per_batch(2, [5, 1]) == 1  # at least one of each kind
    with pytest.raises(ConfigError, match="real_synthetic_ratio must be two positive integers"):
        real_per_batch(4, [1, 0])
    with pytest.raises(ConfigError, match="batch_size must be at least 2"):
        real_per_batch(1)
    with pytest.raises(ConfigError, match="synthetic pool is empty"):
        MixedBatchSampler(4, 0, 2, 1, 3)


def test_training_sees_the_mixed_batches():
    real = TensorDataset(torch.zeros(3, 1))
    synthetic = TensorDataset(torch.ones(5, 1))
    seen = []

    def prepare(batch, device, non_blocking=False, **kwargs):
        seen.append(batch[0].flatten().tolist())
        return batch[0], batch[0]

    net = torch.nn.Linear(1, 1)
    train_fixed_iterations(
        net, torch.nn.MSELoss(), real, 6, 4, 1e-3, "cpu", 0, prepare_batch=prepare, progress=False,
        synthetic=synthetic, real_synthetic_ratio=[1, 1],
    )  # fmt: skip
    assert len(seen) == 6 and all(sorted(b) == [0.0, 0.0, 1.0, 1.0] for b in seen)
