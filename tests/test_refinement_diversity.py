"""Diversity of samples (metrics/diversity.py), the refinement report (refinement/report.py), and what
the Eq. 3 reward does about collapse (refinement/refiner.py's docstring)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.metrics import MultiScaleSSIMMetric
from monai.metrics.regression import compute_ms_ssim
from monai.utils import set_determinism
from test_refinement_refiner import SIZE, ct_batches, generators, make_refiner, registration
from test_refinement_uncertainty import CentroidRegistration, blob

from anatosynth_components.acis import label_one_hot
from anatosynth_components.acis.pseudomask_generator import sample_latent
from anatosynth_components.acis.refinement import (
    AppearanceUncertainty,
    DiffeomorphicRegistration,
    EmaBaseline,
    GeneratorPolicy,
    RefinementReport,
    RewardNormaliser,
    normalised_reward,
    reinforce_loss,
)
from anatosynth_components.errors import ConfigError, DataError
from anatosynth_components.metrics import (
    mean_pairwise_ms_ssim,
    ms_ssim_levels,
    ms_ssim_weights,
    pairwise_ms_ssim,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# --- the metric ----------------------------------------------------------------------------------------


def brute_force_pairs(images: torch.Tensor, levels: int) -> list[float]:
    """MONAI's MultiScaleSSIMMetric on one pair at a time, in a plain double loop over i < j."""
    metric = MultiScaleSSIMMetric(spatial_dims=images.ndim - 2, weights=ms_ssim_weights(levels))
    values = []
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            values.append(float(metric(images[i : i + 1], images[j : j + 1])))
    return values


