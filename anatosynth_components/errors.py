"""Exceptions raised for bad input; every message names the file or key at fault and what is wrong."""

from __future__ import annotations

from typing import TypeVar

E = TypeVar("E", bound=BaseException)


class AnatoSynthError(Exception):
    """Base class of the errors AnatoSynth raises on purpose."""


class DataError(AnatoSynthError, ValueError):
    """A dataset, file or array is missing, unreadable or inconsistent.

    The message names the file (or dataset key) and the problem, for example
    ``labelsTr/OASIS_0003_0000.nii.gz: label ids [40, 41] are not in the configured set 0..35``.
    """


class ConfigError(AnatoSynthError, ValueError):
    """A configuration value is invalid; the message names the key."""


def find_cause(exc: BaseException, kind: type[E]) -> E | None:
    """The first exception of type ``kind`` in the cause / context chain of ``exc``.

    MONAI wraps an error raised inside a transform in ``RuntimeError("applying transform ...")``;
    this finds the original error so that it can be reported on its own.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
