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

from anatosynth_components.acis.refinement import (
    EmaBaseline,
    GeneratorPolicy,
    RewardNormaliser,
    normalised_reward,
    reinforce_loss,
)
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


# --- the two Eq. 3 terms on one scale (refinement/reward.py) -----------------------------------------------


def _two_scale_terms(steps: int, batch: int = 8, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Batches of two positive terms 100x apart in raw scale (image ~0.02, annotation ~2, as Eq. 3 gives
    for CT slices and one-hot annotations), each with the same 30 % relative spread across samples."""
    gen = torch.Generator().manual_seed(seed)
    return [
        {
            "image": 0.02 * torch.exp(0.3 * torch.randn(batch, generator=gen)),
            "annotation": 2.0 * torch.exp(0.3 * torch.randn(batch, generator=gen)),
        }
        for _ in range(steps)
    ]


def _contributions(mode: str, steps: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Per-sample contributions ``U_k / s_k`` of each term to the reward (weights 1), over all steps."""
    norm, out = RewardNormaliser(mode, momentum=0.9), {"image": [], "annotation": []}
    for terms in steps:
        scales = norm(terms)
        for name in out:
            out[name].append(terms[name] / scales[name])
        reward = normalised_reward(terms, {"image": 1.0, "annotation": 1.0}, scales)
        torch.testing.assert_close(reward, -(out["image"][-1] + out["annotation"][-1]))
        norm.update(terms)
    return {name: torch.cat(values) for name, values in out.items()}


def test_ema_normalisation_puts_both_terms_on_one_scale():
    """Raw, the annotation term is ~100x the image term in mean and in spread, so it decides the reward
    alone; normalised by the running mean of each term, both contribute ~1 on average and spread alike
    (measured: means 1.005 / 1.006, std ratio 1.00; raw: mean ratio 99, std ratio 99)."""
    steps = _two_scale_terms(200)
    raw = _contributions("none", steps)
    assert raw["annotation"].mean() / raw["image"].mean() > 80
    assert raw["annotation"].std() / raw["image"].std() > 80
    scaled = _contributions("ema", steps)
    for name in ("image", "annotation"):
        assert scaled[name].mean() == pytest.approx(1.0, abs=0.1)
    assert 0.8 < scaled["annotation"].std() / scaled["image"].std() < 1.25


def test_normalisation_keeps_the_order_of_samples_within_a_term_and_ignores_their_own_value():
    """Within one step a term's scale is the same for every sample once there is history, so the reward
    ranks the samples of a term as the raw term does; at the first step the leave-one-out scale
    ``(S - U_i) / (B - 1)`` still ranks them alike (``U / (S - U)`` rises with U).  A sample's scale never
    depends on its own value (a changed U_i leaves s_i unchanged), so REINFORCE stays unbiased."""
    norm = RewardNormaliser("ema", momentum=0.5)
    for step, terms in enumerate(_two_scale_terms(5, batch=6, seed=1)):
        scales = norm(terms)
        reward = normalised_reward(terms, {"image": 1.0, "annotation": 0.0}, scales)
        assert torch.equal(torch.argsort(reward), torch.argsort(-terms["image"])), step
        for i in range(6):
            changed = {k: v.clone() for k, v in terms.items()}
            changed["image"][i] *= 3.0
            assert norm(changed)["image"][i] == pytest.approx(float(scales["image"][i])), (step, i)
        if step > 0:
            assert torch.all(scales["image"] == scales["image"][0])
        norm.update(terms)


def test_reward_normaliser_state_and_errors():
    norm = RewardNormaliser("ema", momentum=0.5)
    first = {"image": torch.tensor([1.0, 3.0]), "annotation": torch.tensor([0.0, 0.0])}
    torch.testing.assert_close(norm(first)["image"], torch.tensor([3.0, 1.0]))  # leave-one-out
    assert norm(first)["annotation"].min() > 0  # floored: an exactly-zero term stays 0, never NaN
    norm.update(first)
    norm.update({"image": torch.tensor([4.0, 4.0]), "annotation": torch.tensor([1.0, 1.0])})
    assert norm.values == pytest.approx({"image": 3.0, "annotation": 0.5})
    torch.testing.assert_close(norm({"image": torch.tensor([9.0])})["image"], torch.tensor([3.0]))
    restored = RewardNormaliser("ema", momentum=0.9)
    restored.load_state_dict(norm.state_dict())
    assert restored.values == norm.values
    assert torch.equal(RewardNormaliser("none")(first)["image"], torch.ones(2))
    with pytest.raises(
        ConfigError, match="the checkpoint's reward_normalisation is 'ema', the config's 'none'"
    ):
        RewardNormaliser("none").load_state_dict(norm.state_dict())
    with pytest.raises(ConfigError, match="reward_normalisation must be one of"):
        RewardNormaliser("zscore")