@pytest.mark.parametrize(("shape", "levels"), [((32, 32), 2), ((64, 48), 3), ((24, 24, 22), 2)])
def test_pairwise_ms_ssim_matches_a_double_loop_over_pairs(shape, levels):
    """Smooth random images (so that every scale carries structure), 5 of them: 10 pairs, scored in
    chunks of 3 pairs, against one MONAI call per pair."""
    gen = torch.Generator().manual_seed(len(shape))
    base = torch.rand(1, 1, *shape, generator=gen)
    images = (0.6 * base + 0.4 * torch.rand(5, 1, *shape, generator=gen)).clamp(0, 1)
    images = torch.nn.functional.avg_pool2d(images[..., 0] if len(shape) == 3 else images, 3, 1, 1)
    if len(shape) == 3:
        images = images[..., None].expand(-1, -1, -1, -1, shape[2]).contiguous() * (
            0.5 + 0.5 * torch.rand(5, 1, 1, 1, shape[2], generator=gen)
        )
    assert ms_ssim_levels(shape) == levels
    values = pairwise_ms_ssim(images, pair_batch=3)
    expected = brute_force_pairs(images, levels)
    assert values.shape == (10,)
    np.testing.assert_allclose(values.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert mean_pairwise_ms_ssim(images) == pytest.approx(np.mean(expected), rel=1e-5)
    assert 0.05 < np.mean(expected) < 0.99  # a value in the interesting range, not a degenerate 0 or 1


def test_identical_samples_score_one_and_different_ones_less():
    gen = torch.Generator().manual_seed(0)
    one = torch.rand(1, 1, 64, 64, generator=gen)
    same = mean_pairwise_ms_ssim(one.expand(4, -1, -1, -1))
    assert same == pytest.approx(1.0, abs=1e-6)
    close = mean_pairwise_ms_ssim((one + 0.05 * torch.rand(4, 1, 64, 64, generator=gen)).clamp(0, 1))
    apart = mean_pairwise_ms_ssim(torch.rand(4, 1, 64, 64, generator=gen))
    assert apart < close < same  # more diverse sets score lower
    assert apart < 0.2


@pytest.mark.parametrize("side", [11, 21, 22, 43, 44, 87, 88, 98, 99, 175, 176, 256])
def test_levels_are_the_most_monai_computes_for_the_size(side):
    """The rule of ms_ssim_levels, checked by running MONAI: L scales work, L + 1 fail."""
    levels = ms_ssim_levels((side, side))
    x = torch.rand(2, 1, side, side, generator=torch.Generator().manual_seed(side))
    assert compute_ms_ssim(x, x.flip(0), 2, weights=ms_ssim_weights(levels)).shape == (2, 1)
    if levels < 5:
        with pytest.raises((ValueError, RuntimeError)):
            compute_ms_ssim(x, x.flip(0), 2, weights=[0.2] * (levels + 1))


def test_too_small_images_and_bad_sets_are_clear_errors():
    with pytest.raises(
        DataError, match=r"spatial size \(10, 32\) are too small for kernel_size 11: even one"
    ):
        pairwise_ms_ssim(torch.rand(3, 1, 10, 32))
    assert ms_ssim_levels((10, 32), kernel_size=7) == 1
    with pytest.raises(DataError, match="at least 2 images"):
        pairwise_ms_ssim(torch.rand(1, 1, 32, 32))
    with pytest.raises(DataError, match=r"\(K, C, H, W\)"):
        pairwise_ms_ssim(torch.rand(3, 32, 32))


# --- the refinement report -----------------------------------------------------------------------------


def deterministic_registration() -> DiffeomorphicRegistration:
    """No dropout: Eq. 3 is then a function of its inputs, so the report's numbers can be recomputed."""
    return DiffeomorphicRegistration(2, channels=(8, 8, 8, 8), final_conv_channels=(8,), dropout=0.0)


def recompute(gens, reg, reals, seeds, num_passes=2) -> dict[str, float]:
    """The report's three numbers, independently: the inference chain in eval mode for each seed's latent,
    a double loop over pairs with MONAI's MS-SSIM, Eq. 3 of sample k against real item k."""
    policy = GeneratorPolicy(gens["pm_generator"], gens["annotation_generator"], gens["image_generator"])
    policy.eval()
    with torch.no_grad():
        z = torch.cat([sample_latent(policy.latent_shape(1), s) for s in seeds])
        pm = gens["pm_generator"](z)
        ids = gens["annotation_generator"](pm).argmax(1, keepdim=True)
        onehot = label_one_hot(ids, 3)
        image = gens["image_generator"](torch.cat([pm, onehot], 1))
        u = AppearanceUncertainty(reg, num_passes)(reals[0], image, label_one_hot(reals[1], 3), onehot)
    policy.train()
    return {
        "diversity_ms_ssim": float(np.mean(brute_force_pairs(image, ms_ssim_levels(image.shape[2:])))),
        "uncertainty_image": float(u.image.mean()),
        "uncertainty_annotation": float(u.annotation.mean()),
    }


def test_report_before_and_after_match_an_independent_computation(real_ct, tmp_path, caplog):
    set_determinism(0)
    loader = ct_batches(real_ct, batch=4, count=2)
    gens, reg = generators(), deterministic_registration()
    report = RefinementReport(tmp_path / "models" / "refinement_report.json", num_samples=6, seed=3)
    refiner = make_refiner(loader, gens, reg, tmp_path, max_epochs=3, train_handlers=[report])
    reals = (torch.cat([b["image"] for b in loader])[:6], torch.cat([b["label"] for b in loader])[:6])
    expected_before = recompute(gens, reg, reals, range(3, 9))
    written = []
    refiner.add_event_handler(
        Events.ITERATION_COMPLETED(once=1),
        lambda e: written.append(json.loads(report.report_file.read_text())),
    )
    with caplog.at_level(logging.INFO):
        refiner.run()
    expected_after = recompute(gens, reg, reals, range(3, 9))
    data = json.loads(report.report_file.read_text())
    assert written[0]["before"] == data["before"] and written[0]["after"] is None  # written at the start
    assert data["samples"] == 6 and data["seeds"] == [3, 4, 5, 6, 7, 8] and data["num_passes"] == 2
    assert data["ms_ssim"] == {"kernel_size": 11, "levels": 1, "weights": [1.0]}  # 16 x 16: plain SSIM
    assert data["before"]["iteration"] == 0 and data["after"]["iteration"] == 6
    for name, value in expected_before.items():
        assert data["before"][name] == pytest.approx(value, rel=1e-4), name
        assert data["after"][name] == pytest.approx(expected_after[name], rel=1e-4), name
        assert data["change"][name] == pytest.approx(data["after"][name] - data["before"][name])
    assert data["after"] != data["before"] and data["possible_collapse"] is False
    line = next(
        r.getMessage() for r in caplog.records if "diversity (mean pairwise MS-SSIM" in r.getMessage()
    )
    b, a = data["before"], data["after"]
    d, ui, ua = "diversity_ms_ssim", "uncertainty_image", "uncertainty_annotation"
    assert (
        f"refinement: diversity (mean pairwise MS-SSIM, lower = more diverse) {b[d]:.3g} -> {a[d]:.3g}; "
        f"U_image {b[ui]:.3g} -> {a[ui]:.3g}; U_annotation {b[ua]:.3g} -> {a[ua]:.3g}"
    ) in line
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "collapse" in r.getMessage()]


