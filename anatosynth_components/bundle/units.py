"""Intensity units of what the inference configs write: Hounsfield units for CT, [0, 1] on request.

The networks make images in [0, 1]: training maps CT through a Hounsfield window to [0, 1]
(``ScaleIntensityRanged`` in ``train.json``: ``intensity`` of anatomask_abdomen, ``hu_window`` of
the ACIS bundles).  CT tools downstream (TotalSegmentator, for example) expect HU, so the inference
configs undo the window in their ``postprocessing``, which both the bundle run and MONAI Label's
bundle app run: :func:`window_range` gives the ``output_range`` from the training window's own keys,
and :class:`OutputRanged` maps the prediction's [0, 1] onto it.  ``output_range: null`` keeps [0, 1].

Example (``inference.json`` of anatomask_abdomen)::

    "intensity": {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": -175.0, "a_max": 250.0,
                  "b_min": 0.0, "b_max": 1.0, "clip": true},
    "output_range": "$anatosynth_components.bundle.window_range(@intensity)",
    "postprocessing": {"_target_": "Compose", "transforms": [
        {"_target_": "anatosynth_components.bundle.OutputRanged", "keys": "pred",
         "output_range": "@output_range"}]}
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from anatosynth_components.checks import check_interval
from anatosynth_components.errors import ConfigError

WINDOW_KEYS = ("a_min", "a_max", "b_min", "b_max")


def _window_values(intensity: Any, key: str) -> dict[str, float]:
    """``a_min, a_max, b_min, b_max`` of a ScaleIntensityRange(d) object or of its config mapping."""
    if isinstance(intensity, Mapping):
        values = {k: intensity.get(k) for k in WINDOW_KEYS}
    else:
        scaler = getattr(intensity, "scaler", intensity)  # ScaleIntensityRanged holds a ScaleIntensityRange
        if not all(hasattr(scaler, k) for k in WINDOW_KEYS):
            raise ConfigError(
                f"{key}: {type(intensity).__name__} has no fixed window ({', '.join(WINDOW_KEYS)}) to map "
                "[0, 1] back to scanner units (percentile scaling depends on each volume); set output_range "
                "to null"
            )
        values = {k: getattr(scaler, k) for k in WINDOW_KEYS}
    missing = [k for k, v in values.items() if v is None]
    if missing:
        raise ConfigError(f"{key}: {', '.join(f'{key}#{k}' for k in missing)} must be set to undo the window")
    for low, high in (("a_min", "a_max"), ("b_min", "b_max")):
        try:
            check_interval(key, [values[low], values[high]])
        except ConfigError:
            raise ConfigError(
                f"{key}: {low} ({values[low]!r}) must be a number below {high} ({values[high]!r})"
            ) from None
    return {k: float(v) for k, v in values.items()}


def window_range(intensity: Any, key: str = "intensity") -> list[float]:
    """``[low, high]``: where the network's 0 and 1 land when the training window is undone.

    ``intensity`` maps ``[a_min, a_max]`` (HU) linearly to ``[b_min, b_max]``; it is the config's
    ``ScaleIntensityRanged`` (instantiated: ``@intensity``) or its keys as a mapping.  ``key`` names it
    in errors.

    >>> window_range({"a_min": -175, "a_max": 250, "b_min": 0, "b_max": 1})
    [-175.0, 250.0]
    >>> window_range({"a_min": -1000, "a_max": 600, "b_min": -1, "b_max": 1})
    [-200.0, 600.0]
    >>> window_range({"a_min": 250, "a_max": -175, "b_min": 0, "b_max": 1})
    Traceback (most recent call last):
    ...
    anatosynth_components.errors.ConfigError: intensity: a_min (250) must be a number below a_max (-175)
    """
    w = _window_values(intensity, key)
    per_unit = (w["a_max"] - w["a_min"]) / (w["b_max"] - w["b_min"])
    return [w["a_min"] + (0.0 - w["b_min"]) * per_unit, w["a_min"] + (1.0 - w["b_min"]) * per_unit]


def output_range_of(value: Any, key: str = "output_range") -> tuple[float, float] | None:
    """``value`` as ``(low, high)``, or None for [0, 1] (``None``, or ``"null"`` / ``"none"`` as a
    command line may pass it); ``ConfigError`` naming ``key`` otherwise.

    >>> output_range_of([-175, 250]), output_range_of(None), output_range_of("null")
    ((-175.0, 250.0), None, None)
    >>> output_range_of([1, 0])
    Traceback (most recent call last):
    ...
    anatosynth_components.errors.ConfigError: output_range must be [low, high] with low < high, got [1, 0]
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in ("null", "none")):
        return None
    return check_interval(key, value)


class OutputRanged(MapTransform):
    """Map ``d[key]`` from [0, 1] linearly to ``output_range`` (float32; None keeps [0, 1]).

    0 becomes ``low`` and 1 ``high``; values are not clipped (the network's own range is kept).  A
    ``MetaTensor`` stays one, with its metadata.

    Args:
        keys: the prediction keys.
        output_range: ``[low, high]`` (for CT: :func:`window_range` of the training window), or None.

    Example::

        OutputRanged("pred", [-175, 250])({"pred": torch.tensor([[0.0, 0.5, 1.0]])})["pred"]
        # tensor([[-175.0, 37.5, 250.0]])
    """

    def __init__(
        self, keys: KeysCollection, output_range: Sequence[float] | None, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_range = output_range_of(output_range)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            value = torch.as_tensor(d[key]).float()
            if self.output_range is not None:
                low, high = self.output_range
                value = value * (high - low) + low
            d[key] = value
        return d
