"""``ImageGenerator``: the ACIS conditional pix2pix generator (paper Sec. 2.2, ref. [21]).

"The synthesized pseudo-masks as well as the annotations will be concatenated along the channel
dimension and then sent to the image generator", a "conditional pix2pix generative model".  pix2pix's
generator is a U-Net with skip connections; here MONAI's ``UNet`` with ``1 + num_classes`` input
channels (pseudo-mask, annotation one-hot) and one output channel, squashed to [0, 1] (the windowed CT
range) by a sigmoid where pix2pix uses tanh for [-1, 1].

pix2pix uses dropout as its only noise source; in ACIS the variability comes from the pseudo-mask
(random Voronoi cells in phase 1, ``G_pm(z)`` in phase 2), so ``dropout`` defaults to 0 and a sample is
a deterministic function of its latent seed.

Example::

    >>> net = ImageGenerator(3, num_classes=3, channels=(4, 8), strides=(2,))
    >>> x = torch.cat([torch.rand(1, 1, 16, 16, 16), torch.rand(1, 3, 16, 16, 16)], dim=1)
    >>> y = net(x)
    >>> tuple(y.shape), bool(y.min() >= 0 and y.max() <= 1)
    ((1, 1, 16, 16, 16), True)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.layers import Norm
from monai.networks.nets import UNet

from anatosynth_components.acis.annotation_generator import default_strides
from anatosynth_components.acis.shapes import check_channels, check_spatial_dims
from anatosynth_components.errors import ConfigError


class ImageGenerator(UNet):
    """``cat([pseudo-mask (B, 1, *S), annotation (B, num_classes, *S)], 1)`` -> image (B, 1, *S) in [0, 1].

    Args:
        spatial_dims: 2 or 3.
        num_classes: annotation channels (classes including background).
        channels, strides, num_res_units, norm, dropout: as MONAI ``UNet``.
    """

    def __init__(
        self,
        spatial_dims: int,
        num_classes: int,
        channels: Sequence[int] = (64, 128, 256, 512, 512),
        strides: Sequence[int] | None = None,
        num_res_units: int = 2,
        norm: str | tuple = Norm.INSTANCE,
        dropout: float = 0.0,
    ) -> None:
        if int(num_classes) < 2:
            raise ConfigError(f"num_classes must be >= 2 (background and one label), got {num_classes}")
        channels = check_channels(channels, "image generator channels")
        super().__init__(
            spatial_dims=check_spatial_dims(spatial_dims),
            in_channels=1 + int(num_classes),
            out_channels=1,
            channels=channels,
            strides=default_strides(channels, strides),
            num_res_units=int(num_res_units),
            norm=norm,
            dropout=float(dropout),
        )
        self.num_classes = int(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1 + num_classes, *S) -> (B, 1, *S) in [0, 1]."""
        return torch.sigmoid(self.model(x))  # UNet.forward is self.model (super() does not script)
