"""Reconstruction networks: EDSR-style ResNet, RED-CNN and ESRT (shapes, invariants of their
definitions, the size of the paper's ESRT)."""

from __future__ import annotations

import pytest
import torch

from anatosynth_components.errors import ConfigError, DataError
from anatosynth_components.experiments.networks.esrt import EMHA, ESRT, high_frequency
from anatosynth_components.experiments.networks.redcnn import REDCNN
from anatosynth_components.experiments.networks.resnet import EDSRNet


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_edsr_scales(scale):
    net = EDSRNet(spatial_dims=2, scale=scale, features=8, num_blocks=2)
    assert net(torch.rand(2, 1, 12, 12)).shape == (2, 1, 12 * scale, 12 * scale)


def test_edsr_3d_and_bad_scale():
    assert EDSRNet(spatial_dims=3, scale=2, features=4, num_blocks=1)(torch.rand(1, 1, 6, 6, 6)).shape == (
        1,
        1,
        12,
        12,
        12,
    )
    with pytest.raises(ConfigError, match="power of 2"):
        EDSRNet(scale=5)


def test_redcnn_shapes_and_identity_shortcut():
    net = REDCNN(spatial_dims=2, features=6)
    x = torch.rand(2, 1, 24, 28)
    assert net(x).shape == x.shape
    assert REDCNN(spatial_dims=3, features=4, kernel_size=3)(torch.rand(1, 1, 12, 12, 12)).shape == (
        1,
        1,
        12,
        12,
        12,
    )
    # with every weight and bias zero only the input-to-output shortcut is left: relu(x) = x for x >= 0
    for p in net.parameters():
        torch.nn.init.zeros_(p)
    torch.testing.assert_close(net(x), x)
    with pytest.raises(DataError, match="must exceed 20 pixels"):
        net(torch.rand(1, 1, 20, 32))


@pytest.mark.parametrize("scale", [2, 4])
def test_esrt_shapes(scale):
    net = ESRT(scale=scale, channels=8, num_heads=2, low_repeats=1)
    assert net(torch.rand(2, 1, 8, 12)).shape == (2, 1, 8 * scale, 12 * scale)
    with pytest.raises(ConfigError, match="2-D network"):
        ESRT(spatial_dims=3)


def test_esrt_paper_size():
    # ESRT's paper (Lu et al. 2022, Table 1) gives 751K parameters for x4 on RGB images
    params = sum(p.numel() for p in ESRT(scale=4, in_channels=3, out_channels=3).parameters())
    assert params == pytest.approx(751_000, rel=0.005)


def test_emha_attends_within_segments_only():
    torch.manual_seed(0)
    attention = EMHA(dim=16, num_heads=2, splits=4).eval()
    tokens = torch.rand(1, 12, 16)  # 4 segments of 3 tokens
    changed = tokens.clone()
    changed[0, 7] += 1.0  # a token of the third segment
    a, b = attention(tokens), attention(changed)
    torch.testing.assert_close(a[0, :6], b[0, :6])  # segments 1-2 do not see it
    torch.testing.assert_close(a[0, 9:], b[0, 9:])  # nor segment 4
    assert not torch.allclose(a[0, 6:9], b[0, 6:9])


def test_high_frequency_module():
    x = torch.rand(1, 3, 8, 8)
    low, high = high_frequency(x)
    assert low.shape == (1, 3, 4, 4)
    flat_low, flat_high = high_frequency(torch.full((1, 2, 8, 8), 0.7))
    torch.testing.assert_close(flat_high, torch.zeros_like(flat_high))  # no high frequency in a constant map
