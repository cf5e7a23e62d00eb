"""REINFORCE with a baseline (refinement/reinforce.py, policy.py) on problems with known gradients.

Each check averages K independent batch estimates g_k of the gradient.  Their mean is compared with
the analytic gradient within 4 standard errors, SE = std(g_k) / sqrt(K): for an unbiased estimator the
mean is approximately normal around the truth (K >= 400 batches), so a 4-SE miss has probability
~6e-5 per component (and the seeds are fixed).  Each test also checks that 4 SE is small against the
gradient itself, so the tolerance is tight enough to catch a biased estimator (a wrong sign, a missing
detach, a baseline that uses the sample's own reward).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from anatosynth_components.acis.refinement import EmaBaseline, GeneratorPolicy, reinforce_loss
from anatosynth_components.errors import ConfigError


def _estimates(step, steps: int, use_baseline: bool, momentum: float = 0.9) -> torch.Tensor:
    """(steps, P) gradient-ascent estimates, one per batch; ``step(baseline)`` -> (loss, params, reward)."""
    baseline = EmaBaseline(momentum) if use_baseline else None
    rows = []
    for _ in range(steps):
        loss, params, reward = step(baseline)
        grads = torch.autograd.grad(loss, params)
        rows.append(-torch.cat([g.flatten() for g in grads]))  # minus the surrogate's gradient = ascent
        if baseline is not None:
            baseline.update(reward)
    return torch.stack(rows)


def _check_unbiased(estimates: torch.Tensor, truth: torch.Tensor, max_rel_tolerance: float) -> torch.Tensor:
    mean = estimates.mean(0)
    se = estimates.std(0) / math.sqrt(estimates.shape[0])
    assert torch.all((mean - truth).abs() < 4 * se), f"mean {mean}, truth {truth}, 4 SE {4 * se}"
    assert torch.all(4 * se < max_rel_tolerance * truth.abs().clamp_min(0.1)), (
        f"tolerance too loose: {4 * se}"
    )
    return estimates.var(0)


def test_gaussian_policy_gradient_unbiased_and_baseline_lowers_variance():
    """pi = N(mu, s^2), r(a) = -(a - c)^2: E[r] = -((mu - c)^2 + s^2), so d/dmu = -2 (mu - c) and
    d/dlog s = -2 s^2.  Per-sample variance of the mu-estimate at mu = 0, s = 1, c = 1: 30 without a
    baseline, 18 with the ideal constant one (E[r] = -2), so the EMA baseline should cut it by ~40 %
    (and lower that of the log s-estimate too)."""
    c, mu0, log_s0, batch = 1.0, 0.0, 0.0, 16
    mu = torch.tensor(mu0, requires_grad=True)
    log_s = torch.tensor(log_s0, requires_grad=True)
    gen = torch.Generator().manual_seed(0)

    def step(baseline):
        a = (mu + log_s.exp() * torch.randn(batch, generator=gen)).detach()
        log_prob = torch.distributions.Normal(mu, log_s.exp()).log_prob(a)
        reward = -((a - c) ** 2)
        b = None if baseline is None else baseline(reward)
        return reinforce_loss(log_prob, reward, b), (mu, log_s), reward

    truth = torch.tensor([-2 * (mu0 - c), -2 * math.exp(2 * log_s0)])
    var_plain = _check_unbiased(_estimates(step, 4000, use_baseline=False), truth, 0.2)
    var_base = _check_unbiased(_estimates(step, 4000, use_baseline=True), truth, 0.2)
    assert var_base[0] < 0.75 * var_plain[0] and var_base[1] < var_plain[1], (var_base, var_plain)
    assert var_plain[0] * batch == pytest.approx(30.0, rel=0.2)  # the analytic per-sample variance
    assert var_base[0] * batch == pytest.approx(18.0, rel=0.2)


def test_categorical_policy_gradient_unbiased_and_baseline_lowers_variance():
    """pi = softmax(theta) over 4 actions with fixed rewards R: d E[r] / d theta_j = p_j (R_j - E[r])."""
    rewards = torch.tensor([1.0, -0.5, 2.0, 0.3])
    theta = torch.tensor([0.2, -0.3, 0.0, 0.5], requires_grad=True)
    gen = torch.Generator().manual_seed(1)
    batch = 32

    def step(baseline):
        probs = torch.softmax(theta, 0)
        actions = torch.multinomial(probs.detach(), batch, replacement=True, generator=gen)
        log_prob = torch.distributions.Categorical(logits=theta).log_prob(actions)
        reward = rewards[actions]
        b = None if baseline is None else baseline(reward)
        return reinforce_loss(log_prob, reward, b), (theta,), reward

    p = torch.softmax(theta.detach(), 0)
    truth = p * (rewards - (p * rewards).sum())
    var_plain = _check_unbiased(_estimates(step, 1000, use_baseline=False), truth, 0.5)
    var_base = _check_unbiased(_estimates(step, 1000, use_baseline=True), truth, 0.5)
    assert var_base.sum() < 0.75 * var_plain.sum(), (var_base, var_plain)


class _ConstantPseudoMask(nn.Module):
    """G_pm(z) = 0.5 everywhere (no parameters); the policy's pseudo-mask action is N(0.5, sigma^2)."""

    def latent_shape(self, batch_size: int) -> tuple[int, ...]:
        return (batch_size, 1, 4, 4)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.full_like(z, 0.5)


