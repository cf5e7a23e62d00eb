"""AnatoMaskGAN discriminator: multi-scale patch discriminator on (one-hot mask, image).

Slices are judged one by one (folded into the batch), as in SPADE, on the mask and the image
concatenated on channels.  Each scale is MONAI's ``PatchDiscriminator`` (64-128-256-512 filters for
``num_layers_d=3``, like pix2pixHD's); scale i sees the input average-pooled i times, as in
pix2pixHD / SPADE.  MONAI's ``MultiScalePatchDiscriminator`` is not used: it feeds every scale the
full-resolution input and doubles the filters without a cap for its deeper scales (181 M
parameters for SPADE's configuration, against 5.5 M here).  Instance norm, and spectral norm on
every convolution, follow SPADE.

The discriminator is not told the slice size; :meth:`AnatoMaskDiscriminator.check_size` says whether
slices of a size fit its layers (the trainer asks it at start-up).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.nets import PatchDiscriminator
from torch import nn

from anatosynth_components.anatomask.spectral import add_spectral_norm
from anatosynth_components.network_size import check_patch_gan_size


class AnatoMaskDiscriminator(nn.Module):
    """Multi-scale patch discriminator over slice stacks.

    Args:
        num_classes: K, mask channels.
        num_d: number of scales (discriminators).
        num_layers_d: layers of each discriminator (3: 64-128-256-512 filters).
        channels: filters of the first layer.

    Shapes:
        ``forward(masks (B, K, n, H, W), images (B, 1, n, H, W))`` returns ``(outputs, features)``,
        the format of MONAI's ``MultiScalePatchDiscriminator``: ``num_d`` patch logits
        (B * n, 1, h_i, w_i) and, per scale, the list of intermediate features.
    """

    def __init__(self, num_classes: int, num_d: int = 2, num_layers_d: int = 3, channels: int = 64) -> None:
        super().__init__()
        self.num_d, self.num_layers_d = int(num_d), int(num_layers_d)
        self.scales = nn.ModuleList(
            PatchDiscriminator(
                spatial_dims=2,
                channels=channels,
                in_channels=num_classes + 1,
                num_layers_d=num_layers_d,
                norm="INSTANCE",
                bias=True,
            )
            for _ in range(num_d)
        )
        add_spectral_norm(self)

    def check_size(self, spatial_size: Sequence[int], multiple: int = 1) -> None:
        """``ConfigError`` unless slices of ``spatial_size`` fit every scale's layers (each convolution gets
        at least its kernel, each instance norm more than one value); the message gives the smallest
        spatial_size (each side a multiple of ``multiple``, the generator's) and the most layers that fit.

        >>> AnatoMaskDiscriminator(3, channels=4).check_size((32, 32), 4)
        ...                                          # doctest: +ELLIPSIS +NORMALIZE_WHITESPACE
        Traceback (most recent call last):
        ...
        anatosynth_components.errors.ConfigError: spatial_size [32, 32] is too small for the discriminator's
        disc_layers (num_layers_d) 3 at scale 2 of 2 (16 x 16 input): layer 4 of 5 gives 1 x 1 features (...):
        use spatial_size of at least [48, 48] (each side a multiple of 4) or disc_layers 2
        """
        check_patch_gan_size(
            spatial_size, self.num_layers_d, "the discriminator", "disc_layers (num_layers_d)",
            num_scales=self.num_d, multiple=multiple,
        )  # fmt: skip

    def forward(
        self, masks: torch.Tensor, images: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        x = torch.cat([masks.float(), images], dim=1).transpose(1, 2).flatten(0, 1)  # (B n, K + 1, H, W)
        outputs, features = [], []
        for i, disc in enumerate(self.scales):
            if i:  # network_size.SCALE_POOL
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            out = disc(x)
            outputs.append(out[-1])
            features.append(out[:-1])
        return outputs, features
