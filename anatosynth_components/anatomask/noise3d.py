"""3-D spatial noise injection (3D-SNI), AnatoMaskGAN Sec. III-B, Eq. 2.

The noise volume ``Z3`` of a scan is a *function* of ``(seed, channel, z, y, x)``: white Gaussian noise
from a counter-based hash of the integer coordinates, smoothed by a separable 3-D Gaussian.  A stack
of slices cut anywhere from the volume therefore sees exactly the same noise on every slice it
shares with another stack (the paper's "indexed by the voxel's coordinate"), and neighbouring
slices are correlated while distant ones are not (correlation exp(-dz^2 / (4 sigma_z^2)) for the
Gaussian smoothing), which removes per-slice "frame jumps".  Only the slices a stack needs (plus
the smoothing margin) are ever generated, so whole scans never have to be materialised.

The noise lives on the feature grid of the layer it is injected into: z is the slice index in the
volume, (y, x) the feature pixel.  Each injection layer gets its own stream (``stream`` id).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

_MASK = 0xFFFFFFFF


def _mix32(h: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer finaliser (lowbias32) on int64 tensors holding values in [0, 2^32)."""
    h = h & _MASK
    h = h ^ (h >> 16)
    h = (h * 0x7FEB352D) & _MASK
    h = h ^ (h >> 15)
    h = (h * 0x846CA68B) & _MASK
    return h ^ (h >> 16)


