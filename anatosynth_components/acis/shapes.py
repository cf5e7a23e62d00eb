"""Shape checks shared by the ACIS networks: ``spatial_dims``, ``spatial_size`` and their divisibility."""

from __future__ import annotations

from collections.abc import Sequence

from anatosynth_components.errors import ConfigError


def check_spatial_dims(spatial_dims: int) -> int:
    """``spatial_dims`` as an int; 2 or 3, else a ``ConfigError`` naming the key."""
    if isinstance(spatial_dims, bool) or int(spatial_dims) not in (2, 3):
        raise ConfigError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
    return int(spatial_dims)


def check_spatial_size(spatial_size: Sequence[int], spatial_dims: int, multiple: int = 1) -> tuple[int, ...]:
    """``spatial_size`` as a tuple of ``spatial_dims`` positive sizes, each divisible by ``multiple``.

    >>> check_spatial_size([32, 32, 16], 3, multiple=8)
    (32, 32, 16)
    """
    try:
        size = tuple(int(s) for s in spatial_size)
    except (TypeError, ValueError):
        raise ConfigError(
            f"spatial_size must be a list of {spatial_dims} sizes, got {spatial_size!r}"
        ) from None
    if len(size) != spatial_dims or min(size) < 1:
        raise ConfigError(f"spatial_size must be {spatial_dims} positive sizes, got {list(size)}")
    bad = [s for s in size if s % multiple]
    if bad:
        raise ConfigError(
            f"spatial_size {list(size)}: every size must be divisible by {multiple} (2 ** the number of "
            f"resolution levels of the networks); {bad} are not"
        )
    return size


def check_channels(channels: Sequence[int], key: str, minimum: int = 2) -> tuple[int, ...]:
    """A sequence of at least ``minimum`` positive channel counts."""
    try:
        values = tuple(int(c) for c in channels)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a list of channel counts, got {channels!r}") from None
    if len(values) < minimum or min(values) < 1:
        raise ConfigError(f"{key} must hold at least {minimum} positive channel counts, got {list(values)}")
    return values
