"""Intensity normalisation to [0, 1]: percentiles for MRI, a Hounsfield window for CT.

Both are thin presets of MONAI transforms, so they keep MONAI's invertibility and metadata.
"""

from __future__ import annotations

from collections.abc import Sequence

from monai.config import KeysCollection
from monai.transforms import ScaleIntensityRanged, ScaleIntensityRangePercentilesd

from anatosynth_components.errors import ConfigError

#: Named HU windows.  ``chest`` is the ACIS paper's [-1000, 600]; ``abdomen`` is the
#: soft-tissue window [-175, 250] used for the BTCV / AbdomenCTCT organs in MONAI's tutorials
#: (fat, organs and vessels resolved; bone and gas clipped).
HU_WINDOWS: dict[str, tuple[float, float]] = {"chest": (-1000.0, 600.0), "abdomen": (-175.0, 250.0)}


def hu_window(window: str | Sequence[float]) -> tuple[float, float]:
    """Resolve a window name or a ``[low, high]`` pair."""
    if isinstance(window, str):
        if window not in HU_WINDOWS:
            raise ConfigError(f"unknown HU window {window!r}; use one of {sorted(HU_WINDOWS)} or [low, high]")
        return HU_WINDOWS[window]
    low, high = (float(v) for v in window)
    if not low < high:
        raise ConfigError(f"HU window [{low}, {high}] must have low < high")
    return low, high


class HUWindowd(ScaleIntensityRanged):
    """Clip CT to a Hounsfield window and scale it linearly to [0, 1].

    Example::

        HUWindowd("image", window="chest")   # -1000 HU -> 0, 600 HU -> 1, clipped outside
    """

    def __init__(
        self, keys: KeysCollection, window: str | Sequence[float] = "chest", allow_missing_keys: bool = False
    ) -> None:
        low, high = hu_window(window)
        super().__init__(
            keys,
            a_min=low,
            a_max=high,
            b_min=0.0,
            b_max=1.0,
            clip=True,
            allow_missing_keys=allow_missing_keys,
        )


class PercentileScaled(ScaleIntensityRangePercentilesd):
    """Scale MRI intensities so the ``lower`` / ``upper`` percentiles map to 0 / 1, clipped.

    Example::

        PercentileScaled("image", lower=0.5, upper=99.5)
    """

    def __init__(
        self, keys: KeysCollection, lower: float = 0.5, upper: float = 99.5, allow_missing_keys: bool = False
    ) -> None:
        if not 0.0 <= lower < upper <= 100.0:
            raise ConfigError(f"percentiles must satisfy 0 <= lower < upper <= 100, got {lower}, {upper}")
        super().__init__(
            keys,
            lower=lower,
            upper=upper,
            b_min=0.0,
            b_max=1.0,
            clip=True,
            allow_missing_keys=allow_missing_keys,
        )
