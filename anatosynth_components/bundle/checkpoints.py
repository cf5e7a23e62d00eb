"""Checkpoint files a bundle config names: the trained model must exist before evaluation or inference."""

from __future__ import annotations

import os
from pathlib import Path

from anatosynth_components.errors import ConfigError


def required_file(path: str | os.PathLike, hint: str) -> str:
    """``path`` if it is a file, else a ``ConfigError`` that names it and says what to do.

    >>> required_file("/no/such/model.pt", "train the bundle first")
    Traceback (most recent call last):
    ...
    anatosynth_components.errors.ConfigError: /no/such/model.pt: file not found; train the bundle first
    """
    if not Path(path).is_file():
        raise ConfigError(f"{path}: file not found; {hint}")
    return str(path)
