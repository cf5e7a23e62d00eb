"""``PseudoMaskCritic``: the WGAN-GP critic of the ACIS pseudo-mask generator (paper Sec. 2.2, ref. [20]).

A MONAI ``PatchDiscriminator`` (strided 4x4 convolutions, LeakyReLU 0.2) **without normalisation**:
Gulrajani et al. (Sec. 4) drop batch norm from the critic because the gradient penalty is taken per
sample, which batch statistics would couple.  The critic's score of a sample is the mean of its patch
scores, a scalar function of the input whose input-gradient the penalty constrains.

Example::

    >>> c = PseudoMaskCritic(2, channels=8, num_layers=2)
    >>> tuple(c(torch.rand(3, 1, 32, 32)).shape)
    (3,)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.layers import Act
from monai.networks.nets import PatchDiscriminator
from torch import nn

from anatosynth_components.checks import check_spatial_dims
from anatosynth_components.network_size import check_patch_gan_size


class PseudoMaskCritic(nn.Module):
    """Pseudo-mask (B, 1, *S) -> critic score (B,) (unbounded: a Wasserstein critic, no sigmoid).

    Args:
        spatial_dims: 2 or 3.
        channels: filters of the first convolution (doubled at every layer).
        num_layers: strided layers after the first (MONAI's ``num_layers_d``).
        in_channels: input channels (1 for pseudo-masks).
    """

    def __init__(
        self, spatial_dims: int, channels: int = 64, num_layers: int = 3, in_channels: int = 1
    ) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        self.num_layers = int(num_layers)
        self.net = PatchDiscriminator(
            spatial_dims=self.spatial_dims,
            channels=int(channels),
            in_channels=int(in_channels),
            out_channels=1,
            num_layers_d=int(num_layers),
            activation=(Act.LEAKYRELU, {"negative_slope": 0.2}),
            norm=None,
            bias=True,
        )

    def check_size(self, spatial_size: Sequence[int], multiple: int = 1) -> None:
        """``ConfigError`` unless pseudo-masks of ``spatial_size`` fit the critic's layers (every
        convolution gets at least its kernel); the message gives the smallest spatial_size (each side a
        multiple of ``multiple``) and the most critic_layers that fit.

        >>> PseudoMaskCritic(2, channels=4).check_size((16, 16))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        anatosynth_components.errors.ConfigError: spatial_size [16, 16] is too small for the pseudo-mask ...
        """
        check_patch_gan_size(
            spatial_size, self.num_layers, "the pseudo-mask critic", "critic_layers (num_layers)", False,
            multiple=multiple,
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 1, *S) -> (B,) mean patch score."""
        return self.net(x)[-1].flatten(1).mean(dim=1)
