"""EDSR-style residual network for image restoration and super-resolution (ACIS Sec. 3.1, the
"ResNet" of the reconstruction experiments).

Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution", CVPR Workshops
2017 (EDSR): a 3 x 3 head convolution, ``num_blocks`` residual blocks without batch norm
(conv - ReLU - conv, scaled by ``res_scale``, plus the block input), a 3 x 3 convolution and a
global skip from the head, then for super-resolution a sub-pixel upsampler (a 3 x 3 convolution
and a pixel shuffle per factor 2 step, one step for factor 3; MONAI's ``SubpixelUpsample`` without
its pad-pool), and a 3 x 3 tail convolution.  EDSR-baseline sizes are the defaults (16 blocks, 64
features, res_scale 1).  EDSR's RGB mean shift is left out: inputs here are one-channel CT in
[0, 1].  With ``scale`` 1 (deblurring, denoising) there is no upsampler.

Example:
    >>> net = EDSRNet(spatial_dims=2, scale=2, features=8, num_blocks=2)
    >>> net(torch.rand(1, 1, 16, 16)).shape
    torch.Size([1, 1, 32, 32])
"""

from __future__ import annotations

import torch
from monai.networks.blocks import Convolution, SubpixelUpsample
from torch import nn

from anatosynth_components.errors import ConfigError


def conv3(spatial_dims: int, in_channels: int, out_channels: int) -> Convolution:
    return Convolution(spatial_dims, in_channels, out_channels, kernel_size=3, conv_only=True)


def subpixel_upsampler(spatial_dims: int, channels: int, scale: int) -> nn.Sequential:
    """EDSR's upsampler: log2(scale) sub-pixel x2 steps for powers of 2, one x3 step for 3."""
    if scale == 3:
        factors = [3]
    elif scale >= 2 and scale & (scale - 1) == 0:
        factors = [2] * (scale.bit_length() - 1)
    else:
        raise ConfigError(f"scale must be 1, 3 or a power of 2, got {scale}")
    return nn.Sequential(
        *[SubpixelUpsample(spatial_dims, channels, channels, f, apply_pad_pool=False) for f in factors]
    )


class ResBlock(nn.Module):
    """EDSR residual block: x + res_scale * conv(ReLU(conv(x))), no normalisation."""

    def __init__(self, spatial_dims: int, channels: int, res_scale: float = 1.0) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv3(spatial_dims, channels, channels),
            nn.ReLU(inplace=True),
            conv3(spatial_dims, channels, channels),
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.body(x)


class EDSRNet(nn.Module):
    """EDSR: (B, in_channels, *S) -> (B, out_channels, *(S * scale)).

    Args:
        spatial_dims: 2 or 3.
        in_channels, out_channels: image channels.
        scale: super-resolution factor (1: same-size restoration).
        features: feature channels (EDSR-baseline 64).
        num_blocks: residual blocks (EDSR-baseline 16).
        res_scale: residual scaling (EDSR-baseline 1; the large EDSR uses 0.1).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        scale: int = 1,
        features: int = 64,
        num_blocks: int = 16,
        res_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3) or scale < 1 or features < 1 or num_blocks < 0:
            raise ConfigError(
                f"EDSRNet: bad spatial_dims {spatial_dims}, scale {scale}, features {features} "
                f"or num_blocks {num_blocks}"
            )
        self.head = conv3(spatial_dims, in_channels, features)
        blocks = [ResBlock(spatial_dims, features, res_scale) for _ in range(num_blocks)]
        self.body = nn.Sequential(*blocks, conv3(spatial_dims, features, features))
        self.upsample = subpixel_upsampler(spatial_dims, features, scale) if scale > 1 else nn.Identity()
        self.tail = conv3(spatial_dims, features, out_channels)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.head(x)
        return self.tail(self.upsample(head + self.body(head)))
