"""SPADE-faithful core of AnatoMaskGAN (issue 15 item 1): the hinge objective as SPADE writes it,
SPADE normalisation with plain-convolution gamma / beta, SPADE's block layout, and Eq. 5's sum."""

from __future__ import annotations

import pytest
import torch
from monai.losses import PatchAdversarialLoss
from monai.networks.blocks.spade_norm import SPADE as MonaiSPADE
from test_anatomask_networks import TINY, blob_masks

from anatosynth_components.anatomask import (
    AnatoMaskDiscriminator,
    AnatoMaskGenerator,
    AnatoMaskLoss,
    GTCClassifier,
    GTCLoss,
    SPADENorm,
    SPADEResBlock,
    feature_matching,
    hinge_discriminator,
    hinge_generator,
    judge,
)
from anatosynth_components.errors import ConfigError


@pytest.mark.parametrize("value", [-5.0, 0.0])
def test_generator_hinge_gradient_is_minus_one_over_n_even_when_d_is_confident(value):
    logits = torch.full((2, 1, 3, 3), value, requires_grad=True)  # N = 18 patch logits
    hinge_generator([logits]).backward()
    assert torch.allclose(logits.grad, torch.full_like(logits, -1.0 / 18))
    # MONAI's tanh "hinge" is what this replaces: its gradient vanishes at D = -5
    monai_logits = torch.full((2, 1, 3, 3), value, requires_grad=True)
    PatchAdversarialLoss(criterion="hinge")(
        monai_logits, target_is_real=True, for_discriminator=False
    ).backward()
    assert (monai_logits.grad.abs().max() < 1e-3) == (value == -5.0)


def test_discriminator_hinge_is_zero_beyond_the_margin_and_linear_inside():
    assert hinge_discriminator([torch.tensor([1.0, 3.0, 7.0])], real=True) == 0
    assert hinge_discriminator([torch.tensor([-1.0, -4.0])], real=False) == 0
    # inside the margin: mean relu(1 - D) on real, mean relu(1 + D) on fake, averaged over scales
    real = [torch.tensor([0.5, -2.0]), torch.tensor([2.0, 2.0])]
    assert hinge_discriminator(real, real=True).item() == pytest.approx(((0.5 + 3.0) / 2 + 0.0) / 2)
    assert hinge_discriminator([torch.tensor([0.0, -0.5])], real=False).item() == pytest.approx(0.75)


def test_spade_modulation_of_a_one_class_mask_is_not_zero():
    """For a mask of one class SPADE's gamma / beta are a learned constant per channel (away from
    the zero-padded border); MONAI's instance-normalised gamma / beta have zero mean over every
    channel's map, so they cannot shift a class's intensity (the departure this module fixes)."""
    torch.manual_seed(0)
    mask = torch.zeros(1, 3, 16, 16)
    mask[:, 1] = 1.0
    ours = SPADENorm(2, 8, 3, hidden_channels=16)
    gamma, beta = ours.modulation(mask, (16, 16))
    inner = (slice(None), slice(None), slice(4, 12), slice(4, 12))
    assert gamma[inner].mean((2, 3)).abs().max() > 1e-2 and beta[inner].mean((2, 3)).abs().max() > 1e-2
    assert torch.allclose(beta[inner], beta[inner][..., :1, :1].expand_as(beta[inner]))  # constant inside
    x = torch.randn(1, 8, 16, 16)
    assert not torch.allclose(ours(x, mask), ours.param_free_norm(x), atol=1e-3)
    monai = MonaiSPADE(3, 8, hidden_channels=16)
    actv = monai.mlp_shared(mask)
    assert monai.mlp_gamma(actv).mean((2, 3)).abs().max() < 1e-5
    assert monai.mlp_beta(actv).mean((2, 3)).abs().max() < 1e-5
    assert isinstance(ours.mlp_gamma, torch.nn.Conv2d) and isinstance(ours.mlp_shared[1], torch.nn.ReLU)


