"""``DiffeomorphicRegistration``: the registration network of the ACIS refinement (paper Sec. 2.3, Eq. 3).

ACIS registers a real image x to a synthetic one x_hat (field phi) and back (field varphi) "with the
diffeomorphic deformation ... produced by [the] t-th forward pass across T total steps [23]" (ref. [23]
is VoxelMorph), and measures the *appearance uncertainty* of TransMorph (ref. [22]) over those passes.

Choices, in the paper's terms:

- **Network**: MONAI's diffeomorphic ``VoxelMorph`` (this class subclasses it): a ``VoxelMorphUNet``
  takes ``cat([moving, fixed], 1)`` and outputs a stationary velocity field v (B, spatial_dims, *S),
  integrated into a displacement field by scaling and squaring (MONAI ``DVF2DDF``, ``2 ** -K`` scaling,
  K squarings, ``integration_steps``); ``Warp`` resamples the moving image, ``x o phi (p) = x(p + u(p))``
  in voxel units.  2-D and 3-D through ``spatial_dims``.
- **Stochastic passes (the t of Eq. 3)**: Monte-Carlo dropout, as TransMorph-Bayes computes its
  appearance uncertainty (ref. [22], MC dropout with T forward passes): the backbone is trained with
  dropout ``p`` in its convolution blocks, and at refinement time the network is in eval mode except
  for its dropout layers (:func:`mc_dropout`), so each pass draws a different field phi_t.  The
  alternative reading, a probabilistic velocity field (mean and variance heads, Dalca et al.), is not
  what either cited paper uses to define appearance uncertainty.
- The velocity head (``final_conv_out`` of MONAI's backbone) is a bare convolution *without* dropout,
  so dropout perturbs features, never individual velocity voxels (which would make the field rough),
  and it starts at N(0, 1e-5) weights and zero bias as in VoxelMorph's flow layer, so an untrained
  network is close to the identity transform.
- Images and one-hot annotations are warped with bilinear interpolation and ``border`` padding (a
  background voxel stays background at the image edge; MONAI ``VoxelMorph`` pads with zeros).

Example::

    >>> net = DiffeomorphicRegistration(2, channels=(8, 8, 8, 8), final_conv_channels=(8,))
    >>> moving, fixed = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    >>> warped, ddf = net(moving, fixed)
    >>> tuple(warped.shape), tuple(ddf.shape)
    ((2, 1, 16, 16), (2, 2, 16, 16))
    >>> with mc_dropout(net):                 # Eq. 3: T stochastic passes, nothing recorded for autograd
    ...     fields = [net(moving, fixed)[1] for _ in range(3)]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from monai.networks.blocks import Convolution, Warp
from monai.networks.nets import VoxelMorph, VoxelMorphUNet
from torch import nn

from anatosynth_components.checks import (
    check_channels,
    check_fraction,
    check_spatial_dims,
    check_spatial_size,
)
from anatosynth_components.errors import ConfigError
from anatosynth_components.network_size import plural


class DiffeomorphicRegistration(VoxelMorph):
    """(moving (B, 1, *S), fixed (B, 1, *S)) -> (moving o phi (B, 1, *S), ddf (B, spatial_dims, *S)).

    Args:
        spatial_dims: 2 or 3.
        channels: ``VoxelMorphUNet`` channels (an even number of entries; ``S`` must be divisible by
            ``2 ** (len(channels) // 2)``); VoxelMorph's default ``(16, 32, 32, 32, 32, 32)``.
        final_conv_channels: the convolutions before the velocity head.
        integration_steps: scaling-and-squaring steps K (VoxelMorph: 7); must be >= 1 (diffeomorphic).
        dropout: MC-dropout rate of the backbone's convolution blocks (TransMorph-Bayes: 0.15); 0 makes
            every pass the same, so Eq. 3 then averages T identical terms.
        in_channels: channels of one image (1 for CT).
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: Sequence[int] = (16, 32, 32, 32, 32, 32),
        final_conv_channels: Sequence[int] = (16, 16),
        integration_steps: int = 7,
        dropout: float = 0.15,
        in_channels: int = 1,
    ) -> None:
        spatial_dims = check_spatial_dims(spatial_dims)
        channels = check_channels(channels, "registration channels")
        if len(channels) % 2:
            raise ConfigError(
                f"registration channels must have an even number of entries, got {list(channels)}"
            )
        if int(integration_steps) < 1:
            raise ConfigError(
                f"integration_steps must be >= 1 (scaling and squaring makes the field diffeomorphic), "
                f"got {integration_steps}"
            )
        dropout = check_fraction("registration dropout", dropout, upper_open=True)
        backbone = VoxelMorphUNet(
            spatial_dims=spatial_dims,
            in_channels=2 * int(in_channels),
            unet_out_channels=channels[1],
            channels=channels,
            final_conv_channels=tuple(int(c) for c in final_conv_channels),
            dropout=float(dropout),
        )
        head_in = int(final_conv_channels[-1]) if len(final_conv_channels) else channels[1]
        head = Convolution(spatial_dims, head_in, spatial_dims, kernel_size=3, conv_only=True)
        nn.init.normal_(head.conv.weight, 0.0, 1e-5)
        nn.init.zeros_(head.conv.bias)
        backbone.net[1].final_conv_out = head  # MONAI's head applies dropout to the velocity itself
        super().__init__(
            backbone=backbone, integration_steps=int(integration_steps), spatial_dims=spatial_dims
        )
        self.warp = Warp(mode="bilinear", padding_mode="border")
        self.in_channels = int(in_channels)
        self.size_multiple = 2 ** (len(channels) // 2)
        self.num_channels = len(channels)

    def check_size(self, spatial_size: Sequence[int], multiple: int = 1) -> None:
        """``ConfigError`` unless every side of ``spatial_size`` is divisible by :attr:`size_multiple` (the
        backbone halves the images ``len(channels) // 2`` times and has no norm, so no other minimum).

        >>> DiffeomorphicRegistration(2, channels=(8, 8, 8, 8)).check_size((18, 16))
        ...                                        # doctest: +NORMALIZE_WHITESPACE
        Traceback (most recent call last):
        ...
        anatosynth_components.errors.ConfigError: spatial_size [18, 16]: every size must be divisible by 4
        (registration_channels has 4 entries: 2 halvings); [18] are not: use [16, 16] or [20, 16], or fewer
        registration_channels
        """
        halvings = self.num_channels // 2
        check_spatial_size(
            spatial_size,
            self.spatial_dims,
            self.size_multiple,
            f"registration_channels has {self.num_channels} entries: {plural(halvings, 'halving')}",
            "fewer registration_channels",
        )

    def velocity(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        """The stationary velocity field v (B, spatial_dims, *S) in voxels, before integration."""
        self._check_pair(moving, fixed)
        return self.backbone(torch.cat([moving, fixed], dim=1))

    def integrate(self, velocity: torch.Tensor) -> torch.Tensor:
        """Scaling and squaring: exp(v) as a displacement field (B, spatial_dims, *S)."""
        return self.dvf2ddf(velocity)

    def register(
        self, moving: torch.Tensor, fixed: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(moving o phi, ddf, velocity); the velocity is what the smoothness loss regularises."""
        velocity = self.velocity(moving, fixed)
        ddf = self.integrate(velocity)
        return self.warp(moving, ddf), ddf, velocity

    def forward(
        self, moving: torch.Tensor, fixed: torch.Tensor, return_velocity: bool = False
    ) -> tuple[torch.Tensor, ...]:
        """MONAI ``VoxelMorph``'s contract: (moving o phi (B, C, *S), ddf (B, spatial_dims, *S)), plus the
        velocity field when ``return_velocity`` (for the trainer, through a DDP wrapper)."""
        warped, ddf, velocity = self.register(moving, fixed)
        return (warped, ddf, velocity) if return_velocity else (warped, ddf)

    def _check_pair(self, moving: torch.Tensor, fixed: torch.Tensor) -> None:
        if moving.shape != fixed.shape:
            raise ValueError(f"moving {tuple(moving.shape)} and fixed {tuple(fixed.shape)} differ in shape")
        if moving.ndim != self.spatial_dims + 2 or moving.shape[1] != self.in_channels:
            raise ValueError(
                f"expected (B, {self.in_channels}, *S) images with {self.spatial_dims} spatial dims, "
                f"got {tuple(moving.shape)}"
            )
        self.check_size(moving.shape[2:])


@contextmanager
def mc_dropout(network: nn.Module) -> Iterator[nn.Module]:
    """Monte-Carlo dropout passes: ``network`` in eval mode except its dropout layers, under ``no_grad``.

    Normalisation layers and everything else behave as at inference; only dropout stays stochastic, so
    each forward pass samples a different field (Eq. 3's phi_t).  Autograd records nothing, so memory
    stays at inference level and no gradient can reach the network.  The previous train / eval flags of
    every submodule are restored on exit.
    """
    modes = [(module, module.training) for module in network.modules()]
    network.eval()
    for module in network.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd):
            module.train()
    try:
        with torch.no_grad():
            yield network
    finally:
        for module, mode in modes:
            module.training = mode
