"""``removed_keys``: a key a bundle no longer has, given on the command line, is an error.

MONAI adds an override of an unknown key to the config and goes on: ``--phase1_epochs 200`` after the
ACIS phases moved to iteration budgets would train the default budget without a word.  A config's
``initialize`` calls this to stop such a run with the key that replaces it::

    "initialize": ["$anatosynth_components.bundle.removed_keys({'phase1_epochs': 'phase1_iterations'},
                   'the phases are counted in iterations')", ...]
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

from anatosynth_components.errors import ConfigError


def removed_keys(replacements: Mapping[str, str], why: str) -> None:
    """Raise a ``ConfigError`` naming the key to use when the running config holds a removed key.

    Args:
        replacements: ``{removed key: the key that replaces it}``.
        why: the reason, appended to the message.

    The running config is the one the ``ConfigWorkflow`` on the call stack parses (with its command-line
    overrides); without one (a ``ConfigParser`` used directly) nothing is checked.
    """
    from monai.bundle import ConfigWorkflow

    frame = inspect.currentframe()
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, ConfigWorkflow):
            found = [key for key in replacements if key in owner.parser]
            if found:
                uses = "; ".join(
                    f"{key} is no longer a key of this bundle, use {replacements[key]}" for key in found
                )
                raise ConfigError(f"{uses} ({why})")
            return
        frame = frame.f_back
