"""SPADE normalisation and SPADE residual block as Park et al. (2019) define them.

Written here, not taken from MONAI, because MONAI's ``SPADE`` / ``SPADENetResBlock`` depart from
SPADE in two ways that change what the generator can learn:

- MONAI builds ``mlp_gamma`` and ``mlp_beta`` as ``monai.networks.blocks.Convolution`` with its
  default instance norm, so gamma and beta are zero-mean over each channel's feature map: the
  modulation cannot give a class an absolute intensity (for a one-class mask gamma = beta = 0).
  SPADE's are plain convolutions.
- MONAI's shared layer uses LeakyReLU; SPADE's is ``conv -> ReLU`` (hidden 128), and SPADE's
  learned shortcut has no bias.

What is the same as MONAI's: the parameter-free instance norm, the nearest-neighbour resizing of
the mask to the feature map, ``x_norm * (1 + gamma) + beta``, the block's ``min(in, out)`` middle
width and LeakyReLU(0.2) before each convolution.  Spectral norm sits on the block's three
convolutions (``conv_0``, ``conv_1``, ``conv_s``), as in SPADE's generator.

Both take ``spatial_dims`` (2 for the slices AnatoMaskGAN decodes; 3 works the same way) and can be
compiled by ``torch.jit.script`` once spectral norm is folded (``spectral.fold_spectral_norm``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.layers import Conv, Norm
from torch import nn

from anatosynth_components.anatomask.spectral import add_spectral_norm


class SPADENorm(nn.Module):
    """``SPADE(x, m) = IN(x) * (1 + gamma(m)) + beta(m)``, gamma / beta plain convolutions of a shared
    ``conv -> ReLU`` of the mask ``m`` (resized to ``x`` by nearest neighbour).

    Args:
        spatial_dims: 2 or 3.
        norm_channels: channels C of ``x``.
        label_channels: channels K of the (one-hot) mask.
        hidden_channels: width of the shared layer (SPADE: 128).
        kernel_size: of all three convolutions (SPADE: 3).

    Shapes: ``x`` (B, C, *S), ``mask`` (B, K, *S') -> (B, C, *S).

    Example::

        norm = SPADENorm(2, 256, 36)
        y = norm(features, one_hot_mask)   # (B, 256, 28, 28), (B, 36, 224, 224) -> (B, 256, 28, 28)
    """

    def __init__(
        self,
        spatial_dims: int,
        norm_channels: int,
        label_channels: int,
        hidden_channels: int = 128,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        conv = Conv[Conv.CONV, spatial_dims]
        pad = kernel_size // 2
        self.param_free_norm = Norm[Norm.INSTANCE, spatial_dims](norm_channels, affine=False)
        self.mlp_shared = nn.Sequential(
            conv(label_channels, hidden_channels, kernel_size, padding=pad), nn.ReLU()
        )
        self.mlp_gamma = conv(hidden_channels, norm_channels, kernel_size, padding=pad)
        self.mlp_beta = conv(hidden_channels, norm_channels, kernel_size, padding=pad)

    def modulation(self, mask: torch.Tensor, size: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(gamma, beta)``, each (B, C, *size), for ``mask`` resized to ``size`` (spatial sizes)."""
        actv = self.mlp_shared(F.interpolate(mask, size=size, mode="nearest"))
        return self.mlp_gamma(actv), self.mlp_beta(actv)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.modulation(mask, x.shape[2:])
        return self.param_free_norm(x) * (1 + gamma) + beta


class SPADEResBlock(nn.Module):
    """SPADE's residual block (``SPADEResnetBlock``):
    ``out = s(x) + conv_1(act(norm_1(conv_0(act(norm_0(x, m))), m)))``, with ``act`` LeakyReLU(0.2),
    middle width ``min(in, out)`` and, when the widths differ, ``s(x) = conv_s(norm_s(x, m))`` (1x1,
    no bias), else ``s(x) = x``.  Spectral norm on ``conv_0``, ``conv_1`` and ``conv_s``.

    Args:
        spatial_dims: 2 or 3.
        in_channels, out_channels: widths of the block's input and output.
        label_channels: channels K of the (one-hot) mask.
        hidden_channels: width of the SPADE layers' shared convolution (SPADE: 128).

    Shapes: ``x`` (B, in, *S), ``mask`` (B, K, *S') -> (B, out, *S).

    Example::

        block = SPADEResBlock(2, 1024, 512, 36)
        y = block(features, one_hot_mask)   # (B, 1024, 28, 28) -> (B, 512, 28, 28)
    """

    __constants__ = ["learned_shortcut"]  # TorchScript compiles only the branch that exists

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        label_channels: int,
        hidden_channels: int = 128,
    ) -> None:
        super().__init__()
        conv = Conv[Conv.CONV, spatial_dims]
        middle = min(in_channels, out_channels)
        self.learned_shortcut = in_channels != out_channels
        self.conv_0 = conv(in_channels, middle, 3, padding=1)
        self.conv_1 = conv(middle, out_channels, 3, padding=1)
        self.norm_0 = SPADENorm(spatial_dims, in_channels, label_channels, hidden_channels)
        self.norm_1 = SPADENorm(spatial_dims, middle, label_channels, hidden_channels)
        convs = [self.conv_0, self.conv_1]
        if self.learned_shortcut:
            self.conv_s = conv(in_channels, out_channels, 1, bias=False)
            self.norm_s = SPADENorm(spatial_dims, in_channels, label_channels, hidden_channels)
            convs.append(self.conv_s)
        add_spectral_norm(nn.ModuleList(convs))

    def shortcut(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.learned_shortcut:
            return self.conv_s(self.norm_s(x, mask))
        return x

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, mask), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, mask), 0.2))
        return self.shortcut(x, mask) + dx
