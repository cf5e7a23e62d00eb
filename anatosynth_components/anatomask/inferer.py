"""Whole-volume synthesis from slice stacks: overlapping stacks, blended, without seams.

MONAI's ``SlidingWindowInferer`` blends overlapping windows too, but its windows cannot carry what
AnatoMaskGAN needs per stack: the slices' z indices in the volume (3D-SNI indexes its noise volume
by them, Eq. 2) and one noise seed for the whole volume.  This inferer cuts stacks of ``n``
contiguous slices along ``axis`` every ``stride`` slices (the last stack aligned to the volume's
end, see ``data.stack_starts``), calls ``network(stack, z_index=..., noise_seed=...)`` and
averages the overlapping predictions with a triangular weight that is largest at the stack's centre
and smallest at its borders, so no slice is dominated by a stack border it sits on.  With
``spatial_size`` set, volumes of any in-plane size are synthesized: each stack's labels are resized
to the network's size (nearest neighbour, as in training) and its prediction back (bilinear,
antialiased when shrinking), so the output lies on the input's grid.  Memory beyond the output
volume: one batch of stacks and a (depth,) weight vector.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.data import MetaTensor
from monai.inferers import Inferer
from monai.utils import convert_to_tensor
from tqdm import tqdm

from anatosynth_components.checks import check_positive_int, check_spatial_axis
from anatosynth_components.data.slice_stack import stack_starts
from anatosynth_components.errors import ConfigError, DataError


def blend_weights(num_slices: int) -> torch.Tensor:
    """Triangular weights ``min(i + 1, n - i)`` for the slices of a stack, (n,) float.

    Example::

        blend_weights(5)   # tensor([1., 2., 3., 2., 1.])
    """
    i = torch.arange(num_slices, dtype=torch.float32)
    return torch.minimum(i + 1, num_slices - i)


class SliceStackInferer(Inferer):
    """Synthesize whole volumes stack by stack.

    Args:
        num_slices: n, slices per stack (the network's).
        axis: spatial axis of the input volume to stack along (0, 1 or 2).
        stride: slices between stack starts (``1 <= stride <= n``; default ``ceil(n / 2)``).
        batch_size: stacks per network call.
        spatial_size: the network's (H, W); stacks of another in-plane size are resized to it and
            their predictions back (``None``: the input must already have the network's size).
        noise_seed: seed of the volume's noise when the call gives none.
        progress: show a progress bar over the stacks.

    Shapes:
        ``inferer(labels (B, 1, X, Y, Z), network, noise_seed=None)`` -> (B, 1, X, Y, Z) float32,
        a ``MetaTensor`` carrying the input's metadata when the input is one.  ``noise_seed`` may be
        an int or a (B,) tensor (one seed per volume).

    Example::

        inferer = SliceStackInferer(num_slices=5, axis=2)
        volume = inferer(label_volume, AnatoMaskNet(36, 5, (224, 224)), noise_seed=7)
    """

    def __init__(
        self,
        num_slices: int,
        axis: int = 2,
        stride: int | None = None,
        batch_size: int = 1,
        spatial_size: Sequence[int] | None = None,
        noise_seed: int = 0,
        progress: bool = False,
    ) -> None:
        super().__init__()
        self.num_slices = int(num_slices)
        self.stride = int(stride) if stride is not None else (self.num_slices + 1) // 2
        if self.num_slices < 1 or not 1 <= self.stride <= self.num_slices:
            raise ConfigError(
                f"need num_slices >= 1 and 1 <= stride <= num_slices, got {num_slices}, {stride}"
            )
        axis = check_spatial_axis(axis)
        batch_size = check_positive_int("batch_size", batch_size)
        if spatial_size is not None and (len(spatial_size) != 2 or min(int(v) for v in spatial_size) < 1):
            raise ConfigError(f"spatial_size must be two positive sizes (H, W), got {spatial_size}")
        self.axis, self.batch_size = int(axis), int(batch_size)
        self.spatial_size = None if spatial_size is None else tuple(int(v) for v in spatial_size)
        self.noise_seed, self.progress = int(noise_seed), bool(progress)

    def seeds(self, noise_seed: Any, count: int) -> torch.Tensor:
        """(count,) int64 seeds from an int, a sequence or a tensor (defaults to ``self.noise_seed``)."""
        seed = self.noise_seed if noise_seed is None else noise_seed
        seeds = torch.as_tensor(seed, dtype=torch.long).flatten().cpu()
        if seeds.numel() == 1:
            return seeds.expand(count)
        if seeds.numel() != count:
            raise ConfigError(f"noise_seed has {seeds.numel()} values for {count} volumes")
        return seeds

    def __call__(
        self,
        inputs: torch.Tensor,
        network: Callable[..., torch.Tensor],
        *args: Any,
        noise_seed: Any = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        if inputs.ndim != 5 or inputs.shape[1] != 1:
            raise DataError(f"expected label volumes (B, 1, X, Y, Z), got shape {tuple(inputs.shape)}")
        seeds = self.seeds(noise_seed, inputs.shape[0])
        plain = convert_to_tensor(inputs, track_meta=False)
        moved = torch.movedim(plain, self.axis + 2, 2)  # (B, 1, D, H, W)
        parts = [
            self.volume(moved[b : b + 1], network, seeds[b : b + 1], *args, **kwargs)
            for b in range(len(seeds))
        ]
        out = torch.movedim(parts[0] if len(parts) == 1 else torch.cat(parts), 2, self.axis + 2)
        return MetaTensor(out).copy_meta_from(inputs) if isinstance(inputs, MetaTensor) else out

    def resize(self, stacks: torch.Tensor) -> torch.Tensor:
        """Label stacks (b, 1, n, H0, W0) -> (b, 1, n, H, W), nearest neighbour."""
        if self.spatial_size is None or tuple(stacks.shape[-2:]) == self.spatial_size:
            return stacks
        return F.interpolate(stacks.float(), size=(stacks.shape[2], *self.spatial_size), mode="nearest")

    def resize_back(self, pred: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
        """Predicted stacks (b, 1, n, H, W) -> (b, 1, n, H0, W0), bilinear per slice."""
        size = tuple(int(v) for v in shape[-2:])
        if tuple(pred.shape[-2:]) == size:
            return pred
        b, c, n, h, w = pred.shape
        shrink = size[0] < h or size[1] < w
        flat = F.interpolate(pred.reshape(b * c * n, 1, h, w).float(), size=size, mode="bilinear",
                             align_corners=False, antialias=shrink)  # fmt: skip
        return flat.reshape(b, c, n, *size)

    def volume(
        self,
        labels: torch.Tensor,
        network: Callable[..., torch.Tensor],
        seed: torch.Tensor,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        """One volume (1, 1, D, H, W) -> (1, 1, D, H, W): every stack, blended."""
        depth = labels.shape[2]
        starts = stack_starts(depth, self.num_slices, self.stride)
        weights = blend_weights(self.num_slices).to(labels.device)
        out = torch.zeros(labels.shape, dtype=torch.float32, device=labels.device)
        total = torch.zeros(depth, dtype=torch.float32, device=labels.device)
        batches = [starts[i : i + self.batch_size] for i in range(0, len(starts), self.batch_size)]
        for batch in tqdm(batches, desc="stacks", disable=not self.progress, leave=False):
            stacks = torch.cat([labels[:, :, s : s + self.num_slices] for s in batch])
            z_index = torch.stack([torch.arange(s, s + self.num_slices) for s in batch]).to(labels.device)
            seeds = seed.expand(len(batch)).to(labels.device)
            pred = self.resize_back(
                network(self.resize(stacks), *args, z_index=z_index, noise_seed=seeds, **kwargs), stacks.shape
            )
            for k, s in enumerate(batch):
                out[0, :, s : s + self.num_slices] += pred[k].float() * weights.view(1, -1, 1, 1)
                total[s : s + self.num_slices] += weights
        return out.div_(total.view(1, 1, -1, 1, 1))
