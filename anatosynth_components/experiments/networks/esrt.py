"""ESRT, the Efficient Super-Resolution Transformer of the ACIS super-resolution experiments
(Sec. 3.1, ref. [33]).

Lu, Li, Liu, Huang, Zhang and Zeng, "Transformer for Single Image Super-Resolution", CVPR
Workshops (NTIRE) 2022, arXiv:2108.11084; official code https://github.com/luissen/ESRT.  MONAI has
no ESRT, so it is written here from the paper, with the official code settling what the paper
leaves open (noted below).  Every size is configurable; the defaults are the paper's.

Architecture, on the low-resolution image (B, 1, H, W) -> (B, 1, scale H, scale W):

- shallow features: one 3 x 3 convolution to ``channels`` (32);
- lightweight CNN backbone (LCB): ``num_hpb`` (3) high-preserving blocks (HPB).  An HPB runs an
  adaptive residual feature block (ARFB) on its input, splits off the high frequencies with the
  high-frequency filtering module (HFM: P_high = T - up(avgpool_2(T)), bilinear up), runs the
  low-resolution part through ``low_repeats`` (5) passes of one shared ARFB and the high part
  through another ARFB, upsamples the low part, concatenates both, fuses them with a 1 x 1
  convolution, channel attention and an ARFB, and adds the block input;
- an ARFB is two residual units (RU: reduce channels by 2 with a 3 x 3 convolution, PReLU, expand
  back, both paths weighted by learnable scalars), the concatenation of both RU outputs fused by a
  1 x 1 convolution + ReLU, channel attention, a 3 x 3 convolution + ReLU, and an adaptive
  (learnable-weight) residual;
- the three HPB outputs are concatenated and reduced by a 3 x 3 convolution (official code);
- lightweight transformer backbone (LTB): ``num_et`` (1) efficient transformers (ET).  An ET
  unfolds the feature map into 3 x 3 patches at every pixel (tokens of 9 C values), applies
  pre-norm efficient multi-head attention (EMHA) and a pre-norm MLP (hidden size = token size / 4,
  ReLU), each with a residual, and folds the tokens back (overlaps summed).  EMHA reduces the token
  size by 2 with a linear layer, projects to Q, K, V, splits the sequence of H W tokens into
  ``splits`` (4) segments and attends within each segment only (the memory saving of the paper's
  Fig. 4), with ``num_heads`` (8) heads, and projects back to the token size.  After the ET a
  3 x 3 convolution, and the result is added to the shallow features with learnable weights
  (official code: the residual spans the whole backbone), followed by a 3 x 3 convolution;
- reconstruction: a sub-pixel upsampler and a 3 x 3 convolution on the backbone output, plus a
  second path that upsamples the shallow features (sub-pixel upsampler, 3 x 3 convolution, ReLU) and
  is added (official code's ``up`` path).

Channel attention is MONAI's ``ChannelSELayer`` (squeeze-excitation, reduction 16) and the
upsamplers are MONAI's ``SubpixelUpsample`` steps, as in :mod:`recon_resnet`.  2-D only (the
paper's setting).  The ET attends over H W / splits tokens per segment, so memory grows with the
square of the low-resolution image size: train on patches, as the paper does (48 x 48 LR).

Example:
    >>> net = ESRT(scale=2, channels=8, num_heads=2, low_repeats=1)
    >>> net(torch.rand(1, 1, 8, 8)).shape
    torch.Size([1, 1, 16, 16])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import ChannelSELayer
from torch import nn

from anatosynth_components.errors import ConfigError
from anatosynth_components.experiments.networks.resnet import subpixel_upsampler
from anatosynth_components.network_size import check_size_fits


class Scale(nn.Module):
    """A learnable scalar weight (the adaptive residual weights of ARFB and the LTB)."""

    def __init__(self, value: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(float(value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * x


def _conv(in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


class ResidualUnit(nn.Module):
    """RU: w1 x + w2 Expand(PReLU(Reduce(x))), channels C -> C/2 -> C with 3 x 3 convolutions."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = max(1, channels // 2)
        self.body = nn.Sequential(_conv(channels, hidden, 3), nn.PReLU(hidden), _conv(hidden, channels, 3))
        self.w_skip, self.w_body = Scale(), Scale()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_skip(x) + self.w_body(self.body(x))


