"""``require_base``: an overlay config must run merged over ``train.json``.

The ACIS ``refine.json`` holds only the refinement workflows; the network, the data and the
training settings come from ``train.json``.  Run alone, MONAI would stop at the first reference to a
``train.json`` key with a message that does not say why; the overlay's ``initialize`` calls this first
instead::

    "initialize": ["$anatosynth_components.bundle.require_base('configs/refine.json',
                   'configs/train.json', 'train')", ...]

(``evaluate.json`` cannot use it: its ``validate#...`` keys are merged into ``train.json``'s sections
while MONAI reads the files, before any expression runs, so alone it stops there with MONAI's
``KeyError: 'query key: validate'``.)
"""

from __future__ import annotations

import inspect

from anatosynth_components.errors import ConfigError


def require_base(overlay: str, base: str, key: str) -> None:
    """Raise a ``ConfigError`` with the command to use when the running config lacks ``key`` of ``base``.

    The running config is the one the ``ConfigWorkflow`` on the call stack parses; without one (a
    ``ConfigParser`` used directly) nothing is checked.
    """
    from monai.bundle import ConfigWorkflow

    frame = inspect.currentframe()
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, ConfigWorkflow):
            if key not in owner.parser:
                raise ConfigError(
                    f"{overlay} is an overlay of {base} (it reuses its network, data and validation "
                    f"settings): run both, base first: --config_file \"['{base}','{overlay}']\""
                )
            return
        frame = frame.f_back
