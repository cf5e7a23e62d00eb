"""One-hot annotations for the ACIS generators: from label ids, and straight-through from logits.

The image generator and the image discriminator take the annotation as ``num_classes`` channels.
Real annotations are one-hot; a generated annotation is made one-hot too (the argmax of the annotation
generator's logits), so the image generator sees the same kind of input in training and at sampling
time and the sampled image matches the saved annotation.  In phase 2 the adversarial loss must still
reach the annotation generator, so its one-hot is a straight-through estimate (Bengio et al. 2013):
the forward value is the hard one-hot, the gradient that of the softmax.

Example::

    >>> logits = torch.tensor([[[2.0, -1.0], [0.0, 3.0]]], requires_grad=True)  # (B=1, C=2, 2 voxels)
    >>> hard = straight_through_one_hot(logits)
    >>> hard.tolist()
    [[[1.0, 0.0], [0.0, 1.0]]]
    >>> (hard * torch.tensor([[[1.0], [0.0]]])).sum().backward()   # the softmax's gradient reaches the logits
    >>> bool(logits.grad.abs().sum() > 0)
    True
"""

from __future__ import annotations

import torch
from monai.networks.utils import one_hot

from anatosynth_components.checks import check_label_ids


def label_one_hot(labels: torch.Tensor, num_classes: int, what: str = "annotation") -> torch.Tensor:
    """Label ids (B, 1, *S) (any dtype holding integers) -> float one-hot (B, num_classes, *S).

    MONAI's ``one_hot`` after :func:`~anatosynth_components.checks.check_label_ids`: ids outside
    ``0..num_classes-1`` raise a ``DataError`` (a ``ValueError``) naming them, where ``scatter`` would
    fail cryptically; ``what`` names the labels in that error.

    >>> label_one_hot(torch.tensor([[[0, 2]]]), 3).tolist()
    [[[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]]
    """
    check_label_ids(labels, num_classes, what)
    return one_hot(labels, num_classes, dtype=torch.float32, dim=1)


def hard_one_hot(logits: torch.Tensor) -> torch.Tensor:
    """The one-hot of the argmax over channels, (B, C, *S) -> (B, C, *S), no gradient."""
    return one_hot(logits.argmax(dim=1, keepdim=True), logits.shape[1], dtype=logits.dtype, dim=1)


def straight_through_one_hot(logits: torch.Tensor) -> torch.Tensor:
    """Forward: ``hard_one_hot(logits)``; backward: the gradient of ``softmax(logits, dim=1)``."""
    soft = torch.softmax(logits, dim=1)
    return hard_one_hot(logits.detach()) - soft.detach() + soft
