"""``RegistrationLoss``: the unsupervised VoxelMorph objective, with an optional label Dice term.

``L = similarity(moving o phi, fixed) + lambda_reg * smoothness(v) [+ lambda_dice * Dice(y_m o phi, y_f)]``

- similarity: MONAI ``LocalNormalizedCrossCorrelationLoss`` (``"lncc"``, VoxelMorph's NCC; the loss is
  -LNCC, in [-1, 0]) or mean squared error (``"mse"``);
- smoothness: MONAI ``DiffusionLoss`` (squared first derivatives, VoxelMorph's "grad l2") or
  ``BendingEnergyLoss`` (second derivatives) of the *velocity* field v, the quantity the network
  predicts, as diffeomorphic VoxelMorph regularises its pre-integration flow;
- Dice (VoxelMorph's auxiliary segmentation loss, on when ``lambda_dice > 0``): MONAI ``DiceLoss``
  between the bilinearly warped one-hot moving label and the fixed one-hot label, background left out.

The paper trains its registration network with the authors' public VoxelMorph-style code and gives no
weights; the defaults are VoxelMorph's (NCC with lambda 1).

Example::

    >>> loss = RegistrationLoss(spatial_dims=2, kernel_size=5)
    >>> terms = loss(torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16), torch.zeros(2, 2, 16, 16))
    >>> sorted(terms), bool(terms["regularization"] == 0)
    (['loss', 'regularization', 'similarity'], True)
"""

from __future__ import annotations

import torch
from monai.losses import BendingEnergyLoss, DiceLoss, DiffusionLoss, LocalNormalizedCrossCorrelationLoss
from torch import nn

from anatosynth_components.checks import check_positive_float, check_spatial_dims
from anatosynth_components.errors import ConfigError

SIMILARITIES = ("lncc", "mse")
REGULARIZERS = ("diffusion", "bending")


class RegistrationLoss(nn.Module):
    """Similarity + smoothness (+ label Dice); ``forward`` returns every term and their weighted sum.

    Args:
        spatial_dims: 2 or 3.
        similarity: ``"lncc"`` or ``"mse"``.
        regularization: ``"diffusion"`` or ``"bending"``.
        lambda_reg: weight of the smoothness term (VoxelMorph: 1 with NCC, 0.01 with MSE).
        lambda_dice: weight of the label Dice term; 0 turns it off.
        kernel_size: LNCC window (VoxelMorph: 9).
    """

    def __init__(
        self,
        spatial_dims: int,
        similarity: str = "lncc",
        regularization: str = "diffusion",
        lambda_reg: float = 1.0,
        lambda_dice: float = 0.0,
        kernel_size: int = 9,
    ) -> None:
        super().__init__()
        spatial_dims = check_spatial_dims(spatial_dims)
        if similarity not in SIMILARITIES:
            raise ConfigError(f"similarity must be one of {list(SIMILARITIES)}, got {similarity!r}")
        if regularization not in REGULARIZERS:
            raise ConfigError(f"regularization must be one of {list(REGULARIZERS)}, got {regularization!r}")
        if int(kernel_size) < 1 or int(kernel_size) % 2 == 0:
            raise ConfigError(f"kernel_size must be a positive odd number, got {kernel_size}")
        self.similarity = (
            LocalNormalizedCrossCorrelationLoss(spatial_dims, kernel_size=int(kernel_size))
            if similarity == "lncc"
            else nn.MSELoss()
        )
        self.regularization = DiffusionLoss() if regularization == "diffusion" else BendingEnergyLoss()
        self.dice = DiceLoss(include_background=False)
        self.lambda_reg = check_positive_float("lambda_reg", lambda_reg, allow_zero=True)
        self.lambda_dice = check_positive_float("lambda_dice", lambda_dice, allow_zero=True)

    @property
    def uses_labels(self) -> bool:
        """Whether the Dice term is on (the trainer then warps the one-hot labels)."""
        return self.lambda_dice > 0

    def forward(
        self,
        warped: torch.Tensor,
        fixed: torch.Tensor,
        velocity: torch.Tensor,
        warped_label: torch.Tensor | None = None,
        fixed_label: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """warped, fixed (B, 1, *S); velocity (B, D, *S); labels one-hot (B, C, *S) when the Dice term is on.

        Returns ``{"similarity", "regularization", ["dice"], "loss"}`` as scalar tensors.
        """
        terms = {
            "similarity": self.similarity(warped, fixed),
            "regularization": self.regularization(velocity),
        }
        total = terms["similarity"] + self.lambda_reg * terms["regularization"]
        if self.uses_labels:
            if warped_label is None or fixed_label is None:
                raise ValueError("lambda_dice > 0 needs the warped moving and the fixed one-hot labels")
            terms["dice"] = self.dice(warped_label, fixed_label)
            total = total + self.lambda_dice * terms["dice"]
        terms["loss"] = total
        return terms
