"""``ImageDiscriminator``: the ACIS image discriminator on (image, pseudo-mask, annotation) triples.

"The discriminator judges whether the synthesized image appears realistic, and evaluates the
consistency between the synthesized image, pseudo-mask, and the synthesized annotation" (paper
Sec. 2.2).  As in pix2pix's conditional PatchGAN, the condition is concatenated to the image on the
channels, here both conditions: ``cat([image, pseudo_mask, annotation one-hot])``, so a realistic image
that contradicts its annotation or pseudo-mask is scored fake.  MONAI's ``PatchDiscriminator``
(pix2pix's 70 x 70 PatchGAN at the defaults: 64 filters, 3 layers, 4 x 4 kernels); instance norm by
default instead of pix2pix's batch norm, for the batches of one or two volumes of 3-D training.
It returns raw patch logits, for MONAI's ``PatchAdversarialLoss``.

The training step decides what the pseudo-mask channel holds
(:func:`~anatosynth_components.acis.step.judge`): in phase 1 the real pseudo-mask, the same on the real
and the reconstructed triple; in phase 2 zeros on both sides, since the real triples' Voronoi
pseudo-masks and the generated triples' ``G_pm(z)`` differ by their source, which the generators
trained in phase 2 cannot change: D judges (image, annotation) pairs there, with the weights and the
channel layout of phase 1.

Example::

    >>> d = ImageDiscriminator(2, num_classes=3, channels=8, num_layers=2)
    >>> image, pm = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    >>> annotation = torch.zeros(2, 3, 32, 32); annotation[:, 0] = 1
    >>> d(image, pm, annotation).shape[:2]
    torch.Size([2, 1])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.layers import Act, Norm
from monai.networks.nets import PatchDiscriminator
from torch import nn

from anatosynth_components.checks import check_spatial_dims
from anatosynth_components.network_size import check_patch_gan_size, is_instance_norm


class ImageDiscriminator(nn.Module):
    """(image (B, 1, *S), pseudo-mask (B, 1, *S), annotation (B, num_classes, *S)) -> patch logits (B, 1, *P).

    The pseudo-mask is zeros in phase 2 (see the module docstring).

    Args:
        spatial_dims: 2 or 3.
        num_classes: annotation channels.
        channels: filters of the first layer.
        num_layers: MONAI ``num_layers_d``.
        norm: MONAI normalisation of the inner layers.
    """

    def __init__(
        self,
        spatial_dims: int,
        num_classes: int,
        channels: int = 64,
        num_layers: int = 3,
        norm: str | tuple = Norm.INSTANCE,
    ) -> None:
        super().__init__()
        self.num_classes, self.num_layers = int(num_classes), int(num_layers)
        self.instance_norm = is_instance_norm(norm, check_spatial_dims(spatial_dims))
        self.net = PatchDiscriminator(
            spatial_dims=check_spatial_dims(spatial_dims),
            channels=int(channels),
            in_channels=2 + self.num_classes,
            out_channels=1,
            num_layers_d=int(num_layers),
            activation=(Act.LEAKYRELU, {"negative_slope": 0.2}),
            norm=norm,
        )

    def check_size(self, spatial_size: Sequence[int], multiple: int = 1) -> None:
        """``ConfigError`` unless images of ``spatial_size`` fit the discriminator's layers (every
        convolution gets at least its kernel, every instance norm more than one value); the message gives
        the smallest spatial_size (each side a multiple of ``multiple``) and the most disc_layers that fit.

        >>> ImageDiscriminator(3, num_classes=3, channels=4).check_size((16, 16, 16))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        anatosynth_components.errors.ConfigError: spatial_size [16, 16, 16] is too small for the image ...
        """
        check_patch_gan_size(
            spatial_size, self.num_layers, "the image discriminator", "disc_layers (num_layers)",
            self.instance_norm, multiple=multiple,
        )  # fmt: skip

    def forward(
        self, image: torch.Tensor, pseudo_mask: torch.Tensor, annotation: torch.Tensor
    ) -> torch.Tensor:
        if annotation.shape[1] != self.num_classes:
            raise ValueError(f"annotation has {annotation.shape[1]} channels, expected {self.num_classes}")
        return self.net(torch.cat([image, pseudo_mask, annotation], dim=1))[-1]
