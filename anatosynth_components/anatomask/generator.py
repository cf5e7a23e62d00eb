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
we also inject at the next levels so the noise reaches finer texture), applies the level's SPADE
residual blocks (:class:`~anatosynth_components.anatomask.spade.SPADEResBlock`, SPADE's block with
plain-convolution gamma / beta and spectral norm), applies GNN-SIF to (encoder + decoder) features
(Algorithm 1; by default once, at the lowest level, as Fig. 1 draws it; ``gnn_levels`` adds the
next levels, with 1x1 projections of the narrower encoder features), then upsamples by nearest
neighbour.  A final 3x3 convolution after LeakyReLU and a sigmoid give images in [0, 1] (SPADE
uses tanh for [-1, 1]; the same map up to an affine change of range).

Block layout: SPADE's decoder for 5 upsamplings (7x7 -> 224x224) has 7 residual blocks, the head
at 7x7, two middle blocks at 14x14 and four up blocks; ``blocks_per_level`` (default: two blocks at
the second level, one elsewhere) gives exactly that for the default ``channel_mults``.

The encoder (``use_encoder``) is its own switch so that the ablation can keep it in every variant
and "+ GNN-SIF" adds only the graph fusion; GNN-SIF needs it.  Without the encoder the decoder
starts, as in SPADE, from a convolution of the downsampled mask.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from anatosynth_components.anatomask.gnn_sif import GNNSIF
from anatosynth_components.anatomask.noise3d import NoiseInjection3D
from anatosynth_components.anatomask.spade import SPADEResBlock
from anatosynth_components.anatomask.spectral import prepare_scriptable
from anatosynth_components.checks import check_positive_int, check_spatial_size
from anatosynth_components.errors import ConfigError
from anatosynth_components.network_size import Depth, check_depths_fit, lowest_level_problem, plural


def _conv_block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.InstanceNorm2d(cout), nn.LeakyReLU(0.2)
    )