def test_spade_res_block_matches_its_equation_and_is_spectrally_normalised():
    torch.manual_seed(0)
    block = SPADEResBlock(2, 8, 4, 3, hidden_channels=16).eval()
    x, mask = torch.randn(2, 8, 8, 8), blob_masks(2, 1, 3, size=8)[:, :, 0]
    act = torch.nn.functional.leaky_relu
    dx = block.conv_1(act(block.norm_1(block.conv_0(act(block.norm_0(x, mask), 0.2)), mask), 0.2))
    assert torch.allclose(block(x, mask), block.conv_s(block.norm_s(x, mask)) + dx)
    assert block.conv_s.bias is None
    for conv in (block.conv_0, block.conv_1, block.conv_s):
        conv.train()
        for _ in range(30):  # each access in training mode is one power iteration
            weight = conv.weight.detach()
        sigma = float(torch.linalg.matrix_norm(weight.flatten(1), ord=2))
        assert sigma == pytest.approx(1.0, abs=0.02)  # spectral norm keeps the largest singular value at 1
    same = SPADEResBlock(2, 4, 4, 3, hidden_channels=16)
    assert not same.learned_shortcut and not hasattr(same, "conv_s")


def test_generator_has_spades_block_layout():
    """Head at the lowest level, two middle blocks at the next, one up block per further level:
    7 blocks for SPADE's 6 levels (7x7 -> 224x224), widths 16-16-16-16-8-4-2-1 x base_channels."""
    g = AnatoMaskGenerator(5, 3, spatial_size=(64, 64), base_channels=2)
    assert g.blocks_per_level == (1, 2, 1, 1, 1, 1)
    widths = [(b.conv_0.in_channels, b.conv_1.out_channels) for level in g.blocks for b in level]
    assert widths == [(32, 32), (32, 32), (32, 32), (32, 16), (16, 8), (8, 4), (4, 2)]
    with pytest.raises(ConfigError, match="blocks_per_level must give at least one block for each of the 4"):
        AnatoMaskGenerator(5, 3, blocks_per_level=(1, 2), **TINY)
    with pytest.raises(ConfigError, match="use_gnn_sif needs the encoder"):
        AnatoMaskGenerator(5, 3, use_gnn_sif=True, use_encoder=False, **TINY)
    spade_with_encoder = AnatoMaskGenerator(5, 3, use_gnn_sif=False, use_encoder=True, **TINY)
    assert hasattr(spade_with_encoder, "enc_in") and not spade_with_encoder.gnn
    assert not hasattr(AnatoMaskGenerator(5, 3, use_gnn_sif=False, **TINY), "enc_in")  # plain SPADE head


def test_eq5_total_is_the_weighted_sum_of_the_logged_terms_and_feature_matching_divides_by_n_d():
    torch.manual_seed(0)
    k, n = 4, 3
    g = AnatoMaskGenerator(k, n, **TINY)
    d = AnatoMaskDiscriminator(k, num_d=2, num_layers_d=2, channels=8)
    loss = AnatoMaskLoss(lambda_feat=3.0, lambda_vgg=0.0, lambda_gtc=7.0, gtc=GTCLoss(GTCClassifier(k)))
    masks, real, z = blob_masks(2, n, k), torch.rand(2, 1, n, 32, 32), torch.arange(n).repeat(2, 1)
    fake = g(masks, z, torch.tensor([0, 1]))
    fake_d, real_d = judge(d, masks, fake, real)
    terms = loss.generator(masks, fake, real, fake_d, real_d)
    assert set(terms) == {"gan", "feat", "gtc", "total"}
    assert terms["total"].item() == pytest.approx(
        terms["gan"].item() + 3.0 * terms["feat"].item() + 7.0 * terms["gtc"].item(), rel=1e-6
    )
    assert terms["gan"].item() == pytest.approx(-sum(o.mean().item() for o in fake_d[0]) / 2, rel=1e-5)
    pairs = [(f, r) for fd, rd in zip(fake_d[1], real_d[1], strict=True) for f, r in zip(fd, rd, strict=True)]
    brute = sum((f - r).abs().mean().item() for f, r in pairs) / 2
    assert feature_matching(fake_d[1], real_d[1]).item() == pytest.approx(brute, rel=1e-5)
    assert terms["feat"].item() == pytest.approx(brute, rel=1e-5)
    d_terms = loss.discriminator(masks, fake.detach(), real, fake_d, real_d)
    assert d_terms["d_real"].item() == pytest.approx(hinge_discriminator(real_d[0], real=True).item())
    assert d_terms["total"].item() == pytest.approx(
        d_terms["d_real"].item() + d_terms["d_fake"].item() + d_terms["gtc_classifier"].item(), rel=1e-6
    )
