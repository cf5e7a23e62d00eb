"""The ACIS registration network, its loss and trainer (refinement/registration*.py, jacobian.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ignite.engine import Events
from monai.utils import set_determinism

from anatosynth_components.acis.refinement import (
    REGISTRATION_HINT,
    DiffeomorphicRegistration,
    RegistrationLoss,
    RegistrationTrainer,
    folding_fraction,
    jacobian_determinant,
    mc_dropout,
)
from anatosynth_components.engines import latest_checkpoint, load_network
from anatosynth_components.errors import ConfigError, DataError

TINY = {"channels": (8, 8, 8, 8), "final_conv_channels": (8,)}


def ct_slices(real_ct, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """The real CT's 30 axial slices, HU [-1000, 600] -> [0, 1], resized to size x size, with a 3-class
    label (0 background, 1 lung lobes, 2 liver): (30, 1, size, size) each."""
    image = np.clip((real_ct["image"].astype(np.float32) + 1000.0) / 1600.0, 0.0, 1.0)
    raw = real_ct["label"].astype(np.int64)
    label = np.zeros_like(raw)
    label[np.isin(raw, [10, 11, 13, 14])] = 1
    label[raw == 5] = 2
    x = torch.from_numpy(image).permute(2, 0, 1)[:, None]
    y = torch.from_numpy(label).permute(2, 0, 1)[:, None].float()
    return F.interpolate(x, size=(size, size), mode="area"), F.interpolate(y, size=(size, size)).long()


def smooth_velocity(spatial_dims: int, size: int, scale: float, seed: int = 0) -> torch.Tensor:
    """A smooth random velocity field: N(0, scale^2) on a 4^D grid, upsampled (bi/trilinear) to size^D."""
    coarse = scale * torch.randn(
        1, spatial_dims, *(4,) * spatial_dims, generator=torch.Generator().manual_seed(seed)
    )
    mode = "bilinear" if spatial_dims == 2 else "trilinear"
    return F.interpolate(coarse, size=(size,) * spatial_dims, mode=mode, align_corners=True)


@pytest.mark.parametrize("spatial_dims, size", [(2, 16), (3, 8)])
def test_shapes_and_zero_field_is_identity(spatial_dims, size):
    torch.manual_seed(0)
    net = DiffeomorphicRegistration(spatial_dims, **TINY).eval()
    moving, fixed = torch.rand(2, 1, *(size,) * spatial_dims), torch.rand(2, 1, *(size,) * spatial_dims)
    warped, ddf = net(moving, fixed)
    assert warped.shape == moving.shape and ddf.shape == (2, spatial_dims, *(size,) * spatial_dims)
    _, _, velocity = net(moving, fixed, return_velocity=True)
    torch.testing.assert_close(net.integrate(velocity), ddf)
    zero = torch.zeros_like(ddf)
    torch.testing.assert_close(net.warp(moving, zero), moving, atol=1e-6, rtol=0)
    assert torch.count_nonzero(net.integrate(zero)) == 0
    # the VoxelMorph-style head starts near the identity (weights N(0, 1e-5), zero bias)
    assert ddf.abs().max() < 1e-2


@pytest.mark.parametrize("spatial_dims, size, scale", [(2, 32, 2.0), (3, 16, 1.0)])
def test_integrated_smooth_velocity_has_positive_jacobian(spatial_dims, size, scale):
    net = DiffeomorphicRegistration(spatial_dims, **TINY)
    velocity = smooth_velocity(spatial_dims, size, scale)
    ddf = net.integrate(velocity)
    assert ddf.abs().max() > 1.0  # a non-trivial deformation, displacements of several voxels
    det = jacobian_determinant(ddf)
    assert det.shape == (1, *(size,) * spatial_dims)
    assert det.min() > 0 and float(folding_fraction(ddf)) == 0.0


def test_constant_velocity_integrates_to_a_translation():
    net = DiffeomorphicRegistration(2, **TINY)
    velocity = torch.zeros(1, 2, 16, 16)
    velocity[:, 0], velocity[:, 1] = 1.5, -0.5
    ddf = net.integrate(velocity)
    # exact away from the border, where the squaring's zero padding enters (up to |v| + 2 voxels deep)
    torch.testing.assert_close(ddf[..., 4:-4, 4:-4], velocity[..., 4:-4, 4:-4], atol=1e-4, rtol=0)


def test_jacobian_determinant_analytic_and_folding():
    ddf = torch.zeros(1, 3, 6, 6, 6)
    grid = torch.arange(6.0)
    ddf[:, 0] = 0.5 * grid.view(6, 1, 1)  # stretch axis 0: det 1.5
    ddf[:, 2] = -0.2 * grid.view(1, 1, 6)  # shrink axis 2: det x 0.8
    torch.testing.assert_close(jacobian_determinant(ddf), torch.full((1, 6, 6, 6), 1.2))
    folded = torch.zeros(1, 2, 6, 6)
    folded[:, 1] = -2.0 * grid.view(1, 6)  # x -> -x: det -1 everywhere
    assert float(folding_fraction(folded)) == 1.0
    with pytest.raises(ValueError, match="displacement field"):
        jacobian_determinant(torch.zeros(1, 3, 6, 6))


def test_mc_dropout_samples_fields_and_restores_modes():
    torch.manual_seed(1)
    net = DiffeomorphicRegistration(2, dropout=0.3, **TINY)
    torch.nn.init.normal_(net.backbone.net[1].final_conv_out.conv.weight, 0.0, 0.1)
    x, y = torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)
    net.train()
    with mc_dropout(net):
        assert not torch.is_grad_enabled()
        a, b = net(x, y)[1], net(x, y)[1]
        assert not net.training
    assert not torch.allclose(a, b)
    assert net.training and all(m.training for m in net.modules())
    net.eval()
    torch.testing.assert_close(net(x, y)[1], net(x, y)[1])  # eval mode alone is deterministic


def test_registration_bad_arguments():
    with pytest.raises(ConfigError, match="spatial_dims"):
        DiffeomorphicRegistration(4)
    with pytest.raises(ConfigError, match="even number"):
        DiffeomorphicRegistration(2, channels=(8, 8, 8))
    with pytest.raises(ConfigError, match="integration_steps"):
        DiffeomorphicRegistration(2, integration_steps=0, **TINY)
    with pytest.raises(ConfigError, match="dropout"):
        DiffeomorphicRegistration(2, dropout=1.0, **TINY)
    net = DiffeomorphicRegistration(2, **TINY)
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.rand(1, 1, 18, 16), torch.rand(1, 1, 18, 16))
    with pytest.raises(ValueError, match="differ in shape"):
        net(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 8, 8))
    with pytest.raises(ConfigError, match="similarity"):
        RegistrationLoss(2, similarity="ncc")
    with pytest.raises(ConfigError, match="lambda_reg"):
        RegistrationLoss(2, lambda_reg=-1)
    with pytest.raises(ConfigError, match="kernel_size"):
        RegistrationLoss(2, kernel_size=4)


def test_registration_loss_terms():
    loss = RegistrationLoss(2, kernel_size=5, lambda_reg=2.0, lambda_dice=0.5)
    x = torch.rand(2, 1, 16, 16)
    v = smooth_velocity(2, 16, 1.0).expand(2, -1, -1, -1)
    onehot = F.one_hot(torch.randint(0, 3, (2, 16, 16)), 3).permute(0, 3, 1, 2).float()
    terms = loss(x, x, v, onehot, onehot)
    assert terms["similarity"] == pytest.approx(-1.0, abs=1e-3)  # LNCC of an image with itself
    assert terms["dice"] == pytest.approx(0.0, abs=1e-4)
    assert terms["regularization"] > 0
    expected = terms["similarity"] + 2.0 * terms["regularization"] + 0.5 * terms["dice"]
    torch.testing.assert_close(terms["loss"], expected)
    with pytest.raises(ValueError, match="one-hot labels"):
        loss(x, x, v)
    mse = RegistrationLoss(2, similarity="mse", regularization="bending")(x, torch.zeros_like(x), v)
    torch.testing.assert_close(mse["similarity"], x.pow(2).mean())
    # known values (guards MONAI's spatial_gradient, which indexes with a list that torch warns about):
    # a linear field v_0 = a * p_0 has diffusion a^2 / D (mean over components) and no bending energy
    linear = torch.zeros(1, 2, 8, 8)
    linear[:, 0] = 0.5 * torch.arange(8.0).view(8, 1)
    assert float(RegistrationLoss(2)(x[:1], x[:1], linear)["regularization"]) == pytest.approx(0.125)
    assert float(RegistrationLoss(2, regularization="bending")(x[:1], x[:1], linear)["regularization"]) == 0.0


def _similarity_on(net, loss, image, pairs):
    """Mean LNCC loss of fixed (moving, fixed) pairs with dropout off: a deterministic measure."""
    net.eval()
    moving, fixed = image[[p[0] for p in pairs]], image[[p[1] for p in pairs]]
    with torch.no_grad():
        before = float(loss.similarity(moving, fixed))
        after = float(loss.similarity(net(moving, fixed)[0], fixed))
    return before, after


def test_registration_training_lowers_the_loss_on_real_ct(real_ct, tmp_path):
    """60 epochs on 10 real CT slices (32 x 32, 9 mm apart): the LNCC loss of fixed pairs of neighbouring
    slices, both trained and held-out ones, drops below the identity's, with no folding."""
    set_determinism(0)
    image, label = ct_slices(real_ct)
    train = list(range(0, 30, 3))
    loader = [{"image": image[train[i : i + 5]], "label": label[train[i : i + 5]]} for i in (0, 5)]
    net = DiffeomorphicRegistration(2, channels=(16, 32, 32, 32), final_conv_channels=(8,), dropout=0.1)
    loss = RegistrationLoss(2, kernel_size=5, lambda_reg=1.0, lambda_dice=0.1)
    ckpt = tmp_path / "registration.pt"
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    trainer = RegistrationTrainer("cpu", 60, loader, net, opt, loss, num_classes=3,
                                  checkpoint_dir=tmp_path / "registration", model_file=str(ckpt))  # fmt: skip
    outputs = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: outputs.append(e.state.output))
    trainer.run()
    metrics = {"mean_loss", "mean_similarity", "mean_regularization", "mean_dice", "mean_folding"}
    assert set(trainer.state.metrics) == metrics
    assert trainer.state.metrics["mean_folding"] == 0.0
    assert outputs[-1]["pred"].shape == (5, 1, 32, 32) and not outputs[-1]["pred"].requires_grad
    held_out = list(range(1, 30, 3))
    for slices in (train, held_out):
        pairs = [(slices[i], slices[i + 1]) for i in range(len(slices) - 1)]
        before, after = _similarity_on(net, loss, image, pairs)
        assert after < before - 0.008, (slices, before, after)
    state = torch.load(latest_checkpoint(tmp_path / "registration"), weights_only=True)
    assert set(state) == {"network", "optimizer", "trainer"}
    assert state["trainer"]["iteration"] == 120 and state["trainer"]["epoch_length"] == 2
    fresh = load_network(
        DiffeomorphicRegistration(2, channels=(16, 32, 32, 32), final_conv_channels=(8,)),
        ckpt,
        REGISTRATION_HINT,
    )
    for a, b in zip(fresh.state_dict().values(), net.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_registration_trainer_resumes_and_rejects_bad_input(real_ct, tmp_path):
    set_determinism(1)
    image, label = ct_slices(real_ct, size=16)
    loader = [{"image": image[:4], "label": label[:4]}]
    ckpt = str(tmp_path / "registration")

    def make(max_epochs, resume=False, data=loader, **kw):
        net = DiffeomorphicRegistration(2, **TINY)
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        return RegistrationTrainer("cpu", max_epochs, data, net, opt, RegistrationLoss(2, kernel_size=3),
                                   checkpoint_dir=ckpt, resume=resume, **kw)  # fmt: skip

    with pytest.raises(ConfigError, match="holds no latest_checkpoint_epoch=N.pt; train once without resume"):
        make(1, resume=True).run()
    first = make(2)
    first.run()
    second = make(3, resume=True)
    starts = []
    second.add_event_handler(Events.EPOCH_STARTED, lambda e: starts.append(e.state.epoch))
    second.run()
    assert starts == [3] and second.state.iteration == 3  # continued at epoch 3, did one more epoch
    with pytest.raises(ConfigError, match="batch_size must be >= 2"):
        make(1, data=[{"image": image[:1], "label": label[:1]}]).run()
    with pytest.raises(DataError, match="differ in shape"):
        make(1, data=[{"image": image[:2], "label": label[:2, :, :8]}]).run()
    with pytest.raises(ConfigError, match="num_classes"):
        net = DiffeomorphicRegistration(2, **TINY)
        RegistrationTrainer("cpu", 1, loader, net, torch.optim.Adam(net.parameters()),
                            RegistrationLoss(2, lambda_dice=1.0))  # fmt: skip


def test_load_network_errors_name_the_file(tmp_path):
    net = DiffeomorphicRegistration(2, **TINY)
    missing = tmp_path / "registration.pt"
    with pytest.raises(ConfigError, match=r"registration\.pt: checkpoint not found; train the registration"):
        load_network(net, missing, REGISTRATION_HINT)
    missing.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="cannot read the checkpoint"):
        load_network(net, missing, REGISTRATION_HINT)
    torch.save({"model": net.state_dict()}, missing)
    with pytest.raises(DataError, match="no 'network' entry"):
        load_network(net, missing, REGISTRATION_HINT, key="network")
    torch.save(DiffeomorphicRegistration(3, **TINY).state_dict(), missing)
    with pytest.raises(ConfigError, match="do not fit the configured network"):
        load_network(net, missing, REGISTRATION_HINT)
    # a registration.pt of the earlier format (a training state) is read through its network entry
    other = DiffeomorphicRegistration(2, **TINY)
    torch.save({"network": other.state_dict(), "optimizer": {}, "trainer": {"iteration": 3}}, missing)
    loaded = load_network(net, missing, REGISTRATION_HINT)
    pairs = zip(loaded.state_dict().values(), other.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