class AnatoMaskGenerator(nn.Module):
    """Mask stack -> image stack.

    Args:
        num_classes: K, channels of the one-hot mask (background included).
        num_slices: n, slices per stack (GNN-SIF's graph size; any n works without GNN-SIF).
        spatial_size: (H, W), divisible by 2 ** (len(channel_mults) - 1), with more than one value at
            the lowest level (SPADE's instance norm): at least 64 x 64 (or 32 x 64) for the default
            channel_mults; :meth:`check_size` says what fits.
        base_channels: channel unit (the paper's SPADE: 64).
        channel_mults: channels per level, lowest resolution first, in units of ``base_channels``;
            the default (16, 16, 8, 4, 2, 1) is SPADE's 7x7 -> 224x224 decoder.
        use_gnn_sif: GNN slice-feature fusion (needs the encoder).
        use_noise3d: 3-D spatial noise injection.
        use_encoder: the mask encoder whose lowest-level features start the decoder (default:
            on with GNN-SIF, off without, i.e. plain SPADE's head).
        blocks_per_level: residual blocks per level, lowest resolution first (default: 2 at the
            second level, 1 elsewhere; SPADE's 7 blocks for 6 levels).
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

    ``torch.jit.script(g)`` compiles a copy with spectral norm folded into plain weights (the eval
    function; :meth:`__prepare_scriptable__`).
    """

    __constants__ = ["use_encoder"]  # TorchScript compiles only the start (encoder or head) that exists

    def __init__(
        self,
        num_classes: int,
        num_slices: int,
        spatial_size: Sequence[int] = (224, 224),
        base_channels: int = 64,
        channel_mults: Sequence[int] = (16, 16, 8, 4, 2, 1),
        use_gnn_sif: bool = True,
        use_noise3d: bool = True,
        use_encoder: bool | None = None,
        blocks_per_level: Sequence[int] | None = None,
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
        if levels < 1:
            raise ConfigError(f"channel_mults must hold at least one entry, got {list(channel_mults)}")
        self.size_multiple = 2 ** (levels - 1)  # spatial_size / size_multiple at the lowest level
        self.spatial_size = check_spatial_size(
            spatial_size,
            2,
            self.size_multiple,
            f"channel_mults has {levels} entries: {self.depth().how} down to the lowest level",
            "a channel_mults with fewer entries",
            lambda size: lowest_level_problem(size, [self.depth()]) is None,
        )
        self.check_size(self.spatial_size)
        check_positive_int("num_slices", num_slices)
        self.num_classes, self.num_slices = num_classes, num_slices
        self.use_gnn_sif, self.use_noise3d = use_gnn_sif, use_noise3d
        ch = [base_channels * m for m in channel_mults]
        sizes = [tuple(s // 2 ** (levels - 1 - k) for s in self.spatial_size) for k in range(levels)]
        self.sizes = sizes
        if not 0 <= gnn_levels < levels:
            raise ValueError(f"gnn_levels must be in [0, {levels - 1}], got {gnn_levels}")
        self.use_encoder = use_gnn_sif if use_encoder is None else bool(use_encoder)
        if use_gnn_sif and not self.use_encoder:
            raise ConfigError(
                "use_gnn_sif needs the encoder (use_encoder true): GNN-SIF fuses encoder features"
            )
        for k in range(gnn_levels) if use_gnn_sif else ():
            if ch[k] % 8:
                raise ConfigError(
                    f"use_gnn_sif needs base_channels * channel_mults[{k}] divisible by 8 (GNN-SIF splits "
                    f"the channels into halves, quarters and eighths), got {base_channels} * "
                    f"{channel_mults[k]} = {ch[k]}"
                )
        if self.use_encoder:  # encoder: half resolution down to the lowest level
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
        self.blocks_per_level = self._block_layout(blocks_per_level, levels)
        self.blocks = nn.ModuleList(
            nn.ModuleList(
                SPADEResBlock(2, ch[max(k - 1, 0)] if i == 0 else ch[k], ch[k], num_classes, spade_hidden)
                for i in range(count)
            )
            for k, count in enumerate(self.blocks_per_level)
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

    def check_size(self, spatial_size: Sequence[int], multiple: int = 1) -> None:
        """``ConfigError`` unless slices of ``spatial_size`` (divisible by :attr:`size_multiple`) leave
        more than one value at the lowest level, where SPADE's instance norm works; the message gives the
        smallest spatial_size (a multiple of ``multiple`` too) and the longest channel_mults that fit.

        >>> AnatoMaskGenerator(3, 2, (64, 64), base_channels=1).check_size((32, 32))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        anatosynth_components.errors.ConfigError: spatial_size [32, 32] is too small for channel_mults ...
        """
        check_depths_fit(spatial_size, [self.depth()], math.lcm(self.size_multiple, multiple))

    def depth(self) -> Depth:
        """The lowest level is ``spatial_size / size_multiple`` (one halving per level below the top)."""
        halvings = self.size_multiple.bit_length() - 1
        return Depth("channel_mults", halvings + 1, self.size_multiple, plural(halvings, "halving"))

    @staticmethod
    def _block_layout(blocks_per_level: Sequence[int] | None, levels: int) -> tuple[int, ...]:
        if blocks_per_level is None:
            return tuple(2 if k == 1 else 1 for k in range(levels))
        layout = tuple(int(c) for c in blocks_per_level)
        if len(layout) != levels or min(layout) < 1:
            raise ConfigError(
                f"blocks_per_level must give at least one block for each of the {levels} levels of "
                f"channel_mults, got {list(blocks_per_level)}"
            )
        return layout

    def __prepare_scriptable__(self) -> nn.Module:
        """``torch.jit.script`` compiles a copy with spectral norm folded into plain weights (see
        :mod:`~anatosynth_components.anatomask.spectral`); this generator keeps its spectral norm."""
        return prepare_scriptable(self)

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
        if masks.ndim != 5:
            raise ValueError(f"expected masks (B, {self.num_classes}, n, H, W), got {masks.shape}")
        b, k, n, h, w = masks.shape[0], masks.shape[1], masks.shape[2], masks.shape[3], masks.shape[4]
        if k != self.num_classes or (h, w) != self.spatial_size:
            raise ValueError(
                f"expected masks (B, {self.num_classes}, n, {self.spatial_size[0]}, {self.spatial_size[1]}), "
                f"got {masks.shape}"
            )
        if list(z_index.shape) != [b, n]:
            raise ValueError(f"z_index must be (B, n) = ({b}, {n}), got {z_index.shape}")
        if noise_seed is None:
            noise_seed = torch.randint(0, 2147483647, (b,))
        seg = masks.transpose(1, 2).flatten(0, 1).float()  # (B n, K, H, W)
        enc: list[torch.Tensor] = []
        if self.use_encoder:
            enc = self.encode(seg)
            y = enc[0]
        else:
            y = self.head(F.interpolate(seg, size=[self.sizes[0][0], self.sizes[0][1]], mode="nearest"))
        # the ModuleDicts are keyed by level; TorchScript indexes a ModuleDict by literal keys only, so
        # each is searched for the level's key (a loop over at most a few entries)
        for level, blocks in enumerate(self.blocks):
            key = str(level)
            for name, inject in self.noise.items():
                if name == key:
                    y = inject(y, noise_seed, z_index)
            for block in blocks:
                y = block(y, seg)
            for name, gnn in self.gnn.items():
                if name == key:
                    x = enc[level]
                    for proj_name, proj in self.enc_proj.items():
                        if proj_name == key:
                            x = proj(x)
                    y = gnn(x, y, masks, z_index)
            if level < len(self.blocks) - 1:
                y = F.interpolate(y, scale_factor=2.0, mode="nearest")
        image = torch.sigmoid(self.to_image(F.leaky_relu(y, 0.2)))
        return image.view(b, n, 1, h, w).transpose(1, 2)