class ARFB(nn.Module):
    """Adaptive residual feature block: two RUs, 1 x 1 fusion, channel attention, 3 x 3 conv,
    adaptive residual."""

    def __init__(self, channels: int, ca_reduction: int = 16) -> None:
        super().__init__()
        self.ru1, self.ru2 = ResidualUnit(channels), ResidualUnit(channels)
        self.w1, self.w2 = Scale(), Scale()
        self.fuse = nn.Sequential(
            _conv(2 * channels, channels, 1, bias=False),
            nn.ReLU(inplace=True),
            ChannelSELayer(2, channels, r=min(ca_reduction, channels)),
            _conv(channels, channels, 3, bias=False),
            nn.ReLU(inplace=True),
        )
        self.w_skip, self.w_body = Scale(), Scale()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.ru1(x)
        x2 = self.ru2(x1)
        return self.w_skip(x) + self.w_body(self.fuse(torch.cat([self.w2(x2), self.w1(x1)], dim=1)))


def high_frequency(x: torch.Tensor, pool: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """HFM: (the pooled low-frequency map, the high-frequency residual x - up(avgpool(x)))."""
    low = F.avg_pool2d(x, pool)
    return low, x - F.interpolate(low, size=x.shape[-2:], mode="bilinear", align_corners=True)


class HPB(nn.Module):
    """High-preserving block (see the module docstring)."""

    def __init__(self, channels: int, low_repeats: int = 5, ca_reduction: int = 16) -> None:
        super().__init__()
        self.encoder = ARFB(channels, ca_reduction)
        self.low = ARFB(channels, ca_reduction)  # one block applied low_repeats times (official code)
        self.high = ARFB(channels, ca_reduction)
        self.fuse = nn.Sequential(
            _conv(2 * channels, channels, 1, bias=False),
            nn.ReLU(inplace=True),
            ChannelSELayer(2, channels, r=min(ca_reduction, channels)),
            ARFB(channels, ca_reduction),
        )
        self.low_repeats = low_repeats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        low, high = high_frequency(features)
        for _ in range(self.low_repeats):
            low = self.low(low)
        low = F.interpolate(low, size=x.shape[-2:], mode="bilinear", align_corners=True)
        return self.fuse(torch.cat([low, self.high(high)], dim=1)) + x


class EMHA(nn.Module):
    """Efficient multi-head attention on tokens (B, N, D): reduce to D/2, Q K V, attention within
    ``splits`` segments of the sequence, project back to D."""

    def __init__(self, dim: int, num_heads: int = 8, splits: int = 4) -> None:
        super().__init__()
        inner = dim // 2
        if inner % num_heads:
            raise ConfigError(f"EMHA: token size / 2 = {inner} is not divisible by num_heads {num_heads}")
        self.reduce = nn.Linear(dim, inner, bias=False)
        self.qkv = nn.Linear(inner, 3 * inner, bias=False)
        self.proj = nn.Linear(inner, dim)
        self.num_heads, self.splits = num_heads, splits
        self.scale = (inner // num_heads) ** -0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.reduce(x)
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        size = max(1, math.ceil(n / self.splits))
        parts = []
        for qs, ks, vs in zip(q.split(size, dim=2), k.split(size, dim=2), v.split(size, dim=2), strict=True):
            attention = (qs @ ks.transpose(-2, -1) * self.scale).softmax(dim=-1)
            parts.append((attention @ vs).transpose(1, 2))  # (B, n_segment, heads, c / heads)
        return self.proj(torch.cat(parts, dim=1).reshape(b, n, c))


class EfficientTransformer(nn.Module):
    """ET: 3 x 3 patch tokens, pre-norm EMHA and MLP with residuals, fold back: (B, C, H, W) -> same."""

    def __init__(
        self, channels: int, num_heads: int = 8, splits: int = 4, mlp_ratio: float = 0.25, patch: int = 3
    ) -> None:
        super().__init__()
        dim = channels * patch * patch
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = EMHA(dim, num_heads, splits)
        hidden = max(1, int(dim * mlp_ratio))
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim))
        self.patch = patch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        tokens = F.unfold(x, self.patch, padding=self.patch // 2).transpose(1, 2)  # (B, H W, 9 C)
        tokens = tokens + self.attention(self.norm1(tokens))
        tokens = tokens + self.mlp(self.norm2(tokens))
        return F.fold(tokens.transpose(1, 2), (h, w), self.patch, padding=self.patch // 2)


class ESRT(nn.Module):
    """ESRT: (B, in_channels, H, W) -> (B, out_channels, scale H, scale W); see the module docstring.

    Args:
        scale: super-resolution factor (2, 3, 4, 8, ...).
        in_channels, out_channels: image channels.
        channels: feature channels (paper: 32).
        num_hpb: HPBs in the CNN backbone (paper: 3).
        num_et: efficient transformers in the transformer backbone (paper: 1).
        num_heads: EMHA heads (paper: 8).
        splits: EMHA sequence segments (paper: s = 4).
        low_repeats: passes of the low-frequency ARFB in an HPB (official code: 5).
        mlp_ratio: ET MLP hidden size / token size (official code: 1/4).
        ca_reduction: channel-attention reduction (official code: 16).
        spatial_dims: must be 2.
    """

    def __init__(
        self,
        scale: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        channels: int = 32,
        num_hpb: int = 3,
        num_et: int = 1,
        num_heads: int = 8,
        splits: int = 4,
        low_repeats: int = 5,
        mlp_ratio: float = 0.25,
        ca_reduction: int = 16,
        spatial_dims: int = 2,
    ) -> None:
        super().__init__()
        if spatial_dims != 2:
            raise ConfigError(f"ESRT is a 2-D network (spatial_dims 2), got spatial_dims {spatial_dims}")
        if scale < 2 or num_hpb < 1 or num_et < 1 or splits < 1:
            raise ConfigError(
                f"ESRT: bad scale {scale}, num_hpb {num_hpb}, num_et {num_et} or splits {splits}"
            )
        self.head = _conv(in_channels, channels, 3)
        self.hpbs = nn.ModuleList([HPB(channels, low_repeats, ca_reduction) for _ in range(num_hpb)])
        self.reduce = _conv(num_hpb * channels, channels, 3)
        self.transformers = nn.Sequential(
            *[EfficientTransformer(channels, num_heads, splits, mlp_ratio) for _ in range(num_et)]
        )
        self.after_transformer = _conv(channels, channels, 3)
        self.w_skip, self.w_ltb = Scale(), Scale()
        self.body_out = _conv(channels, channels, 3)
        self.tail = nn.Sequential(subpixel_upsampler(2, channels, scale), _conv(channels, out_channels, 3))
        self.shallow_up = nn.Sequential(
            subpixel_upsampler(2, channels, scale),
            _conv(channels, out_channels, 3, bias=False),
            nn.ReLU(inplace=True),
        )
        self.scale = scale

    def check_size(self, spatial_size: Sequence[int], multiple: int = 1, key: str = "spatial_size") -> None:
        """``ConfigError`` unless high-resolution images of ``spatial_size`` (``key``: the slices' or the
        training patches') give low-resolution inputs (``spatial_size / scale``) of at least 2 x 2, which
        the high-frequency filter's 2 x 2 average pooling needs.

        >>> ESRT(scale=4, channels=8, num_heads=2).check_size((4, 8))  # doctest: +NORMALIZE_WHITESPACE
        Traceback (most recent call last):
        ...
        anatosynth_components.errors.ConfigError: spatial_size [4, 8] is too small for ESRT at scale 4 (1 x 2
        low-resolution input; its high-frequency filter average-pools 2 x 2): use spatial_size of at least
        [8, 8] (each side a multiple of 4)
        """
        check_size_fits(
            spatial_size,
            lambda size: (
                None
                if min(size) // self.scale >= 2
                else f"ESRT at scale {self.scale} ({' x '.join(str(s // self.scale) for s in size)} "
                "low-resolution input; its high-frequency filter average-pools 2 x 2)"
            ),
            math.lcm(self.scale, multiple),
            key=key,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shallow = self.head(x)
        features, outputs = shallow, []  # the LCB
        for hpb in self.hpbs:
            features = hpb(features)
            outputs.append(features)
        lcb = self.reduce(torch.cat(outputs, dim=1))
        ltb = self.after_transformer(self.transformers(lcb))
        body = self.body_out(self.w_skip(shallow) + self.w_ltb(ltb))
        return self.tail(body) + self.shallow_up(shallow)
