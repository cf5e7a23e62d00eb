"""The slice graph of GNN-SIF (AnatoMaskGAN Sec. III-A, Algorithm 1 line 8: BuildAdjacencyMatrix).

Nodes: the n slices of a stack plus one global node.  Slice-slice edges fall with the distance of
the slices in the volume, ``exp(-dz^2 / (2 tau^2))`` for ``|dz| <= max_distance`` and 0 beyond
(adjacent slices strong, distant weak or none), optionally multiplied by the semantic similarity
of the two slices' masks (soft Dice of their one-hot maps).  The global node is joined to every
slice with weight ``global_weight``.  The diagonal is then set to 1, a self loop of weight 1 for every
node (a slice's own edge would otherwise be ``exp(0)`` times its self-similarity, below 1 for soft
masks, and the global node's 0), giving ``A'``; the matrix is normalised symmetrically,
``A~ = D'^-1/2 A' D'^-1/2`` (Kipf & Welling's renormalisation, which equals ``A + I`` for an ``A``
without self edges), the ``A~`` of Eq. 1.
"""

from __future__ import annotations

import torch


def mask_similarity(masks: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Soft Dice between every pair of slices' one-hot masks, background channel excluded.

    Args:
        masks: (B, C, n, H, W) one-hot (or soft) masks; channel 0 is background.

    Returns:
        (B, n, n) similarities in [0, 1], 1 on the diagonal for non-empty slices.
    """
    fg = masks[:, 1:].transpose(1, 2).flatten(2)  # (B, n, (C-1) H W)
    inter = fg @ fg.transpose(1, 2)
    size = fg.sum(-1)
    return (2 * inter + eps) / (size[:, :, None] + size[:, None, :] + eps)


def slice_adjacency(
    z_index: torch.Tensor,
    masks: torch.Tensor | None = None,
    tau: float = 1.0,
    max_distance: int = 2,
    global_weight: float = 1.0,
) -> torch.Tensor:
    """Normalised adjacency ``A~`` of the slice graph with a global node (last node).

    Args:
        z_index: (B, n) slice indices in the volume.
        masks: (B, C, n, H, W) masks for the semantic factor, or None for distance only.
        tau: distance scale of the edge weights, in slices.
        max_distance: slices further apart than this are not joined.
        global_weight: weight of the edges between the global node and every slice.

    Returns:
        (B, n + 1, n + 1) symmetric matrix.

    >>> a = slice_adjacency(torch.arange(4)[None], max_distance=1)
    >>> bool(a[0, 0, 1] > a[0, 0, 2]) and float(a[0, 0, 2]) == 0.0
    True
    """
    b, n = z_index.shape[0], z_index.shape[1]
    dz = (z_index[:, :, None] - z_index[:, None, :]).abs().float()
    weights = torch.exp(-(dz**2) / (2 * tau**2)) * (dz <= max_distance)
    if masks is not None:
        weights = weights * mask_similarity(masks.float())
    adj = torch.zeros(b, n + 1, n + 1, dtype=weights.dtype, device=weights.device)
    adj[:, :n, :n] = weights
    adj[:, :n, n] = global_weight
    adj[:, n, :n] = global_weight
    adj = adj + torch.eye(n + 1, device=adj.device) * (1 - torch.diagonal(adj, dim1=1, dim2=2)).unsqueeze(-1)
    inv_sqrt = adj.sum(-1).clamp_min(1e-12).rsqrt()
    return inv_sqrt[:, :, None] * adj * inv_sqrt[:, None, :]
