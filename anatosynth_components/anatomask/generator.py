"""AnatoMaskGAN generator: SPADE decoder over stacks of slices with GNN-SIF and 3D-SNI.

Tensor layout: MONAI channel-first with the slices as the first spatial axis, i.e. one-hot masks
(B, K, n, H, W) and images (B, 1, n, H, W); this is the documented equivalent of the paper's
(B, n, K, H, W).  Inside, slices are folded into the batch and processed by 2-D layers
(``spatial_dims=2``); only GNN-SIF (graph over the slices) and 3D-SNI (noise indexed by z) look
across slices.  With both switched off the model is per-slice SPADE.

Architecture (Fig. 1: encoder -> 3D-SNI -> GNN-SIF -> SPADE decoding): an encoder of stride-2
convolutions extracts each slice's mask features down to the lowest resolution (a quarter of the
decoder's width at the intermediate levels, the decoder's full width at the bottom, where its
features meet the decoder's); the decoder starts at the lowest resolution and, per level, injects
3-D noise (Eq. 2; levels up to ``noise_max_size``: Fig. 1 shows one injection after the encoder,
we also inject at the next levels so the noise reaches finer texture), applies a SPADE residual
block (MONAI's ``SPADENetResBlock``, conditioned on the mask, spectral-normalised convolutions),
applies GNN-SIF to (encoder + decoder) features (Algorithm 1; by default once, at the lowest
level, as Fig. 1 draws it; ``gnn_levels`` adds the next levels, with 1x1 projections of the
narrower encoder features), then upsamples by nearest neighbour.  A final 3x3 convolution and a
sigmoid give images in [0, 1].  Without GNN-SIF there is no encoder and the decoder starts, as in
SPADE, from a convolution of the downsampled mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.nets.spade_network import SPADENetResBlock
from torch import nn

from anatosynth_components.anatomask.gnn_sif import GNNSIF
from anatosynth_components.anatomask.noise3d import NoiseInjection3D
from anatosynth_components.anatomask.spectral import add_spectral_norm


def _conv_block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.InstanceNorm2d(cout), nn.LeakyReLU(0.2)
    )


class AnatoMaskGenerator(nn.Module):
    """Mask stack -> image stack.

    Args:
        num_classes: K, channels of the one-hot mask (background included).
        num_slices: n, slices per stack (GNN-SIF's graph size; any n works without GNN-SIF).
        spatial_size: (H, W), divisible by 2 ** (len(channel_mults) - 1).
        base_channels: channel unit (the paper's SPADE: 64).
        channel_mults: channels per level, lowest resolution first, in units of ``base_channels``;
            the default (16, 16, 8, 4, 2, 1) is SPADE's 7x7 -> 224x224 decoder.
        use_gnn_sif: GNN slice-feature fusion (and its encoder).
        use_noise3d: 3-D spatial noise injection.
        gnn_levels: how many of the lowest-resolution levels get GNN-SIF (Fig. 1: one).
        noise_max_size: noise is injected at levels whose feature size is at most this.
        spade_hidden: hidden channels of the SPADE normalisation MLPs.
        gnn_hidden: N1 of Eq. 1.
        semantic_edges, tau, max_distance: slice-graph options (see ``slice_graph``).
        noise_sigma: smoothing of the noise volume (z, y, x), in slices / feature pixels.
        noise_channels: channels of the drawn noise volume (mapped linearly to the features').

    Example::

        g = AnatoMaskGenerator(num_classes=36, num_slices=5, spatial_size=(224, 224))
        images = g(masks, z_index, noise_seed)   # (B, 36, 5, 224, 224) -> (B, 1, 5, 224, 224)
    """

    def __init__(
        self,
        num_classes: int,
        num_slices: int,
        spatial_size: Sequence[int] = (224, 224),
        base_channels: int = 64,
        channel_mults: Sequence[int] = (16, 16, 8, 4, 2, 1),
        use_gnn_sif: bool = True,
        use_noise3d: bool = True,
        gnn_levels: int = 1,
        noise_max_size: int = 32,
        spade_hidden: int = 128,
        gnn_hidden: int = 32,
        semantic_edges: bool = True,
        tau: float = 1.0,
        max_distance: int = 2,
        noise_sigma: Sequence[float] = (1.0, 1.0, 1.0),
        noise_channels: int = 32,
    ) -> None:
        super().__init__()
        levels = len(channel_mults)
        self.spatial_size = tuple(int(s) for s in spatial_size)
        if any(s % 2 ** (levels - 1) for s in self.spatial_size):
            raise ValueError(f"spatial_size {self.spatial_size} must be divisible by 2 ** {levels - 1}")
        self.num_classes, self.num_slices = num_classes, num_slices
        self.use_gnn_sif, self.use_noise3d = use_gnn_sif, use_noise3d
        ch = [base_channels * m for m in channel_mults]
        sizes = [tuple(s // 2 ** (levels - 1 - k) for s in self.spatial_size) for k in range(levels)]
        self.sizes = sizes
        if not 0 <= gnn_levels < levels:
            raise ValueError(f"gnn_levels must be in [0, {levels - 1}], got {gnn_levels}")
        if use_gnn_sif:  # encoder: half resolution down to the lowest level
            width = [ch[0]] + [max(c // 4, 16) for c in ch[1:]]
            self.enc_in = _conv_block(num_classes, width[-2], 2)
            self.enc = nn.ModuleList(
                [_conv_block(width[k + 1], width[k], 2) for k in reversed(range(levels - 2))]
            )
            self.enc_proj = nn.ModuleDict(
                {str(k): nn.Conv2d(width[k], ch[k], 1) for k in range(1, gnn_levels) if width[k] != ch[k]}
            )
        else:
            self.head = nn.Conv2d(num_classes, ch[0], 3, padding=1)
        self.blocks = nn.ModuleList(
            SPADENetResBlock(2, ch[max(k - 1, 0)], ch[k], num_classes, spade_hidden) for k in range(levels)
        )
        for block in self.blocks:
            add_spectral_norm(
                nn.ModuleList(
                    [block.conv_0, block.conv_1, *([block.conv_s] if block.learned_shortcut else [])]
                )
            )
        self.gnn = nn.ModuleDict(
            {
                str(k): GNNSIF(
                    ch[k], num_slices, sizes[k], gnn_hidden, tau, max_distance, semantic_edges=semantic_edges
                )
                for k in range(min(gnn_levels, levels))
            }
            if use_gnn_sif
            else {}
        )
        self.noise = nn.ModuleDict(
            {
                str(k): NoiseInjection3D(ch[max(k - 1, 0)], noise_channels, noise_sigma, stream=k)
                for k in range(levels)
                if max(sizes[k]) <= noise_max_size
            }
            if use_noise3d
            else {}
        )
        self.to_image = nn.Conv2d(ch[-1], 1, 3, padding=1)

    def encode(self, seg: torch.Tensor) -> list[torch.Tensor]:
        """Encoder features of levels 0 .. L-2, lowest resolution first."""
        feats = [self.enc_in(seg)]
        for layer in self.enc:
            feats.append(layer(feats[-1]))
        return feats[::-1]

    def forward(
        self, masks: torch.Tensor, z_index: torch.Tensor, noise_seed: torch.Tensor | None = None
    ) -> torch.Tensor:
        """masks (B, K, n, H, W), z_index (B, n), noise_seed (B,) -> images (B, 1, n, H, W) in [0, 1].

        Without ``noise_seed`` every item draws a seed from torch's generator (training); pass the
        same seed for every stack of a volume to synthesise it with one noise volume.
        """
        b, k, n, h, w = masks.shape
        if k != self.num_classes or (h, w) != self.spatial_size:
            raise ValueError(
                f"expected masks (B, {self.num_classes}, n, {self.spatial_size[0]}, {self.spatial_size[1]}), "
                f"got {tuple(masks.shape)}"
            )
        if z_index.shape != (b, n):
            raise ValueError(f"z_index must be (B, n) = {(b, n)}, got {tuple(z_index.shape)}")
        if noise_seed is None:
            noise_seed = torch.randint(0, 2**31 - 1, (b,))
        seg = masks.transpose(1, 2).flatten(0, 1).float()  # (B n, K, H, W)
        if self.use_gnn_sif:
            enc = self.encode(seg)
            y = enc[0]
        else:
            y = self.head(F.interpolate(seg, size=self.sizes[0], mode="nearest"))
        for level, block in enumerate(self.blocks):
            if str(level) in self.noise:
                y = self.noise[str(level)](y, noise_seed, z_index)
            y = block(y, seg)
            if str(level) in self.gnn:
                x = self.enc_proj[str(level)](enc[level]) if str(level) in self.enc_proj else enc[level]
                y = self.gnn[str(level)](x, y, masks, z_index)
            if level < len(self.blocks) - 1:
                y = F.interpolate(y, scale_factor=2, mode="nearest")
        image = torch.sigmoid(self.to_image(F.leaky_relu(y, 0.2)))
        return image.view(b, n, 1, h, w).transpose(1, 2)
