"""The AnatoMaskGAN bundles' training loader: ``batch_size`` stacks per step, integer labels in the cache,
workers and pinned memory by device (the bundles' own ``train.json``, parsed in process on tiny data)."""

from __future__ import annotations

import pytest
import torch
from conftest import REPO
from monai.bundle import ConfigParser

from anatosynth_components.bundle import label_dtype, loader_workers, on_cuda, volumes_per_batch
from anatosynth_components.data.demo.generate import generate_demo
from anatosynth_components.errors import ConfigError

KIND = {"anatomask_oasis": "brain", "anatomask_abdomen": "abdomen"}


def train_parser(bundle: str, tmp_path, **overrides) -> ConfigParser:
    data = generate_demo(KIND[bundle], tmp_path / "data", subjects=10, shape=(40, 48, 20), progress=False)
    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles" / bundle / "configs" / "train.json"))
    parser.update(
        {
            "bundle_root": str(tmp_path / "root"),
            "dataset_dir": str(data),
            "spatial_size": [32, 32],
            "num_slices": 4,
            "device": "$torch.device('cpu')",
        }
        | overrides
    )
    return parser


@pytest.mark.parametrize("bundle", sorted(KIND))
def test_a_training_batch_holds_batch_size_stacks_and_integer_labels(bundle, tmp_path):
    parser = train_parser(bundle, tmp_path, batch_size=6, stacks_per_volume=3)
    loader = parser.get_parsed_content("train#dataloader")
    assert loader.batch_size == 2 and loader.drop_last and loader.num_workers == 0 and not loader.pin_memory
    cached = loader.dataset._cache[0]
    assert (
        cached["label"].dtype == torch.uint8 and cached["image"].dtype == torch.float32
    )  # the cached volume
    batches = list(loader)
    assert len(batches) == len(loader.dataset) // 2  # 7 training subjects: 3 steps, the odd volume dropped
    for batch in batches:
        assert batch["image"].shape == (6, 1, 4, 32, 32) and batch["label"].shape == (6, 1, 4, 32, 32)
        assert batch["label"].dtype == torch.uint8 and batch["z_index"].shape == (6, 4)


def test_the_trainer_takes_integer_label_batches(tmp_path):
    """One iteration of the bundle's trainer on a uint8 label batch (one-hot made from the integers)."""
    net = {"base_channels": 4, "channel_mults": [2, 1], "disc_channels": 4, "disc_layers": 1, "lambda_vgg": 0}
    parser = train_parser("anatomask_oasis", tmp_path, batch_size=2, stacks_per_volume=2, **net)
    trainer = parser.get_parsed_content("train#trainer")
    batch = next(iter(parser.get_parsed_content("train#dataloader")))
    assert batch["label"].dtype == torch.uint8
    trainer.state.device = torch.device("cpu")
    out = trainer.train_step(batch)
    assert out["pred"].shape == (2, 1, 4, 32, 32) and all(
        torch.isfinite(torch.tensor(list(out["losses"].values())))
    )
    assert torch.equal(out["label"], batch["label"].as_tensor())


def test_batch_size_must_be_a_multiple_of_stacks_per_volume():
    assert volumes_per_batch(8, 4) == 2 and volumes_per_batch("8", "2") == 4
    with pytest.raises(
        ConfigError, match=r"batch_size \(6\).*multiple of stacks_per_volume \(4\).*batch_size 4 or 8"
    ):
        volumes_per_batch(6, 4)
    with pytest.raises(ConfigError, match="stacks_per_volume must be an integer >= 1"):
        volumes_per_batch(8, 0)


def test_workers_pinned_memory_and_label_dtype_follow_the_device_and_classes():
    assert loader_workers("cpu") == 0 and not on_cuda("cpu")
    assert 0 <= loader_workers("cuda:0") <= 4 and on_cuda(torch.device("cuda", 0))
    assert (
        label_dtype(36) == torch.uint8 and label_dtype(14) == torch.uint8 and label_dtype(1000) == torch.int16
    )
