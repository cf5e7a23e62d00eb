"""``MaskToImageBatch``: the evaluators' batch preparation for mask-to-image synthesis."""

from __future__ import annotations

from typing import Any

import torch
from monai.engines import PrepareBatch


class MaskToImageBatch(PrepareBatch):
    """Inputs are the label map, targets the real image, and ``noise_seed`` goes to the inferer.

    MONAI's evaluators store inputs under ``"image"`` and targets under ``"label"`` in
    ``engine.state.output``; with this preparation that is the label map and the real image, and
    ``"pred"`` the synthetic image (so metrics take ``from_engine(["pred", "label"])``).  Batches
    without a real image (inference) give ``None`` as target.

    Returns:
        ``(label (B, 1, X, Y, Z), image or None, (), {"noise_seed": (B,)} or {})``.
    """

    def __init__(
        self, label_key: str = "label", image_key: str = "image", seed_key: str = "noise_seed"
    ) -> None:
        self.label_key, self.image_key, self.seed_key = label_key, image_key, seed_key

    def __call__(
        self,
        batchdata: dict[str, Any],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None, tuple, dict]:
        label = batchdata[self.label_key].to(device=device, non_blocking=non_blocking, **kwargs)
        image = batchdata.get(self.image_key)
        if image is not None:
            image = image.to(device=device, non_blocking=non_blocking, **kwargs)
        extra = (
            {"noise_seed": torch.as_tensor(batchdata[self.seed_key])} if self.seed_key in batchdata else {}
        )
        return label, image, (), extra
