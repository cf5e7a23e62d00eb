"""What the evaluation reports of both methods read from an engine: the per-item dicts of its batch or
output (decollated or collated), and numbers that JSON can hold.

Example::

    >>> rows = engine_items({"pred": torch.zeros(2, 1, 3)}, "output", "SynthesisReport")
    >>> len(rows), tuple(rows[0]["pred"].shape)
    (2, (1, 3))
    >>> json_number(float("nan")), json_number(1.5)
    ('nan', 1.5)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch  # noqa: F401  (doctest)
from monai.data import decollate_batch

from anatosynth_components.errors import DataError


def json_number(value: float) -> float | str:
    """``value``, or its text when it is not finite (JSON has no NaN or infinity)."""
    return value if math.isfinite(value) else str(value)


def engine_items(data: Any, what: str, owner: str) -> list[Mapping[str, Any]]:
    """The per-item dicts of a decollated (list) or collated (dict) ``engine.state.<what>``; a
    ``DataError`` naming ``owner`` (the handler) for anything else."""
    if isinstance(data, Mapping):
        data = decollate_batch(data, detach=True)
    if not isinstance(data, Sequence) or not all(isinstance(d, Mapping) for d in data):
        raise DataError(f"{owner}: engine.state.{what} must be a dict or a list of dicts, got {type(data)}")
    return list(data)