class _Logits(nn.Module):
    """G_ann(pm) = theta broadcast over voxels."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.tensor([0.3, -0.2, 0.1][:num_classes]))

    def forward(self, pm: torch.Tensor) -> torch.Tensor:
        return self.theta.view(1, -1, 1, 1).expand(pm.shape[0], -1, *pm.shape[2:])


class _Intensity(nn.Module):
    """G_img(.) = mu broadcast over voxels."""

    def __init__(self, mu: float) -> None:
        super().__init__()
        self.mu = nn.Parameter(torch.tensor(mu))

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        return self.mu.expand(cond.shape[0], 1, *cond.shape[2:])


def test_generator_policy_estimate_matches_analytic_gradient():
    """The refiner's exact estimator (GeneratorPolicy log-prob / N, EMA baseline) on a reward with a
    known expectation: r = -mean_v (x_v - c)^2 - mean_v R[y_v].  With x_v ~ N(mu, s^2) (s = 0.05, mu
    = 0.5 far from the [0, 1] clip) and y_v ~ softmax(theta): E[r] = -((mu - c)^2 + s^2) - p . R, so
    d/dmu = -2 (mu - c) and d/dtheta_j = -p_j (R_j - p . R).  The surrogate divides log pi by the N
    voxels, so N times its gradient estimates these."""
    torch.manual_seed(2)
    c, mu0, sigma, batch = 0.3, 0.5, 0.05, 64
    class_cost = torch.tensor([0.0, 1.0, 0.4])
    policy = GeneratorPolicy(
        _ConstantPseudoMask(), _Logits(3), _Intensity(mu0), pm_sigma=0.05, image_sigma=sigma
    )
    params = (policy.image_generator.mu, policy.annotation_generator.theta)

    def step(baseline):
        sample = policy.sample(torch.zeros(policy.latent_shape(batch)))
        reward = -(sample.image - c).pow(2).flatten(1).mean(1) - class_cost[sample.annotation].flatten(
            1
        ).mean(1)
        b = None if baseline is None else baseline(reward)
        loss = reinforce_loss(sample.log_prob / sample.num_voxels, reward, b) * sample.num_voxels
        return loss, params, reward

    p = torch.softmax(policy.annotation_generator.theta.detach(), 0)
    truth = torch.cat([torch.tensor([-2 * (mu0 - c)]), -p * (class_cost - (p * class_cost).sum())])
    _check_unbiased(_estimates(step, 800, use_baseline=True), truth, 0.6)


def test_policy_sample_log_prob_is_the_sum_of_its_three_densities():
    torch.manual_seed(3)
    policy = GeneratorPolicy(
        _ConstantPseudoMask(), _Logits(3), _Intensity(0.5), pm_sigma=0.1, image_sigma=0.2
    )
    s = policy.sample(torch.zeros(policy.latent_shape(2)))
    assert s.pseudo_mask.shape == s.image.shape == s.annotation.shape == (2, 1, 4, 4)
    assert torch.equal(s.annotation_onehot.argmax(1, keepdim=True), s.annotation)
    p = torch.softmax(policy.annotation_generator.theta.detach(), 0)
    expected_ann = torch.log(p)[s.annotation].flatten(1).sum(1)
    torch.testing.assert_close(s.log_probs["annotation"].detach(), expected_ann)
    # the pseudo-mask action is not clipped here (0.5 +- 0.1 stays in [0, 1] at this seed), so its density
    # can be recomputed from the clipped value
    pm_lp = torch.distributions.Normal(0.5, 0.1).log_prob(s.pseudo_mask).flatten(1).sum(1)
    torch.testing.assert_close(s.log_probs["pseudo_mask"], pm_lp)
    total = s.log_probs["pseudo_mask"] + s.log_probs["annotation"] + s.log_probs["image"]
    torch.testing.assert_close(s.log_prob, total)
    assert s.image.min() >= 0 and s.image.max() <= 1


def test_ema_baseline_never_uses_the_current_reward():
    base = EmaBaseline(momentum=0.5)
    r = torch.tensor([1.0, 2.0, 6.0])
    torch.testing.assert_close(base(r), torch.tensor([4.0, 3.5, 1.5]))  # leave-one-out on the first step
    base.update(r)
    assert base.value == pytest.approx(3.0)
    torch.testing.assert_close(base(torch.tensor([100.0, -100.0])), torch.tensor([3.0, 3.0]))
    base.update(torch.tensor([5.0, 5.0]))
    assert base.value == pytest.approx(0.5 * 3.0 + 0.5 * 5.0)
    restored = EmaBaseline(0.1)
    restored.load_state_dict(base.state_dict())
    assert restored.value == base.value and restored.momentum == 0.5
    assert torch.equal(EmaBaseline()(torch.tensor([7.0])), torch.tensor([0.0]))  # batch of one, no history
    with pytest.raises(ConfigError, match="momentum"):
        EmaBaseline(1.0)


def test_reinforce_loss_detaches_the_reward_and_checks_shapes():
    log_prob = torch.zeros(3, requires_grad=True)
    reward = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    reinforce_loss(log_prob, reward, 2.0).backward()
    torch.testing.assert_close(log_prob.grad, -torch.tensor([-1.0, 0.0, 1.0]) / 3)
    assert reward.grad is None
    with pytest.raises(ValueError, match="differ in shape"):
        reinforce_loss(torch.zeros(3), torch.zeros(2))