def test_report_uses_the_same_latents_reals_and_dropout_masks_before_and_after(real_ct, tmp_path):
    """With MC dropout on and a learning rate of 0 nothing changes, so before == after exactly: the
    same latents, the same real items and the same dropout masks; the training's random stream is
    the same as without the report."""
    losses = {}
    for with_report in (True, False):
        set_determinism(1)
        handlers = [RefinementReport(tmp_path / "report.json", num_samples=4)] if with_report else []
        refiner = make_refiner(ct_batches(real_ct, batch=4, count=2), generators(), registration(), tmp_path,
                               max_epochs=2, lr=0.0, train_handlers=handlers)  # fmt: skip
        refiner.run()
        losses[with_report] = refiner.state.output["losses"]
    data = json.loads((tmp_path / "report.json").read_text())
    for name in ("diversity_ms_ssim", "uncertainty_image", "uncertainty_annotation"):
        assert data["before"][name] == data["after"][name], name
    assert data["before"]["uncertainty_image"] > 0
    assert losses[True] == losses[False]


def test_collapse_is_reported_with_a_warning(real_ct, tmp_path, caplog):
    """The pseudo-mask generator collapsed to a constant during refinement: every latent then gives the
    same pair, the MS-SSIM of the samples becomes 1 and the report warns."""
    set_determinism(2)
    gens = generators()
    report = RefinementReport(tmp_path / "report.json", num_samples=4, collapse_warning_rise=0.1)
    loader = ct_batches(real_ct, batch=4, count=1)
    refiner = make_refiner(loader, gens, registration(), tmp_path, max_epochs=1, train_handlers=[report])

    def collapse(engine):
        last = gens["pm_generator"].net[-1]
        torch.nn.init.zeros_(last.weight)
        torch.nn.init.zeros_(last.bias)

    refiner.add_event_handler(Events.EPOCH_COMPLETED, collapse)
    with caplog.at_level(logging.INFO):
        refiner.run()
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["after"]["diversity_ms_ssim"] == pytest.approx(1.0, abs=1e-5)
    assert data["before"]["diversity_ms_ssim"] < 0.9 and data["possible_collapse"] is True
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("possible collapse" in w and "more than collapse_warning_rise 0.1" in w for w in warnings)


def test_report_keeps_the_first_before_on_resume(real_ct, tmp_path):
    set_determinism(3)
    loader = ct_batches(real_ct, batch=4, count=2)
    path, state_dir = tmp_path / "report.json", str(tmp_path / "refine")
    make_refiner(loader, generators(), registration(), tmp_path, max_epochs=1, checkpoint_dir=state_dir,
                 train_handlers=[RefinementReport(path, num_samples=4)]).run()  # fmt: skip
    first = json.loads(path.read_text())
    make_refiner(loader, generators(), registration(), tmp_path, max_epochs=2, checkpoint_dir=state_dir,
                 resume=True, train_handlers=[RefinementReport(path, num_samples=4)]).run()  # fmt: skip
    second = json.loads(path.read_text())
    assert second["before"] == first["before"] and second["before"]["iteration"] == 0
    assert second["after"]["iteration"] == 4
    # other settings: the old 'before' does not apply and is measured again at the resumed iteration
    make_refiner(loader, generators(), registration(), tmp_path, max_epochs=3, checkpoint_dir=state_dir,
                 resume=True, train_handlers=[RefinementReport(path, num_samples=3)]).run()  # fmt: skip
    assert json.loads(path.read_text())["before"]["iteration"] == 4


def test_report_errors_name_the_key(real_ct, tmp_path):
    with pytest.raises(
        ConfigError, match=r"report_samples must be an integer >= 2 .* or 0 in a bundle .*; got 1"
    ):
        RefinementReport(tmp_path / "r.json", num_samples=1)
    report = RefinementReport(tmp_path / "r.json", num_samples=2, kernel_size=17)  # 16 x 16 images
    refiner = make_refiner(ct_batches(real_ct, batch=2, count=1), generators(), registration(), tmp_path,
                           max_epochs=1, train_handlers=[report])  # fmt: skip
    with pytest.raises(ConfigError, match=r"too small for kernel_size 17.*set report_samples to 0"):
        refiner.run()
    from monai.engines import SupervisedEvaluator

    with pytest.raises(ConfigError, match="attaches to an AcisRefiner"):
        RefinementReport(tmp_path / "r.json").attach(SupervisedEvaluator("cpu", [{}], torch.nn.Identity()))
    assert SIZE == 16


# --- collapse and the Eq. 3 reward -----------------------------------------------------------------------

POSITIONS = [(8, 8), (8, 15), (15, 8), (15, 15)]  # where the synthetic blob may go (the policy's actions)
REALS = [(9, 10), (11, 14), (14, 9), (13, 12)]  # the real items' blobs