def hash_normal(seed: torch.Tensor, *coords: torch.Tensor) -> torch.Tensor:
    """Standard normal values that depend only on ``seed`` and the integer coordinates.

    All arguments are int64 tensors broadcastable to one shape; the result is float32 of that
    shape (Box-Muller on two 32-bit hashes).

    >>> a = hash_normal(torch.tensor(7), torch.arange(5))
    >>> bool(torch.equal(a, hash_normal(torch.tensor(7), torch.arange(5))))
    True
    """
    h = _mix32(seed.long())
    for c in coords:
        h = _mix32(h ^ ((c.long() * 0x9E3779B1 + 0x7F4A7C15) & _MASK))
    u1 = (h.float() + 0.5) * 2.0**-32
    u2 = (_mix32(h + 0x68E31DA4).float() + 0.5) * 2.0**-32
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """A normalised 1-D Gaussian of radius ceil(3 sigma); sum of squares 1, so unit-variance white
    noise stays unit-variance after smoothing."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.pow(2).sum().sqrt()


def noise3d(
    seed: torch.Tensor,
    z_index: torch.Tensor,
    channels: int,
    size: Sequence[int],
    sigma: Sequence[float] = (1.0, 1.0, 1.0),
    stream: int = 0,
) -> torch.Tensor:
    """Smoothed 3-D noise ``Z3`` at the slices ``z_index`` of each item's volume.

    Args:
        seed: (B,) int64 noise seed per item (one seed = one noise volume for the whole scan).
        z_index: (B, n) int64 slice indices in the volume.
        channels: noise channels C.
        size: (h, w) feature-grid size.
        sigma: Gaussian smoothing (z, y, x) in slices / feature pixels.
        stream: id of the injection layer, so layers get independent noise.

    Returns:
        (B, n, C, h, w) float32, unit variance, identical for equal (seed, z, y, x, stream).
    """
    h, w = (int(s) for s in size)
    kernels = [gaussian_kernel(float(s)) for s in sigma]
    if torch.compiler.is_exporting():
        return noise3d_static(seed, z_index, channels, (h, w), kernels, stream)
    rz, ry, rx = (len(k) // 2 for k in kernels)
    out = []
    for b in range(z_index.shape[0]):
        z = z_index[b].long().cpu()
        z0, z1 = int(z.min()) - rz, int(z.max()) + rz
        cc = torch.arange(channels).view(-1, 1, 1, 1)
        zz = torch.arange(z0, z1 + 1).view(1, -1, 1, 1)
        yy = torch.arange(-ry, h + ry).view(1, 1, -1, 1)
        xx = torch.arange(-rx, w + rx).view(1, 1, 1, -1)
        smooth = hash_normal(seed[b].cpu(), torch.tensor(stream), cc, zz, yy, xx)  # (C, Z, Y, X) white
        for dim, kernel in enumerate(kernels, start=1):  # separable "valid" Gaussian smoothing
            smooth = smooth.unfold(dim, len(kernel), 1) @ kernel
        out.append(smooth[:, z - z0 - rz].transpose(0, 1))  # (n, C, h, w)
    return torch.stack(out).to(z_index.device)


def noise3d_static(
    seed: torch.Tensor,
    z_index: torch.Tensor,
    channels: int,
    size: tuple[int, int],
    kernels: Sequence[torch.Tensor],
    stream: int = 0,
) -> torch.Tensor:
    """:func:`noise3d` with shapes that do not depend on the values of ``z_index`` (for
    ``torch.export`` / ONNX): the z smoothing is a sum over the kernel taps, each tap hashing the
    slices shifted by its offset.  Same values as :func:`noise3d` (up to float rounding), at about
    2.5x its cost for stacks of 5 slices, so the eager path keeps the shared-window form.
    """
    (h, w), (kz, ky, kx) = size, kernels
    rz, ry, rx = (len(k) // 2 for k in kernels)
    b, n = z_index.shape
    dev = z_index.device
    s = seed.long().view(b, 1, 1, 1, 1).to(dev)
    cc = torch.arange(channels, device=dev).view(1, -1, 1, 1, 1)
    zz = z_index.long().view(b, 1, n, 1, 1)
    yy = torch.arange(-ry, h + ry, device=dev).view(1, 1, 1, -1, 1)
    xx = torch.arange(-rx, w + rx, device=dev).view(1, 1, 1, 1, -1)
    st = torch.tensor(stream, device=dev)
    kz = kz.to(dev)
    smooth = sum(kz[k] * hash_normal(s, st, cc, zz + (k - rz), yy, xx) for k in range(len(kz)))
    smooth = smooth.unfold(3, len(ky), 1) @ ky.to(dev)
    smooth = smooth.unfold(4, len(kx), 1) @ kx.to(dev)
    return smooth.transpose(1, 2)  # (B, n, C, h, w)


class NoiseInjection3D(nn.Module):
    """Eq. 2: ``H' = H + Z3 * sigmoid(F1(Z3) + W1) + alpha * R(Z3)``.

    Choices where the paper is brief: the Gaussian noise volume ``z`` is drawn with
    ``noise_channels`` channels and "linearly mapped" (the paper's words) to the C channels of
    ``H``, ``Z3 = L z`` with a learned 1x1 convolution ``L`` without bias, which keeps it Gaussian and
    spatially correlated exactly as drawn and costs C / noise_channels times less than drawing and
    smoothing C channels.  ``F1`` (the nonlinear mapping of the noise) is 1x1 conv - LeakyReLU - 1x1
    conv and ``R`` (the residual-noise component) a 1x1 conv; since ``F1(Z3) = F1(L z)`` and
    ``R(Z3) = R(L z)`` begin with linear maps, both are computed from ``z`` directly with the
    product folded into their first layer (the same functions, at noise_channels / C of the cost).
    ``W1`` (the transformation weights) is a learnable per-channel bias of the gate; ``alpha`` is a
    learnable scalar (initial 0.1).

    Args:
        channels: feature channels C.
        noise_channels: channels of the drawn noise volume.
        sigma: smoothing of the noise volume (z, y, x) in slices / feature pixels.
        stream: id of this layer's noise stream.

    Example::

        inject = NoiseInjection3D(64)
        h = inject(h, seed, z_index)    # h: (B * n, 64, h, w); seed (B,), z_index (B, n)
    """

    def __init__(
        self,
        channels: int,
        noise_channels: int = 32,
        sigma: Sequence[float] = (1.0, 1.0, 1.0),
        stream: int = 0,
    ) -> None:
        super().__init__()
        self.channels, self.noise_channels = channels, noise_channels
        self.sigma, self.stream = tuple(sigma), stream
        self.lift = nn.Conv2d(noise_channels, channels, 1, bias=False)  # L
        nn.init.normal_(self.lift.weight, std=noise_channels**-0.5)  # unit-variance mapped noise
        self.f1 = nn.Sequential(
            nn.Conv2d(noise_channels, noise_channels, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(noise_channels, channels, 1),
        )
        self.w1 = nn.Parameter(torch.zeros(channels))
        self.residual = nn.Conv2d(noise_channels, channels, 1, bias=False)
        self.alpha = nn.Parameter(torch.tensor(0.1))

    def noise(self, seed: torch.Tensor, z_index: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        """The drawn noise for these slices, folded to (B * n, noise_channels, h, w)."""
        z3 = noise3d(seed, z_index, self.noise_channels, size, self.sigma, self.stream)
        return z3.flatten(0, 1).to(dtype=self.w1.dtype)

    def forward(self, h: torch.Tensor, seed: torch.Tensor, z_index: torch.Tensor) -> torch.Tensor:
        z = self.noise(seed, z_index, h.shape[-2:]).to(h.device)
        gate = torch.sigmoid(self.f1(z) + self.w1.view(1, -1, 1, 1))
        return h + self.lift(z) * gate + self.alpha * self.residual(z)
