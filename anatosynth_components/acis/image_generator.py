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

import torch

from anatosynth_components.acis.annotation_generator import ClassUNet


class ImageGenerator(ClassUNet):
    """``cat([pseudo-mask (B, 1, *S), annotation (B, num_classes, *S)], 1)`` -> image (B, 1, *S) in [0, 1].

    Args:
        spatial_dims: 2 or 3.
        num_classes: annotation channels (classes including background).
        channels: default ``(64, 128, 256, 512, 512)``.
        strides, num_res_units, norm, dropout: as MONAI ``UNet``.
    """

    name = "image generator"
    channels_key = "image_channels"
    default_channels = (64, 128, 256, 512, 512)

    @staticmethod
    def io_channels(num_classes: int) -> tuple[int, int]:
        return 1 + num_classes, 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1 + num_classes, *S) -> (B, 1, *S) in [0, 1]."""
        return torch.sigmoid(self.model(x))  # UNet.forward is self.model (super() does not script)
