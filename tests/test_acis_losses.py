"""WGAN-GP (Gulrajani et al., Eq. 3) against hand computations, and the ACIS synthesis objective."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from anatosynth_components.acis import AcisSynthesisLoss, WGANGPLoss, gradient_penalty
from anatosynth_components.acis.one_hot import straight_through_one_hot
from anatosynth_components.acis.wgan_gp import interpolate
from anatosynth_components.errors import ConfigError


class LinearCritic(nn.Module):
    """D(x) = <w, x> + b: its input gradient is w everywhere, so the penalty is lambda (||w|| - 1)^2."""

    def __init__(self, w: torch.Tensor, b: float = 0.3) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(torch.tensor(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w + self.b


class QuadraticCritic(nn.Module):
    """D(x) = 0.5 ||x||^2: gradient x^ itself, so the penalty depends on where eps puts x^."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x.flatten(1).pow(2).sum(1)


def test_gradient_penalty_of_a_linear_critic_is_exact():
    w = torch.tensor([3.0, 0.0, 4.0, 0.0])  # ||w|| = 5
    critic = LinearCritic(w)
    real, fake = torch.rand(3, 1, 2, 2), torch.rand(3, 1, 2, 2)
    gp = gradient_penalty(critic, real, fake, lambda_gp=10.0)
    assert float(gp) == pytest.approx(10.0 * (5.0 - 1.0) ** 2)  # 160, whatever eps was drawn

    terms = WGANGPLoss(10.0).critic_loss(critic, real, fake)
    d_real, d_fake = float((real.flatten(1) @ w).mean() + 0.3), float((fake.flatten(1) @ w).mean() + 0.3)
    assert float(terms["wasserstein"]) == pytest.approx(d_real - d_fake, abs=1e-5)
    assert float(terms["total"]) == pytest.approx(d_fake - d_real + 160.0, abs=1e-4)
    # dL/dw = E[fake] - E[real] + lambda * 2 (||w|| - 1) w / ||w||   (the penalty's gradient reaches D)
    terms["total"].backward()
    expected = fake.flatten(1).mean(0) - real.flatten(1).mean(0) + 10.0 * 2 * (5.0 - 1.0) * w / 5.0
    assert torch.allclose(critic.w.grad, expected, atol=1e-4)
    assert float(WGANGPLoss().generator_loss(critic, fake)) == pytest.approx(-d_fake, abs=1e-5)


def test_gradient_penalty_uses_the_interpolates():
    real = torch.tensor([[1.0, 0.0]]).reshape(1, 1, 2)
    fake = torch.tensor([[0.0, 2.0]]).reshape(1, 1, 2)
    eps = torch.tensor([0.25])
    x_hat = interpolate(real, fake, eps)
    assert torch.allclose(x_hat.flatten(), torch.tensor([0.25, 1.5]))
    norm = (0.25**2 + 1.5**2) ** 0.5  # gradient of 0.5 ||x||^2 at x^ is x^
    gp = gradient_penalty(QuadraticCritic(), real, fake, lambda_gp=2.0, eps=eps)
    assert float(gp) == pytest.approx(2.0 * (norm - 1.0) ** 2)
    with pytest.raises(ConfigError, match="lambda_gp must be >= 0"):
        WGANGPLoss(-1)


def test_synthesis_objective_is_the_documented_weighted_sum():
    torch.manual_seed(0)
    loss = AcisSynthesisLoss(
        num_classes=3, lambda_rec=100.0, lambda_adv=2.0, lambda_ann=0.5, phase2_anchor=0.25
    )
    image, real = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    logits, labels = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 1, 8, 8))
    d_out = torch.randn(2, 1, 3, 3)
    t = loss.phase1(image, real, logits, labels, d_out)
    mse = float(((image - real) ** 2).mean())
    adv = float(nn.functional.binary_cross_entropy(torch.sigmoid(d_out), torch.ones_like(d_out)))
    assert float(t["mse"]) == pytest.approx(mse, rel=1e-5) and float(t["adv"]) == pytest.approx(adv, rel=1e-5)
    assert float(t["total"]) == pytest.approx(100 * mse + 2 * adv + 0.5 * float(t["dice_ce"]), rel=1e-5)
    t2 = loss.phase2(d_out, t)
    assert float(t2["total"]) == pytest.approx(2 * adv + 0.25 * float(t["total"]), rel=1e-5)
    d = loss.discriminator(d_out, -d_out)
    assert float(d["total"]) == pytest.approx(0.5 * (float(d["real"]) + float(d["fake"])))
    with pytest.raises(ConfigError, match="adv_criterion must be one of"):
        AcisSynthesisLoss(3, adv_criterion="wasserstein")
    with pytest.raises(ConfigError, match="lambda_rec must be >= 0"):
        AcisSynthesisLoss(3, lambda_rec=-1)


def test_straight_through_one_hot_is_hard_forward_and_softmax_backward():
    logits = torch.randn(2, 4, 5, requires_grad=True)
    hard = straight_through_one_hot(logits)
    assert torch.equal(hard, nn.functional.one_hot(logits.argmax(1), 4).permute(0, 2, 1).float())
    weights = torch.randn(2, 4, 5)
    (hard * weights).sum().backward()
    soft = logits.detach().clone().requires_grad_(True)
    (torch.softmax(soft, 1) * weights).sum().backward()
    assert torch.allclose(logits.grad, soft.grad)
