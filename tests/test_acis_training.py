"""ACIS training steps and trainer in process: which networks each update moves, that gradients reach
the annotation generator in phase 2, that phase 1 learns, and the trainer's start-state errors."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from ignite.engine import Events

from anatosynth_components.acis import (
    AcisPairGenerator,
    AcisParts,
    AcisSynthesisLoss,
    AcisTrainer,
    ImageDiscriminator,
    PseudoMaskCritic,
    WGANGPLoss,
    pseudo_mask_gan_step,
    synthesis_step,
)
from anatosynth_components.errors import ConfigError

SIZE = (16, 16)
C = 3


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make(seed: int = 0):
    torch.manual_seed(seed)
    net = AcisPairGenerator(
        2,
        SIZE,
        C,
        latent_channels=2,
        pm_channels=(8, 4),
        annotation_channels=(8, 8),
        image_channels=(8, 8),
        num_res_units=1,
    )
    critic = PseudoMaskCritic(2, channels=4, num_layers=1)
    disc = ImageDiscriminator(2, C, channels=4, num_layers=1)
    return net, critic, disc


def batch(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    labels = torch.zeros(2, 1, *SIZE, dtype=torch.long)
    labels[:, :, 4:12, 3:8], labels[:, :, 4:12, 9:14] = 1, 2
    image = 0.2 + 0.3 * labels.float() + 0.05 * torch.rand(2, 1, *SIZE, generator=g)
    pm = (image * 4).round() / 4  # piecewise constant, like a Voronoi pseudo-mask
    return image, labels, pm


def params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def moved(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


def parts(net, critic, disc) -> AcisParts:
    return AcisParts(net.pseudo_mask_generator, net.annotation_generator, net.image_generator, critic, disc)


def test_wgan_step_updates_the_critic_always_and_the_generator_when_asked():
    net, critic, _ = make()
    g = net.pseudo_mask_generator
    opt_pm, opt_c = torch.optim.Adam(g.parameters(), 1e-3), torch.optim.Adam(critic.parameters(), 1e-3)
    _, _, pm = batch()
    latent = lambda b: torch.randn(net.latent_shape(b))  # noqa: E731
    g0, c0 = params(g), params(critic)
    out, fake = pseudo_mask_gan_step(
        pm, g, critic, WGANGPLoss(), opt_pm, opt_c, latent, update_generator=False
    )
    assert moved(c0, critic) and not moved(g0, g) and "pm_generator" not in out
    assert fake.shape == pm.shape and not fake.requires_grad
    c1 = params(critic)
    out, _ = pseudo_mask_gan_step(pm, g, critic, WGANGPLoss(), opt_pm, opt_c, latent, update_generator=True)
    assert (
        moved(g0, g)
        and moved(c1, critic)
        and set(out) == {"pm_critic", "pm_wasserstein", "pm_gp", "pm_generator"}
    )
    assert all(p.requires_grad for p in critic.parameters())  # unfrozen after the generator update


def test_phase1_step_moves_the_synthesis_networks_not_the_pseudo_mask_generator():
    net, critic, disc = make()
    loss = AcisSynthesisLoss(C)
    opt_g = torch.optim.Adam(
        [*net.annotation_generator.parameters(), *net.image_generator.parameters()], 1e-3
    )
    opt_d = torch.optim.Adam(disc.parameters(), 1e-3)
    before = {
        n: params(getattr(net, n))
        for n in ("pseudo_mask_generator", "annotation_generator", "image_generator")
    }
    d0 = params(disc)
    out, outputs = synthesis_step(parts(net, critic, disc), loss, opt_g, opt_d, *batch())
    assert moved(d0, disc) and moved(before["annotation_generator"], net.annotation_generator)
    assert moved(before["image_generator"], net.image_generator)
    assert not moved(before["pseudo_mask_generator"], net.pseudo_mask_generator)
    assert {"g_total", "g_mse", "g_adv", "g_dice_ce", "d_total", "d_real", "d_fake"} <= set(out)
    assert outputs["pred"].shape == (2, 1, *SIZE) and outputs["pred_label"].shape == (2, 1, *SIZE)


def test_phase2_adversarial_gradient_reaches_the_annotation_generator():
    """With the anchor off, the only path to G_ann is D(G_img(pm, st-onehot(G_ann(pm)))): its update
    proves the straight-through one-hot carries the discriminator's gradient."""
    net, critic, disc = make()
    loss = AcisSynthesisLoss(C, phase2_anchor=0.0)
    opt_g = torch.optim.SGD([*net.annotation_generator.parameters(), *net.image_generator.parameters()], 0.1)
    opt_d = torch.optim.SGD(disc.parameters(), 0.1)
    ann0, pm0 = params(net.annotation_generator), params(net.pseudo_mask_generator)
    with torch.no_grad():
        generated = net.pseudo_mask_generator(net.sample_latent(2, seed=0))
    out, outputs = synthesis_step(
        parts(net, critic, disc), loss, opt_g, opt_d, *batch(), generated_pm=generated
    )
    assert moved(ann0, net.annotation_generator) and not moved(pm0, net.pseudo_mask_generator)
    assert set(out) == {"g_adv_generated", "g_total", "d_total", "d_real", "d_fake"}
    assert "pred" not in outputs and outputs["generated_image"].shape == (2, 1, *SIZE)