def reward_table(contrasts: list[float]) -> torch.Tensor:
    """r[k, j]: the refiner's reward (Eq. 3, "ema" scales from one batch of history, weights 1 : 1) of a
    synthetic blob at POSITIONS[k] with contrast ``contrasts[k]`` paired with real item j.  The centroid
    registration moves blobs exactly, so what is left is the contrast difference, the same wherever the
    blob is: the registration error does not depend on the position."""
    size = (24, 24)
    x = torch.cat([blob(size, c) for c in REALS])
    y = label_one_hot((x > 0.5).long(), 2)
    u = AppearanceUncertainty(CentroidRegistration(), num_passes=1)
    table = []
    for k, pos in enumerate(POSITIONS):
        shape = blob(size, pos).expand(len(REALS), -1, -1, -1)
        out = u(x, contrasts[k] * shape, y, label_one_hot((shape > 0.5).long(), 2))
        table.append({"image": out.image, "annotation": out.annotation})
    norm = RewardNormaliser("ema")
    norm.update({name: torch.cat([t[name] for t in table]) for name in ("image", "annotation")})
    weights = {"image": 1.0, "annotation": 1.0}
    return torch.stack([normalised_reward(t, weights, norm(t)) for t in table])


def entropy(probs: torch.Tensor) -> float:
    return float(-(probs * probs.log()).sum())


def expected_reward(logits: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """J(theta) = E_{k ~ softmax(theta), j uniform}[r(k, j)], exactly (the policy over positions)."""
    return (torch.softmax(logits, 0) * table.mean(1)).sum()


def test_collapse_is_not_rewarded_at_equal_registration_error():
    """Every position registers to the same error: a collapsed generator (every z -> position 0) and a
    diverse one (z -> positions 0..3) get the same rewards sample for sample, so the same mean reward and
    zero advantages; the exact policy gradient of the expected reward is 0 (no push towards collapse)
    and the REINFORCE surrogate of either batch has a zero gradient.  "Zero" up to the interpolation
    rounding of the warps (the rewards agree to 4e-4 of their value); the gradient is 0.24 when one mode
    is easier (next test)."""
    table = reward_table([0.8] * 4)
    assert table.std() < 1e-3 * table.abs().mean() and table.mean() < -0.5  # equal, and not trivially 0
    collapsed, diverse = table[[0, 0, 0, 0], range(4)], table[[0, 1, 2, 3], range(4)]
    assert collapsed.mean() == pytest.approx(float(diverse.mean()), rel=1e-3)
    logits = torch.zeros(4, requires_grad=True)
    (grad,) = torch.autograd.grad(expected_reward(logits, table), logits)
    assert grad.abs().max() < 1e-4
    assert expected_reward(torch.tensor([20.0, 0, 0, 0]), table) == pytest.approx(
        float(expected_reward(torch.zeros(4), table)), rel=1e-3
    )
    for actions, rewards in ((torch.zeros(4, dtype=torch.long), collapsed), (torch.arange(4), diverse)):
        theta = torch.zeros(4, requires_grad=True)
        log_prob = torch.log_softmax(theta, 0)[actions]
        baseline = EmaBaseline()(rewards)  # leave-one-out on a first step
        assert (rewards - baseline).abs().max() < 1e-3
        (g,) = torch.autograd.grad(reinforce_loss(log_prob, rewards, baseline), theta)
        assert g.abs().max() < 1e-3


def test_an_easier_mode_is_rewarded_and_pulls_the_policy_towards_collapse():
    """The honest other half: when one position registers better (a contrast closer to the real one),
    the expected reward is highest for the policy that always picks it, and the policy gradient at the
    uniform policy lowers the entropy, also as REINFORCE estimates it over sampled batches.  Eq. 3 has
    no diversity term; the refinement report watches for this."""
    table = reward_table([0.95, 0.8, 0.8, 0.8])
    assert table[0].mean() > table[1:].mean(1).max()
    logits = torch.zeros(4, requires_grad=True)
    (grad,) = torch.autograd.grad(expected_reward(logits, table), logits)
    probs = torch.softmax(logits.detach(), 0)
    assert grad[0] > 0 and torch.all(grad[1:] < 0)
    step = torch.softmax(logits.detach() + 10.0 * grad, 0)  # one ascent step: mass moves to position 0
    assert step[0] > 0.3 and entropy(step) < entropy(probs) - 0.01
    assert expected_reward(torch.tensor([20.0, 0, 0, 0]), table) > expected_reward(torch.zeros(4), table)
    gen, baseline, estimates = torch.Generator().manual_seed(0), EmaBaseline(), []
    for _ in range(400):
        theta = torch.zeros(4, requires_grad=True)
        actions = torch.multinomial(torch.full((4,), 0.25), 8, replacement=True, generator=gen)
        partners = torch.randint(0, 4, (8,), generator=gen)
        rewards = table[actions, partners]
        log_prob = torch.log_softmax(theta, 0)[actions]
        (g,) = torch.autograd.grad(reinforce_loss(log_prob, rewards, baseline(rewards)), theta)
        estimates.append(-g)
        baseline.update(rewards)
    mean = torch.stack(estimates).mean(0)
    assert mean[0] > 0 and entropy(torch.softmax(10.0 * mean, 0)) < entropy(probs) - 0.01
