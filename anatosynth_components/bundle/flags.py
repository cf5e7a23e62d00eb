"""``flag``: a config switch as a bool, whatever form the command line gave it.

``python -m monai.bundle run ... --augment false`` hands the config the *string* ``"false"``
(Python Fire parses only ``False`` as a bool), and a non-empty string is true in Python.  The
configs read every switch through ``flag`` so ``false``, ``False``, ``0`` and ``no`` all mean off.
"""

from __future__ import annotations

from typing import Any

from anatosynth_components.errors import ConfigError

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", "none", "null", ""}


def flag(value: Any, key: str = "flag") -> bool:
    """``value`` as a bool; a ``ConfigError`` naming ``key`` for anything that is not a switch.

    >>> flag("false", "augment"), flag(True), flag(1), flag("Yes")
    (False, True, True, True)
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if value is None:
        return False
    raise ConfigError(f"{key} must be true or false, got {value!r}")
