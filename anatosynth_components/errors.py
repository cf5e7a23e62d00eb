"""Exceptions raised for bad input; every message names the file or key at fault and what is wrong."""

from __future__ import annotations

import re
import sys
from types import TracebackType
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


# the last line of an AnatoSynth error in a traceback that crossed a process boundary as text (torch's
# DataLoader workers re-raise ``RuntimeError("Caught ... Original Traceback ...")``)
_TRACEBACK_LINE = re.compile(r"^anatosynth_components\.errors\.(\w+): (.+)$", re.MULTILINE)


def _error_names() -> set[str]:
    """Names of ``AnatoSynthError`` and every subclass defined so far."""
    names, todo = set(), [AnatoSynthError]
    while todo:
        kind = todo.pop()
        names.add(kind.__name__)
        todo.extend(kind.__subclasses__())
    return names


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes / contexts, outermost first."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not e for e in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def cause_line(exc: BaseException) -> str | None:
    """``"<Kind>: <message>"`` of the AnatoSynth error behind ``exc`` (None when there is none).

    MONAI wraps it in ``RuntimeError("applying transform ...")`` and then in ``RuntimeError("Failed
    to evaluate ConfigExpression ...")``; this looks through the cause / context chain, and through the
    chain's messages for one that crossed a process boundary as traceback text (a DataLoader worker).

    >>> try:
    ...     try:
    ...         raise DataError("labelsTr/a.nii.gz: label ids [99] are not in the configured set 1..13")
    ...     except DataError as err:
    ...         raise RuntimeError("Failed to evaluate ConfigExpression") from err
    ... except RuntimeError as top:
    ...     print(cause_line(top))
    DataError: labelsTr/a.nii.gz: label ids [99] are not in the configured set 1..13
    >>> cause_line(RuntimeError("Caught RuntimeError in DataLoader worker process 0.\\n"
    ...     "anatosynth_components.errors.ConfigError: seed must be an integer, got 'x'\\n"))
    "ConfigError: seed must be an integer, got 'x'"
    >>> cause_line(KeyError("image")) is None
    True
    """
    found = find_cause(exc, AnatoSynthError)
    if found is not None:
        return f"{type(found).__name__}: {found}"
    names = _error_names()
    for error in _chain(exc):
        lines = [m for m in _TRACEBACK_LINE.finditer(str(error)) if m.group(1) in names]
        if lines:
            return f"{lines[-1].group(1)}: {lines[-1].group(2).strip()}"
    return None


def print_cause_last(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None, hook=sys.__excepthook__
) -> None:
    """Print the traceback with ``hook``, then, when an AnatoSynth error lies inside a wrapper, a
    blank line and ``Caused by <Kind>: <message>`` last: the file or key and the problem end the output.

    An AnatoSynth error at the top (whose own line already ends the traceback) and every other error
    print exactly as ``hook`` prints them; nothing is ever swallowed.
    """
    sys.stdout.flush()  # so buffered output (a pipe) cannot land after the cause
    hook(exc_type, exc, tb)
    try:
        top_is_ours = isinstance(exc, AnatoSynthError) and "Traceback (most recent call last)" not in str(exc)
        line = None if top_is_ours else cause_line(exc)
    except Exception:  # a broken message must not hide the traceback printed above
        return
    if line:
        print(f"\nCaused by {line}", file=sys.stderr, flush=True)


def install_excepthook() -> None:
    """Make :func:`print_cause_last` (over the current ``sys.excepthook``) report uncaught errors.

    Installed when the bundle configs import ``anatosynth_components.bundle``, so that a bundle run
    failing on a ``DataError`` / ``ConfigError`` ends with the file or key and the problem instead of
    MONAI's ``RuntimeError: Failed to evaluate ConfigExpression ...``.  Idempotent.

    >>> install_excepthook(); install_excepthook()
    >>> sys.excepthook.__name__
    'anatosynth_excepthook'
    """
    previous = sys.excepthook
    if getattr(previous, "__name__", "") == "anatosynth_excepthook":
        return

    def anatosynth_excepthook(exc_type, exc, tb):
        print_cause_last(exc_type, exc, tb, hook=previous)

    sys.excepthook = anatosynth_excepthook