def test_phase1_learns_to_reconstruct_and_label_a_fixed_batch():
    net, critic, disc = make(seed=3)
    loss = AcisSynthesisLoss(C)
    opt_g = torch.optim.Adam(
        [*net.annotation_generator.parameters(), *net.image_generator.parameters()], 3e-3
    )
    opt_d = torch.optim.Adam(disc.parameters(), 2e-4)
    first = last = None
    for _ in range(40):
        out, _ = synthesis_step(parts(net, critic, disc), loss, opt_g, opt_d, *batch())
        first = first or out
        last = out
    assert last["g_mse"] < 0.3 * first["g_mse"] and last["g_dice_ce"] < 0.6 * first["g_dice_ce"]


def _trainer(tmp_path, phase: int, **kwargs) -> AcisTrainer:
    net, critic, disc = make()
    image, labels, pm = batch()
    loader = [{"image": image, "label": labels, "pseudo_mask": pm}]
    adam = lambda m: torch.optim.Adam(m.parameters(), 1e-3)  # noqa: E731
    return AcisTrainer(
        "cpu",
        1,
        loader,
        net,
        critic,
        disc,
        AcisSynthesisLoss(C),
        WGANGPLoss(),
        adam(net.image_generator),
        adam(disc),
        adam(net.pseudo_mask_generator),
        adam(critic),
        phase=phase,
        **kwargs,
    )


def test_phase2_needs_phase1_and_resume_needs_a_checkpoint(tmp_path):
    trainer = _trainer(tmp_path, 2, checkpoint_dir=str(tmp_path / "p2"), init_dir=str(tmp_path / "p1"))
    with pytest.raises(
        ConfigError, match=r"phase 2 starts from phase 1, but .*p1 holds no latest_checkpoint"
    ):
        trainer.run()
    trainer = _trainer(tmp_path, 1, checkpoint_dir=str(tmp_path / "p1"), resume=True)
    with pytest.raises(ConfigError, match="holds no latest_checkpoint_epoch=N.pt; train once without resume"):
        trainer.run()
    # phase 1 for one epoch, then phase 2 starts from exactly its networks
    first = _trainer(tmp_path, 1, checkpoint_dir=str(tmp_path / "p1"), model_file=str(tmp_path / "model.pt"))
    first.run()
    second = _trainer(tmp_path, 2, checkpoint_dir=str(tmp_path / "p2"), init_dir=str(tmp_path / "p1"))
    trained = copy.deepcopy(first.network.state_dict())
    seen = {}
    second.add_event_handler(
        Events.ITERATION_STARTED,
        lambda e: seen.update({k: v.clone() for k, v in second.network.state_dict().items()}),
    )
    second.run()
    assert all(torch.equal(seen[k], trained[k]) for k in trained)
    model = torch.load(tmp_path / "model.pt", weights_only=True)
    assert model.keys() == trained.keys()
    with pytest.raises(ConfigError, match="phase must be 1 or 2"):
        _trainer(tmp_path, 3)
    with pytest.raises(ConfigError, match="generators: unknown parts"):
        _trainer(tmp_path, 1, generators={"critic": torch.nn.Identity()})


def test_both_phases_run_under_bf16_autocast(tmp_path):
    """amp "bf16": the WGAN-GP critic step (gradient penalty through the critic), the synthesis step and
    phase 2 run under autocast with finite losses; outputs come back as float32."""
    first = _trainer(tmp_path, 1, amp="bf16", checkpoint_dir=str(tmp_path / "p1"))
    first.run()
    second = _trainer(
        tmp_path, 2, amp="bf16", checkpoint_dir=str(tmp_path / "p2"), init_dir=str(tmp_path / "p1")
    )
    second.run()
    for trainer in (first, second):
        out = trainer.state.output
        assert trainer.precision.dtype == torch.bfloat16
        assert all(math.isfinite(v) for v in out["losses"].values()), out["losses"]
        assert out["generated_pseudo_mask"].dtype == torch.float32
    assert {"pm_critic", "pm_gp", "g_total", "d_total"} <= set(first.state.output["losses"])


def test_gradient_penalty_is_unchanged_by_the_loss_scale():
    """Under float16 the penalty differentiates the scaled scores and divides by the scale (PyTorch's
    AMP recipe): the value and the critic's gradient are those of the unscaled computation."""
    torch.manual_seed(0)
    critic = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)
    )
    real, fake, eps = torch.rand(4, 1, 4, 4), torch.rand(4, 1, 4, 4), torch.rand(4)
    values, grads = [], []
    for scale in (1.0, 65536.0):
        critic.zero_grad()
        terms = WGANGPLoss().critic_loss(critic, real, fake, eps=eps, grad_scale=scale)
        terms["total"].backward()
        values.append(terms["gradient_penalty"])
        grads.append(critic[1].weight.grad.clone())
    assert values[0] > 0 and torch.allclose(values[0], values[1], rtol=1e-5)
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-7)
