"""``ResizeSlicesd``: bring every slice of a volume to ``spatial_size`` and keep the slice count."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from monai.config import KeysCollection
from monai.transforms import Compose, InvertibleTransform, MapTransform, Resized, ResizeWithPadOrCropd

from anatosynth_components.errors import ConfigError


class ResizeSlicesd(MapTransform, InvertibleTransform):
    """Resize or pad/crop the in-plane axes of 3-D volumes to ``spatial_size``.

    The slicing ``axis`` keeps its length (MONAI's ``-1`` size convention), so slice indices stay
    valid.  ``method="resize"`` interpolates (trilinear with anti-aliasing for images, nearest for
    ``label_keys``); ``method="pad"`` pads or crops symmetrically and never interpolates.
    Invertible (MONAI's ``Invertd``): whole-volume inference resizes its output back to the input grid.

    Example::

        ResizeSlicesd(["image", "label"], spatial_size=(224, 224), axis=2)
        # (1, 160, 224, 192) -> (1, 224, 224, 192)
    """

    def __init__(
        self,
        keys: KeysCollection,
        spatial_size: Sequence[int],
        axis: int = 2,
        method: str = "resize",
        label_keys: Sequence[str] = ("label",),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(spatial_size) != 2 or any(int(s) < 1 for s in spatial_size):
            raise ConfigError(f"spatial_size must be two positive sizes (H, W), got {list(spatial_size)}")
        if axis not in (0, 1, 2):
            raise ConfigError(f"axis must be 0, 1 or 2, got {axis}")
        size = [int(s) for s in spatial_size]
        size.insert(axis, -1)
        images = [k for k in self.keys if k not in label_keys]
        labels = [k for k in self.keys if k in label_keys]
        opts = {"allow_missing_keys": True}
        if method == "resize":
            parts = [Resized(images, size, mode="trilinear", anti_aliasing=True, **opts)] if images else []
            parts += [Resized(labels, size, mode="nearest", **opts)] if labels else []
        elif method == "pad":
            parts = [ResizeWithPadOrCropd(list(self.keys), size, **opts)]
        else:
            raise ConfigError(f"method must be 'resize' or 'pad', got {method!r}")
        self.transform = Compose(parts)

    def __call__(self, data: Mapping[Hashable, Any]) -> Any:
        return self.transform(dict(data))

    def inverse(self, data: Mapping[Hashable, Any]) -> Any:
        return self.transform.inverse(dict(data))
