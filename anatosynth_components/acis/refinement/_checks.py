"""Checks of constructor arguments shared by the refinement modules; errors name the key."""

from __future__ import annotations

from collections.abc import Sequence

from anatosynth_components.errors import ConfigError


def spatial_dims_of(spatial_dims: int) -> int:
    """``spatial_dims`` as an int; 2 or 3, else a ``ConfigError``."""
    if isinstance(spatial_dims, bool) or int(spatial_dims) not in (2, 3):
        raise ConfigError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
    return int(spatial_dims)


def channels_of(channels: Sequence[int], key: str) -> tuple[int, ...]:
    """At least two positive channel counts."""
    try:
        values = tuple(int(c) for c in channels)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a list of channel counts, got {channels!r}") from None
    if len(values) < 2 or min(values) < 1:
        raise ConfigError(f"{key} must hold at least 2 positive channel counts, got {list(values)}")
    return values


def positive(value: float, key: str) -> float:
    """``value`` as a float > 0."""
    if not float(value) > 0:
        raise ConfigError(f"{key} must be > 0, got {value!r}")
    return float(value)


def non_negative(value: float, key: str) -> float:
    """``value`` as a float >= 0."""
    if not float(value) >= 0:
        raise ConfigError(f"{key} must be >= 0, got {value!r}")
    return float(value)


def non_empty(loader: object, key: str) -> None:
    """A torch ``DataLoader`` over a sized dataset must yield at least one batch (an empty one would
    train silently on nothing, e.g. fewer training items than the batch size with ``drop_last``)."""
    dataset = getattr(loader, "dataset", None)
    if dataset is None or not hasattr(dataset, "__len__"):
        return  # not a torch DataLoader over a sized dataset: nothing to check before it runs
    if len(loader) == 0:  # type: ignore[arg-type]
        items = f"{len(dataset)} items, "
        size = getattr(loader, "batch_size", None)
        raise ConfigError(
            f"{key} yields no batch ({items}batch_size {size}, drop_last): use a smaller batch size or "
            "more training data"
        )
