"""GNN-based strongly interdependent slice feature fusion (GNN-SIF), AnatoMaskGAN Sec. III-A,
Eq. 1 and Algorithm 1.

MONAI has no graph layer over slices or dilated multi-scale aggregation block of this form, so the
module is written here.  Steps, per stack of n slices:

1. ``F = X + Y``: encoder features plus decoder features (Algorithm 1, line 2).
2. Multi-scale aggregation with dilated 3x3 convolutions (lines 3-6):
   ``F1 = Cat(F, DConv_r2(F) -> C/2)``, ``F2 = Cat(F1, DConv_r4(F1) -> C/4)``,
   ``F3 = Cat(F2, DConv_r8(F2) -> C/8)``, ``F_mfa = Conv1x1(F3) -> C``.
3. Graph fusion (lines 8-10): nodes are the slices plus a global node (the mean of the slices);
   features travel between slices with the normalised adjacency, ``Theta(A~ F_mfa)``, a
   graph convolution applied at every pixel.
4. Eq. 1: ``x' = x * sigmoid(W delta(U vec(A~) + b) + c)`` with ``U: N^2 -> N1``,
   ``W: N1 -> C H W`` and ``c`` in R^{CHW}; the attention depends on the graph (slice gaps and, with
   semantic edges, the masks) and is shared by the slices of a stack, exactly as Eq. 1 is written.
5. Activation and a final convolution to 2C channels (lines 12-13; the kernel size is not given,
   we use 1x1: the dilated convolutions of step 2 already mix space, and a 3x3 conv from C to 2C
   would cost more than the rest of the module).  The paper does not say how the 2C output enters
   the decoder; we read it as a per-pixel scale and shift of the decoder features,
   ``Y' = Y * (1 + gamma) + beta`` with ``(gamma, beta) = split(F_final)``, the SPADE use of a
   doubled channel count.
"""

from __future__ import annotations

import torch
from torch import nn

from anatosynth_components.anatomask.slice_graph import slice_adjacency


def area_downsample(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Area-average (B, K, n, H, W) -> (B, K, n, *size), slice by slice.

    Equal to ``interpolate(mode="area")``; when ``size`` divides (H, W) it is written as an average
    pool, which ONNX can export (the adaptive pool that ``interpolate`` becomes has no ONNX function).
    """
    h, w, sh, sw = masks.shape[-2], masks.shape[-1], size[0], size[1]
    if h % sh == 0 and w % sw == 0:
        return nn.functional.avg_pool3d(masks, (1, h // sh, w // sw))
    return nn.functional.interpolate(masks, size=[masks.shape[2], sh, sw], mode="area")


class GNNSIF(nn.Module):
    """GNN-SIF at one decoder resolution.

    Args:
        channels: feature channels C (divisible by 8).
        num_slices: slices per stack n (the graph has n + 1 nodes; Eq. 1's U depends on it).
        size: (h, w) feature size at this resolution (Eq. 1's W and c are per pixel).
        hidden: N1 of Eq. 1.
        tau, max_distance, global_weight: edge weights of the slice graph.
        semantic_edges: multiply edge weights by the slices' mask similarity.

    Shapes:
        ``forward(x, y, masks, z_index)`` with encoder features ``x`` and decoder features ``y`` of
        shape (B * n, C, h, w) (slices folded into the batch), masks (B, K, n, H, W), z_index (B, n);
        returns the modulated decoder features, (B * n, C, h, w).
    """

    def __init__(
        self,
        channels: int,
        num_slices: int,
        size: tuple[int, int],
        hidden: int = 32,
        tau: float = 1.0,
        max_distance: int = 2,
        global_weight: float = 1.0,
        semantic_edges: bool = True,
    ) -> None:
        super().__init__()
        if channels % 8:
            raise ValueError(f"GNN-SIF needs channels divisible by 8, got {channels}")
        c = channels
        self.channels, self.num_slices, self.size = c, num_slices, (int(size[0]), int(size[1]))
        self.tau, self.max_distance, self.global_weight = float(tau), int(max_distance), float(global_weight)
        self.semantic_edges = semantic_edges
        self.dconv2 = nn.Conv2d(c, c // 2, 3, padding=2, dilation=2)
        self.dconv4 = nn.Conv2d(c + c // 2, c // 4, 3, padding=4, dilation=4)
        self.dconv8 = nn.Conv2d(c + c // 2 + c // 4, c // 8, 3, padding=8, dilation=8)
        self.mfa = nn.Conv2d(c + c // 2 + c // 4 + c // 8, c, 1)
        self.theta = nn.Conv2d(c, c, 1)
        nodes = num_slices + 1
        self.u = nn.Linear(nodes * nodes, hidden)
        self.w = nn.Linear(hidden, c * size[0] * size[1])
        self.act = nn.LeakyReLU(0.2)
        self.final = nn.Conv2d(c, 2 * c, 1)

    def aggregate(self, f: torch.Tensor) -> torch.Tensor:
        """Multi-scale dilated aggregation (Algorithm 1, lines 3-6)."""
        f1 = torch.cat([f, self.act(self.dconv2(f))], 1)
        f2 = torch.cat([f1, self.act(self.dconv4(f1))], 1)
        f3 = torch.cat([f2, self.act(self.dconv8(f2))], 1)
        return self.mfa(f3)

    def adjacency(self, masks: torch.Tensor, z_index: torch.Tensor) -> torch.Tensor:
        small: torch.Tensor | None = None
        if self.semantic_edges:
            small = area_downsample(masks.float(), self.size)
        return slice_adjacency(z_index, small, self.tau, self.max_distance, self.global_weight)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, masks: torch.Tensor, z_index: torch.Tensor
    ) -> torch.Tensor:
        b, n = z_index.shape[0], z_index.shape[1]
        sh, sw = self.size
        c = self.channels
        if n != self.num_slices:
            raise ValueError(f"GNN-SIF was built for stacks of {self.num_slices} slices, got {n}")
        if y.shape[-2] != sh or y.shape[-1] != sw:
            raise ValueError(f"GNN-SIF was built for {self.size} features, got {y.shape[-2:]}")
        f = self.aggregate(x + y).view(b, n, c, sh, sw)
        nodes = torch.cat([f, f.mean(1, keepdim=True)], 1)  # global node = mean of the slices
        adj = self.adjacency(masks, z_index)  # (B, n + 1, n + 1)
        fused = torch.einsum("bij,bjchw->bichw", adj, nodes)[:, :n].flatten(0, 1)
        fused = self.theta(fused)
        attention = torch.sigmoid(self.w(self.act(self.u(adj.flatten(1)))))  # Eq. 1, (B, C h w)
        attention = attention.view(b, 1, c, sh, sw).expand(b, n, -1, -1, -1).flatten(0, 1)
        gamma, beta = self.final(self.act(fused * attention)).chunk(2, dim=1)
        return y * (1 + gamma) + beta
