"""Appearance uncertainty, ACIS Eq. 3 (refinement/uncertainty.py), against a brute-force computation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from monai.networks.blocks import Warp
from torch import nn

import anatosynth_components.acis.refinement.uncertainty as uncertainty_module
from anatosynth_components.acis import label_one_hot
from anatosynth_components.acis.refinement import (
    AppearanceUncertainty,
    DiffeomorphicRegistration,
)
from anatosynth_components.errors import ConfigError


class ShiftRegistration(nn.Module):
    """A registration 'network' with known fields: call t returns integer shifts ``shifts[t]`` (one
    (dy, dx) per item of the 2B batch), so warping is exact.  Records the autograd and mode state."""

    def __init__(self, shifts: list[list[tuple[int, int]]]) -> None:
        super().__init__()
        self.shifts, self.calls, self.seen = shifts, 0, []
        self.scale = nn.Parameter(torch.ones(()))  # a parameter that must receive no gradient
        self.drop = nn.Dropout(0.5)

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor):
        self.seen.append((torch.is_grad_enabled(), self.training, self.drop.training))
        ddf = torch.zeros(moving.shape[0], 2, *moving.shape[2:])
        for b, (dy, dx) in enumerate(self.shifts[self.calls]):
            ddf[b, 0], ddf[b, 1] = dy, dx
        self.calls += 1
        return moving, ddf * self.scale


def shifted(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """img o (p + (dy, dx)), border replicated, by explicit indexing: out[c, i, j] = img[c, i+dy, j+dx]."""
    c, h, w = img.shape
    out = np.empty_like(img)
    for i, j in itertools.product(range(h), range(w)):
        out[:, i, j] = img[:, min(max(i + dy, 0), h - 1), min(max(j + dx, 0), w - 1)]
    return out


def brute_force(x, x_hat, y, y_hat, shifts):
    """Eq. 3 with explicit loops over passes t and samples b: maps (B, 1, H, W) for images and annotations."""
    batch, passes = x.shape[0], len(shifts)
    img_map, ann_map = np.zeros((batch, 1, *x.shape[2:])), np.zeros((batch, 1, *x.shape[2:]))
    for t in range(passes):
        for b in range(batch):
            phi, varphi = shifts[t][b], shifts[t][batch + b]  # x -> x_hat, x_hat -> x
            img_map[b, 0] += ((shifted(x[b], *phi) - x_hat[b]) ** 2).sum(0)
            img_map[b, 0] += ((shifted(x_hat[b], *varphi) - x[b]) ** 2).sum(0)
            ann_map[b, 0] += ((shifted(y[b], *phi) - y_hat[b]) ** 2).sum(0)
            ann_map[b, 0] += ((shifted(y_hat[b], *varphi) - y[b]) ** 2).sum(0)
    return img_map / passes, ann_map / passes


def test_eq3_matches_brute_force_with_known_integer_fields():
    rng = np.random.default_rng(0)
    batch, passes, size, classes = 2, 3, (8, 10), 3
    x = rng.random((batch, 1, *size)).astype(np.float32)
    x_hat = rng.random((batch, 1, *size)).astype(np.float32)
    y = label_one_hot(torch.from_numpy(rng.integers(0, classes, (batch, 1, *size))), classes).numpy()
    y_hat = label_one_hot(torch.from_numpy(rng.integers(0, classes, (batch, 1, *size))), classes).numpy()
    shifts = [
        [tuple(int(v) for v in rng.integers(-2, 3, 2)) for _ in range(2 * batch)] for _ in range(passes)
    ]
    reg = ShiftRegistration(shifts)
    out = AppearanceUncertainty(reg, num_passes=passes)(*(torch.from_numpy(a) for a in (x, x_hat, y, y_hat)))
    img_map, ann_map = brute_force(x, x_hat, y, y_hat, shifts)
    np.testing.assert_allclose(out.image_map.numpy(), img_map, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.annotation_map.numpy(), ann_map, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.image.numpy(), img_map.reshape(batch, -1).mean(1), rtol=1e-5)
    np.testing.assert_allclose(out.annotation.numpy(), ann_map.reshape(batch, -1).mean(1), rtol=1e-5)
    assert reg.calls == passes  # one batched call (both directions) per pass
    # every pass ran without autograd, the network in eval mode except its dropout
    assert reg.seen == [(False, False, True)] * passes
    assert reg.training and reg.drop.training  # modes restored
    assert reg.scale.grad is None and not reg.scale.requires_grad


def _zero_velocity_net(spatial_dims: int) -> DiffeomorphicRegistration:
    net = DiffeomorphicRegistration(
        spatial_dims, channels=(4, 4, 4, 4), final_conv_channels=(4,), dropout=0.3
    )
    head = net.backbone.net[1].final_conv_out.conv
    nn.init.zeros_(head.weight)  # v = 0 whatever the dropout: the identity transform
    return net


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_identity_registration_gives_zero_for_identical_pairs_and_plain_mse_otherwise(spatial_dims):
    torch.manual_seed(0)
    size = (8,) * spatial_dims
    u = AppearanceUncertainty(_zero_velocity_net(spatial_dims), num_passes=3)
    x = torch.rand(2, 1, *size)
    y = label_one_hot(torch.randint(0, 3, (2, 1, *size)), 3)
    same = u(x, x.clone(), y, y.clone())
    # zero up to grid_sample's float rounding of the identity grid (~1e-8 per voxel, squared)
    assert same.image_map.max() < 1e-12 and same.annotation_map.max() < 1e-12
    x_hat = torch.rand(2, 1, *size)
    y_hat = label_one_hot(torch.randint(0, 3, (2, 1, *size)), 3)
    other = u(x, x_hat, y, y_hat)
    # identity fields: Eq. 3 is twice the squared difference (both directions), per voxel
    torch.testing.assert_close(other.image, 2 * (x - x_hat).pow(2).flatten(1).mean(1))
    torch.testing.assert_close(other.annotation, 2 * (y - y_hat).pow(2).sum(1).flatten(1).mean(1))


def test_no_gradient_reaches_the_registration_network_and_no_graph_is_built():
    torch.manual_seed(1)
    reg = DiffeomorphicRegistration(2, channels=(4, 4, 4, 4), final_conv_channels=(4,), dropout=0.2)
    generator = nn.Conv2d(1, 1, 3, padding=1)
    x = torch.rand(2, 1, 16, 16)
    x_hat = torch.sigmoid(generator(torch.rand(2, 1, 16, 16)))  # a synthetic image with a graph
    y = label_one_hot(torch.zeros(2, 1, 16, 16, dtype=torch.long), 2)
    out = AppearanceUncertainty(reg, num_passes=2)(x, x_hat, y, y)
    for value in (out.image, out.annotation, out.image_map, out.annotation_map):
        assert not value.requires_grad and value.grad_fn is None
    assert all(not p.requires_grad and p.grad is None for p in reg.parameters())
    # the REINFORCE surrogate built from it reaches the generator only
    loss = -(out.image.detach() * x_hat.flatten(1).mean(1)).mean()
    loss.backward()
    assert generator.weight.grad is not None
    assert all(p.grad is None for p in reg.parameters())


def test_mc_dropout_passes_differ_and_bad_arguments_are_errors():
    torch.manual_seed(2)
    reg = DiffeomorphicRegistration(2, channels=(8, 8, 8, 8), final_conv_channels=(8,), dropout=0.3)
    head = reg.backbone.net[1].final_conv_out.conv
    nn.init.normal_(head.weight, 0.0, 0.1)  # a non-trivial field, so dropout changes it
    x, x_hat = torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)
    y = label_one_hot(torch.zeros(1, 1, 16, 16, dtype=torch.long), 2)
    one = AppearanceUncertainty(reg, num_passes=1)
    a, b = one(x, x_hat, y, y).image_map, one(x, x_hat, y, y).image_map
    assert not torch.allclose(a, b)  # two single passes draw different fields
    with pytest.raises(ConfigError, match="num_passes"):
        AppearanceUncertainty(reg, num_passes=0)
    with pytest.raises(ValueError, match="differ"):
        one(x, torch.rand(1, 1, 8, 8), y, y)
    with pytest.raises(ValueError, match="annotations"):
        one(x, x_hat, y, label_one_hot(torch.zeros(1, 1, 16, 16, dtype=torch.long), 3))


# --- the direction of Eq. 3: phi registers x to x_hat, varphi x_hat to x -----------------------------------


def centroid(image: torch.Tensor) -> torch.Tensor:
    """Intensity centroid (B, dims) of (B, 1, *S) images, in voxel index coordinates."""
    grids = torch.meshgrid(*(torch.arange(s, dtype=image.dtype) for s in image.shape[2:]), indexing="ij")
    mass = image.flatten(1).sum(1)
    return torch.stack([(image[:, 0] * g).flatten(1).sum(1) / mass for g in grids], dim=1)


class CentroidRegistration(nn.Module):
    """A registration that depends on its inputs, with MONAI VoxelMorph's ``(moving, fixed) -> (warped,
    ddf)`` contract: the exact translation taking ``moving`` onto ``fixed``, from their intensity centroids.

    MONAI ``Warp``: ``warped(p) = moving(p + ddf(p))``, ddf in voxels, channel d along spatial axis d.
    With ``moving = blob(p - m)`` and ``fixed = blob(p - f)``, ``moving(p + d) = fixed(p)`` for
    ``d = m - f``: the constant field ``centroid(moving) - centroid(fixed)``."""

    def __init__(self) -> None:
        super().__init__()
        self.warp = Warp(mode="bilinear", padding_mode="border")

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor):
        shift = centroid(moving) - centroid(fixed)
        ddf = shift.view(*shift.shape, *([1] * (moving.ndim - 2))).expand(-1, -1, *moving.shape[2:])
        return self.warp(moving, ddf.contiguous()), ddf.contiguous()


def blob(size: tuple[int, ...], center: tuple[int, ...], sigma: float = 2.0) -> torch.Tensor:
    """A Gaussian blob (1, 1, *size) at integer ``center``, fully inside the image."""
    grids = torch.meshgrid(*(torch.arange(s, dtype=torch.float64) for s in size), indexing="ij")
    squared = sum((g - c) ** 2 for g, c in zip(grids, center, strict=True))
    return torch.exp(-squared / (2 * sigma**2))[None, None].float()


def shifted_blobs(spatial_dims: int):
    """x (real) and x_hat (synthetic): blobs at different places; y, y_hat: their thresholded one-hots."""
    size = (24,) * spatial_dims
    x = torch.cat([blob(size, (8,) * spatial_dims), blob(size, (9, 14, 12)[:spatial_dims])])
    x_hat = torch.cat([blob(size, (13, 10, 9)[:spatial_dims]), blob(size, (12,) * spatial_dims)])
    y = label_one_hot((x > 0.5).long(), 2)
    y_hat = label_one_hot((x_hat > 0.5).long(), 2)
    return x, x_hat, y, y_hat


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_centroid_registration_follows_monai_warp_convention(spatial_dims):
    """The helper network itself: it registers moving onto fixed (else the direction test means nothing)."""
    x, x_hat, _, _ = shifted_blobs(spatial_dims)
    warped, ddf = CentroidRegistration()(x, x_hat)
    assert (warped - x_hat).abs().max() < 1e-3 and (x - x_hat).abs().max() > 0.5  # centroids exact to 1e-4
    assert torch.allclose(ddf[0].flatten(1)[:, 0], torch.tensor([-5.0, -2.0, -1.0][:spatial_dims]), atol=1e-3)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_eq3_direction_phi_registers_x_to_x_hat(spatial_dims, monkeypatch):
    """With a registration that registers exactly, Eq. 3 is ~0 for images and annotations when phi (of
    the pair (x, x_hat)) warps x and varphi (of (x_hat, x)) warps x_hat, as the code pairs them; the
    swapped pairing (x o varphi vs x_hat, x_hat o phi vs x) moves each blob the wrong way and is large."""
    x, x_hat, y, y_hat = shifted_blobs(spatial_dims)
    u = AppearanceUncertainty(CentroidRegistration(), num_passes=2)
    right = u(x, x_hat, y, y_hat)
    assert right.image.max() < 1e-7 and right.annotation.max() < 1e-7, (right.image, right.annotation)
    naive = 2 * (x - x_hat).pow(2).flatten(1).mean(1)  # identity fields, for scale
    monkeypatch.setattr(uncertainty_module, "split_fields", lambda ddf, batch: (ddf[batch:], ddf[:batch]))
    swapped = u(x, x_hat, y, y_hat)
    assert torch.all(swapped.image > 0.5 * naive) and torch.all(swapped.image > 1e4 * right.image.max())
    assert torch.all(swapped.annotation > 0.01), swapped.annotation  # the warped masks miss each other
