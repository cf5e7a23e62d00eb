"""RED-CNN, the residual encoder-decoder CNN of the ACIS reconstruction experiments (Sec. 3.1,
ref. [32]).

Chen et al., "Low-Dose CT With a Residual Encoder-Decoder Convolutional Neural Network", IEEE TMI
36(12), 2017: five convolutions and five transposed convolutions, all ``kernel_size`` 5 with 96
filters, stride 1 and no padding (each convolution trims 4 pixels, each transposed convolution
gives them back), ReLU activations, and three residual shortcuts: the input to the last layer's
output, the 2nd convolution's output to the 3rd transposed convolution's, the 4th's to the 1st
transposed convolution's; ReLU after each addition, as in the paper's Fig. 1.  It has no
upsampler, so for super-resolution it is given the bilinearly upsampled low-resolution image (the
reconstruction experiment does that).  Inputs need every side > 4 * (kernel_size - 1) = 20 pixels.

Example:
    >>> net = REDCNN(spatial_dims=2, features=8)
    >>> net(torch.rand(2, 1, 24, 24)).shape
    torch.Size([2, 1, 24, 24])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.layers import Conv
from torch import nn

from anatosynth_components.errors import ConfigError, DataError
from anatosynth_components.network_size import check_size_fits


class REDCNN(nn.Module):
    """RED-CNN: (B, in_channels, *S) -> (B, out_channels, *S).

    Args:
        spatial_dims: 2 or 3.
        in_channels, out_channels: image channels.
        features: filters per layer (paper: 96).
        kernel_size: kernel size (paper: 5).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        features: int = 96,
        kernel_size: int = 5,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3) or features < 1 or kernel_size < 1:
            raise ConfigError(
                f"REDCNN: bad spatial_dims {spatial_dims}, features {features} or kernel {kernel_size}"
            )
        conv, deconv = Conv[Conv.CONV, spatial_dims], Conv[Conv.CONVTRANS, spatial_dims]
        chans = [in_channels] + [features] * 5
        self.encoder = nn.ModuleList([conv(chans[i], chans[i + 1], kernel_size) for i in range(5)])
        outs = [features] * 4 + [out_channels]
        self.decoder = nn.ModuleList([deconv(features, outs[i], kernel_size) for i in range(5)])
        self.trim = 5 * (kernel_size - 1)
        self.relu = nn.ReLU()

    def check_size(self, spatial_size: Sequence[int], multiple: int = 1, key: str = "spatial_size") -> None:
        """``ConfigError`` unless inputs of ``spatial_size`` (``key``: the size the network is given, the
        slices' or the training patches') exceed the pixels the five unpadded convolutions trim.

        >>> REDCNN(features=4).check_size((16, 16), key="train_patch")  # doctest: +NORMALIZE_WHITESPACE
        Traceback (most recent call last):
        ...
        anatosynth_components.errors.ConfigError: train_patch [16, 16] is too small for RED-CNN's five
        unpadded 5 x 5 convolutions, which trim 20 pixels: use train_patch of at least [21, 21]
        """
        k = self.trim // 5 + 1
        check_size_fits(
            spatial_size,
            lambda size: (
                None
                if min(size) > self.trim
                else f"RED-CNN's five unpadded {k} x {k} convolutions, which trim {self.trim} pixels"
            ),
            multiple,
            key=key,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(s <= self.trim for s in x.shape[2:]):
            raise DataError(
                f"REDCNN: input {tuple(x.shape[2:])} must exceed {self.trim} pixels on every side"
            )
        e1 = self.relu(self.encoder[0](x))
        e2 = self.relu(self.encoder[1](e1))
        e3 = self.relu(self.encoder[2](e2))
        e4 = self.relu(self.encoder[3](e3))
        e5 = self.relu(self.encoder[4](e4))
        d = self.relu(self.decoder[0](e5) + e4)
        d = self.relu(self.decoder[1](d))
        d = self.relu(self.decoder[2](d) + e2)
        d = self.relu(self.decoder[3](d))
        return self.relu(self.decoder[4](d) + x)
