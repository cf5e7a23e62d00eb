"""``AnatoMaskNet``: the bundles' ``network_def``, one tensor in (label ids) and one tensor out (image).

MONAI's bundle tools (``verify_net_in_out``, ``ckpt_export``) and MONAI Label's bundle app call the
network with a single tensor.  The generator needs a one-hot mask, the slices' z indices and a
noise seed; this wrapper builds the one-hot mask from label ids and takes the other two as
optional keyword arguments, which the whole-volume inferer (``SliceStackInferer``) and the
trainer pass.  Without them a stack is its own volume (z = 0 .. n-1) with noise seed 0, so the
output is deterministic.

``torch.jit.script(net)`` works as MONAI's ``ckpt_export`` runs it (no tracing): it compiles a copy
with spectral norm folded into plain weights (:meth:`AnatoMaskNet.__prepare_scriptable__`), and the
scripted network keeps the optional ``z_index`` and ``noise_seed`` arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.networks.utils import one_hot
from torch import nn

from anatosynth_components.anatomask.generator import AnatoMaskGenerator
from anatosynth_components.anatomask.spectral import prepare_scriptable
from anatosynth_components.checks import check_label_ids


def one_hot_stack(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Label ids (B, 1, n, H, W) (integers, any dtype; rounded) -> one-hot float (B, K, n, H, W).

    MONAI's ``one_hot``; an id outside ``0 .. K - 1`` is a ``DataError`` (a ``ValueError``) naming it
    (:func:`~anatosynth_components.checks.check_label_ids`, skipped while exporting and in TorchScript:
    ONNX and TorchScript graphs cannot hold a data-dependent check).

    >>> one_hot_stack(torch.tensor([0.0, 2.0]).reshape(1, 1, 1, 1, 2), 3)[0, :, 0, 0].tolist()
    [[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]
    """
    if labels.ndim != 5 or labels.shape[1] != 1:
        raise ValueError(f"expected label ids (B, 1, n, H, W), got {labels.shape}")
    ids = labels.round().long()
    if not torch.jit.is_scripting():
        check_label_ids(ids, num_classes, "label stack")
    return one_hot(ids, num_classes, dtype=torch.float32, dim=1)


class AnatoMaskNet(nn.Module):
    """Label-id stacks -> synthetic image stacks, around :class:`AnatoMaskGenerator`.

    Args:
        num_classes: K, classes of the label map including background 0.
        num_slices: n, slices per stack.
        spatial_size: (H, W) of every slice.
        generator_kwargs: any further :class:`AnatoMaskGenerator` argument (``base_channels``,
            ``use_gnn_sif``, ``use_noise3d``, ...).

    Shapes:
        ``forward(labels (B, 1, n, H, W), z_index (B, n) = None, noise_seed (B,) = None)``
        -> images (B, 1, n, H, W) in [0, 1].  ``labels`` may also be the one-hot mask
        (B, K, n, H, W) (the trainer passes that, as it needs the one-hot mask for the losses).

    Example::

        net = AnatoMaskNet(num_classes=36, num_slices=5, spatial_size=(224, 224))
        image = net(label_ids)                              # one stack, seed 0
        image = net(label_ids, z_index=z, noise_seed=seed)  # a stack cut out of a volume
    """

    def __init__(
        self, num_classes: int, num_slices: int, spatial_size: Sequence[int], **generator_kwargs: Any
    ) -> None:
        super().__init__()
        self.num_classes, self.num_slices = int(num_classes), int(num_slices)
        self.generator = AnatoMaskGenerator(num_classes, num_slices, spatial_size, **generator_kwargs)

    def __prepare_scriptable__(self) -> nn.Module:
        """``torch.jit.script(net)`` (MONAI's ``ckpt_export``) compiles a copy whose spectral norm is
        folded into plain weights, the eval function (:mod:`~anatosynth_components.anatomask.spectral`);
        ``net`` keeps its spectral norm."""
        return prepare_scriptable(self)

    def forward(
        self,
        labels: torch.Tensor,
        z_index: torch.Tensor | None = None,
        noise_seed: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if labels.shape[1] == self.num_classes:
            masks = labels.float()
        else:
            masks = one_hot_stack(labels, self.num_classes)
        b, n = masks.shape[0], masks.shape[2]
        if z_index is None:
            z_index = torch.arange(n, device=labels.device).expand(b, n)
        if noise_seed is None:
            noise_seed = torch.zeros(b, dtype=torch.long, device=labels.device)
        return self.generator(masks, z_index, noise_seed.reshape(b))
