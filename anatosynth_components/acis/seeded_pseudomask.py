"""``SeededPseudoMaskd``: the ACIS pseudo-mask with a fixed seed, for validation and evaluation.

Training draws a new pseudo-mask every epoch (``RandPseudoMaskd``); a validation metric must compare
like with like, so validation and test items get the same pseudo-mask at every epoch and run.  This
transform holds a ``RandPseudoMaskd`` and re-seeds it with ``seed`` before every call.  It is not
``Randomizable``, so a ``CacheDataset`` caches its result.

Example::

    >>> import torch
    >>> t = SeededPseudoMaskd("image", num_points=30, seed=3)
    >>> img = torch.rand(1, 24, 24)
    >>> torch.equal(t({"image": img})["pseudo_mask"], t({"image": img})["pseudo_mask"])
    True
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform

from anatosynth_components.acis.pseudomask.transforms import RandPseudoMaskd


class SeededPseudoMaskd(MapTransform):
    """``RandPseudoMaskd(keys, num_points, **kwargs)`` re-seeded with ``seed`` at every call."""

    def __init__(self, keys: KeysCollection, num_points: int, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(keys, kwargs.get("allow_missing_keys", False))
        self.transform = RandPseudoMaskd(keys, num_points, **kwargs)
        self.seed = int(seed)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        self.transform.set_random_state(seed=self.seed)
        return self.transform(data)
