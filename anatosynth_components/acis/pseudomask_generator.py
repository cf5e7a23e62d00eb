"""``PseudoMaskGenerator``: ACIS pseudo-masks from spatial latent noise (paper Sec. 2.2).

The paper trains "a pseudo-mask generator with a discriminator [20]" (WGAN-GP, Gulrajani et al.) so
that it produces pseudo-masks like the Voronoi ones of Sec. 2.1, but gives no architecture.  Choices:

- the latent code is *spatial*: ``z ~ N(0, 1)`` of shape (B, latent_channels, *latent_size) with
  ``latent_size = spatial_size / 2 ** levels``; a fully convolutional decoder then works for 2-D and
  3-D alike and its receptive field decides how far the anatomy of one place depends on the noise of
  another (a flat vector code would need a dense layer of ``prod(latent_size) * channels`` outputs);
- ``levels = len(channels) - 1`` decoder stages, each nearest-neighbour x2 upsampling (MONAI
  ``UpSample``, "nontrainable") followed by two MONAI ``Convolution`` blocks (conv, instance norm,
  PReLU).  Instance norm rather than the batch norm of the WGAN-GP paper's generators: 3-D batches
  are one or two volumes, where batch statistics differ between training and inference;
- a 1x1 convolution and a sigmoid give one channel in [0, 1], the range of the Voronoi pseudo-masks
  of windowed CT (HU [-1000, 600] -> [0, 1]).

Example::

    >>> g = PseudoMaskGenerator(3, (32, 32, 16), latent_channels=4, channels=(16, 8, 4))
    >>> g.latent_shape(2)
    (2, 4, 8, 8, 4)
    >>> pm = g(g.sample_latent(2, seed=0))
    >>> tuple(pm.shape), bool(pm.min() >= 0 and pm.max() <= 1)
    ((2, 1, 32, 32, 16), True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution, UpSample
from monai.networks.layers import Act, Norm
from torch import nn

from anatosynth_components.checks import check_channels, check_spatial_dims, check_spatial_size
from anatosynth_components.errors import ConfigError
from anatosynth_components.network_size import Depth, check_depths_fit, is_instance_norm, plural


class PseudoMaskGenerator(nn.Module):
    """Spatial latent noise (B, latent_channels, *latent_size) -> pseudo-mask (B, 1, *spatial_size) in [0, 1].

    Args:
        spatial_dims: 2 or 3.
        spatial_size: output size, each entry divisible by ``2 ** levels``.
        latent_channels: channels of the latent noise ``z``.
        channels: feature channels from the latent resolution up to the output resolution; its length
            minus one is the number of x2 upsampling ``levels``.
        act, norm: MONAI activation and normalisation of the convolution blocks.
        kernel_size: convolution kernel size.
    """

    def __init__(
        self,
        spatial_dims: int,
        spatial_size: Sequence[int],
        latent_channels: int = 16,
        channels: Sequence[int] = (256, 128, 64, 32, 16),
        act: str | tuple = Act.PRELU,
        norm: str | tuple = Norm.INSTANCE,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        self.channels = check_channels(channels, "pseudo-mask generator channels")
        self.levels = len(self.channels) - 1
        self.spatial_size = check_spatial_size(
            spatial_size, self.spatial_dims, 2**self.levels, self.depth().how, "fewer pm_channels"
        )
        self.instance_norm = is_instance_norm(norm, self.spatial_dims)
        self.check_size(self.spatial_size)
        if int(latent_channels) < 1:
            raise ConfigError(f"latent_channels must be >= 1, got {latent_channels}")
        self.latent_channels = int(latent_channels)
        self.latent_size = tuple(s // 2**self.levels for s in self.spatial_size)

        def block(cin: int, cout: int) -> Convolution:
            return Convolution(self.spatial_dims, cin, cout, kernel_size=kernel_size, act=act, norm=norm)

        self.stem = nn.Sequential(
            block(self.latent_channels, self.channels[0]), block(self.channels[0], self.channels[0])
        )
        stages = []
        for cin, cout in zip(self.channels[:-1], self.channels[1:], strict=True):
            up = UpSample(self.spatial_dims, cin, cin, scale_factor=2, mode="nontrainable", pre_conv=None,
                          interp_mode="nearest", align_corners=None)  # fmt: skip
            stages.append(nn.Sequential(up, block(cin, cout), block(cout, cout)))
        self.stages = nn.Sequential(*stages)
        self.head = Convolution(self.spatial_dims, self.channels[-1], 1, kernel_size=1, conv_only=True)

    def depth(self) -> Depth:
        """The latent noise, ``spatial_size / 2 ** levels``, is the lowest level (the stem normalises it)."""
        return Depth("pm_channels", self.levels + 1, 2**self.levels, plural(self.levels, "x2 upsampling"))

    def check_size(self, spatial_size: Sequence[int], multiple: int = 1) -> None:
        """``ConfigError`` when the latent of ``spatial_size`` holds a single value, where the stem's
        instance norm fails; the message gives the smallest spatial_size and the most pm_channels.

        >>> PseudoMaskGenerator(2, (16, 16), channels=(4, 4, 4, 4, 4))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        anatosynth_components.errors.ConfigError: spatial_size [16, 16] is too small for pm_channels of 5 ...
        """
        if self.instance_norm:
            check_depths_fit(spatial_size, [self.depth()], math.lcm(2**self.levels, multiple))

    def latent_shape(self, batch_size: int) -> tuple[int, ...]:
        """Shape of ``z`` for ``batch_size`` samples: (B, latent_channels, *latent_size)."""
        return (int(batch_size), self.latent_channels, *self.latent_size)

    def sample_latent(
        self, batch_size: int, seed: int | None = None, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """Standard normal ``z`` of :meth:`latent_shape`; with ``seed`` drawn from a CPU generator seeded
        with it (the same ``z`` on every device), otherwise from torch's global generator."""
        return sample_latent(self.latent_shape(batch_size), seed, device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent_channels, *latent_size) -> pseudo-mask (B, 1, *spatial_size) in [0, 1]."""
        return torch.sigmoid(self.head(self.stages(self.stem(z))))


def sample_latent(
    shape: Sequence[int], seed: int | None = None, device: torch.device | str | None = None
) -> torch.Tensor:
    """Standard normal noise of ``shape``; seeded draws come from a CPU ``torch.Generator`` so that a
    seed gives the same noise on every device.

    >>> torch.equal(sample_latent((1, 2, 3), seed=5), sample_latent((1, 2, 3), seed=5))
    True
    """
    if seed is None:
        return torch.randn(*shape, device=device)
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randn(*shape, generator=generator).to(device if device is not None else "cpu")
