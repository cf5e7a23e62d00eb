"""Errors that reach a MONAI Label client: ``ReportErrors`` around a bundle's ``preprocessing``.

MONAI Label's bundle app (``monaibundle``, ``BundleInferTask``) calls the transforms of a bundle's
``preprocessing`` one by one inside its ``/infer`` request handler, so an exception they raise leaves
through FastAPI, which answers anything but an ``HTTPException`` with a bare ``500 Internal Server
Error`` (the reason only in the server's log).  FastAPI answers a ``starlette`` ``HTTPException``
with its status code and ``{"detail": <message>}``.  :class:`ReportErrors` runs the transforms and
re-raises an AnatoSynth error as one that is both that error (same class name, message and ``args``;
``except DataError`` still catches it) and an ``HTTPException``: ``422`` for a ``DataError`` (the volume
sent cannot be used), ``500`` for any other AnatoSynth error (the bundle's configuration), the message
in the body either way.  The server goes on serving.  Where ``starlette`` is not installed (a plain
bundle run), errors pass through unchanged.

Example (``inference.json``; a ``Compose`` subclass would not do, since the bundle app unrolls a
``Compose`` into its transforms)::

    "preprocessing": {"_target_": "Compose", "transforms": [
        {"_target_": "anatosynth_components.bundle.ReportErrors", "transforms": [
            {"_target_": "anatosynth_components.data.LoadVolumed", "keys": "image"}, ...]}]}
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

from monai.transforms import Compose, Randomizable

from anatosynth_components.errors import AnatoSynthError, DataError, find_cause

logger = logging.getLogger(__name__)

DATA_ERROR_STATUS = 422  # Unprocessable Content: the request is well formed, its volume is not usable
OTHER_ERROR_STATUS = 500


def http_status(err: AnatoSynthError) -> int:
    """The HTTP status a server answers ``err`` with: 422 for a ``DataError``, else 500.

    >>> from anatosynth_components.errors import ConfigError
    >>> http_status(DataError("a.nii.gz: label ids [99] are not in the configured set"))
    422
    >>> http_status(ConfigError("output_range must be [low, high], got 3"))
    500
    """
    return DATA_ERROR_STATUS if isinstance(err, DataError) else OTHER_ERROR_STATUS


@functools.cache
def _served_kind(kind: type[AnatoSynthError], http: type[Exception]) -> type[AnatoSynthError]:
    """``kind`` that is also ``http``, printed and pickled as ``kind``."""
    return type(
        kind.__name__,
        (kind, http),
        {
            "__module__": kind.__module__,
            "__qualname__": kind.__qualname__,
            "__str__": BaseException.__str__,
            "__repr__": BaseException.__repr__,
        },
    )


def client_error(err: AnatoSynthError) -> AnatoSynthError:
    """``err`` as an exception that FastAPI answers with :func:`http_status` and ``str(err)``; ``err``
    itself when ``starlette`` is not installed.

    The result is an instance of ``type(err)`` with the same ``args`` and attributes, so handlers and
    tests for the AnatoSynth error still catch it.

    Example::

        served = client_error(DataError("case1.nii.gz: label ids [99] are not in the configured set 1..13"))
        served.status_code, served.detail  # (422, 'case1.nii.gz: label ids [99] are not in ...')
    """
    try:
        from starlette.exceptions import HTTPException
    except ImportError:
        return err
    if isinstance(err, HTTPException):
        return err
    served = _served_kind(type(err), HTTPException).__new__(_served_kind(type(err), HTTPException))
    served.args = err.args
    served.__dict__.update(vars(err))
    HTTPException.__init__(served, status_code=http_status(err), detail=str(err))
    return served


class ReportErrors(Randomizable):
    """Apply ``transforms`` in order; an AnatoSynth error they raise leaves as :func:`client_error`.

    In a MONAI Label server the client then gets HTTP 422 (a ``DataError``) or 500 (another AnatoSynth
    error) with the message (file or key, and the problem) as the body's ``detail``, and the server log
    a warning with the same message; other errors pass unchanged.  Random transforms inside follow the
    random state the enclosing ``Compose`` sets.

    Args:
        transforms: the transforms (callables on the data dict), as for MONAI's ``Compose``.

    Example::

        checks = [LoadVolumed("image"), ValidateVolumed(image_key=None, label_key="image")]
        pre = Compose([ReportErrors(checks)])
        pre({"image": "bad.nii.gz"})  # DataError (also an HTTPException 422 where starlette is installed)
    """

    def __init__(self, transforms: Sequence[Callable] | Callable) -> None:
        self.compose = Compose(transforms)

    @property
    def transforms(self) -> tuple[Callable, ...]:
        """The wrapped transforms."""
        return tuple(self.compose.transforms)

    def set_random_state(self, seed: int | None = None, state: Any = None) -> ReportErrors:
        """Pass the random state on to the wrapped transforms."""
        super().set_random_state(seed, state)
        self.compose.set_random_state(seed, state)
        return self

    def randomize(self, data: Any) -> None:
        """Nothing to draw here: the wrapped transforms draw their own."""

    def __call__(self, data: Any) -> Any:
        try:
            return self.compose(data)
        except Exception as err:
            cause = find_cause(err, AnatoSynthError)
            if cause is None:
                raise
            served = client_error(cause)
            if served is cause:
                raise
            logger.warning("rejected with HTTP %d: %s", http_status(cause), cause)
            raise served from err
