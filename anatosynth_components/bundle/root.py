"""``bundle_root()``: the folder of the bundle whose config is being run.

MONAI's convention is ``--bundle_root <folder>`` (the model zoo and MONAI Label pass it); users of a
source checkout type ``python -m monai.bundle run training --config_file bundles/<name>/configs/train.json``
from anywhere.  MONAI does not derive ``bundle_root`` from the config file, but its
``ConfigWorkflow`` records the config folder (``config_root_path``) and itself treats that
folder's parent as the bundle root when it runs (it puts it on ``sys.path``).  The configs say
``"bundle_root": "$anatosynth_components.bundle.bundle_root()"``, which finds that workflow on the
call stack while the config is parsed; ``--bundle_root`` on the command line replaces the
expression altogether.
"""

from __future__ import annotations

import ast
import inspect
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def _root_of(config_dir: Path) -> Path:
    return config_dir.parent if config_dir.name == "configs" else config_dir


def _from_argv(argv: Sequence[str]) -> Path | None:
    """``--config_file X`` (or a list literal of files) in a command line -> the bundle folder."""
    for i, arg in enumerate(argv):
        value = argv[i + 1] if arg == "--config_file" and i + 1 < len(argv) else None
        if arg.startswith("--config_file="):
            value = arg.split("=", 1)[1]
        if value is None:
            continue
        try:
            files = ast.literal_eval(value) if value.lstrip().startswith("[") else [value]
        except (SyntaxError, ValueError):
            files = [value]
        if files:
            return _root_of(Path(str(files[0])).resolve().parent)
    return None


def bundle_root(default: str | os.PathLike | None = None) -> str:
    """Absolute path of the running bundle.

    Looked up, in order: the ``ConfigWorkflow`` that is parsing the config (``python -m monai.bundle
    run`` and ``monai.bundle.run(...)``), a ``--config_file`` argument on the command line (MONAI's
    other bundle commands, e.g. ``verify_net_in_out``, ``ckpt_export``), then ``default`` (the
    current directory when not given).

    Example::

        "bundle_root": "$anatosynth_components.bundle.bundle_root()"
    """
    from monai.bundle import ConfigWorkflow

    frame = inspect.currentframe()
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, ConfigWorkflow) and getattr(owner, "config_root_path", None) is not None:
            return str(_root_of(Path(owner.config_root_path).resolve()))
        frame = frame.f_back
    found = _from_argv(sys.argv)
    if found is not None:
        return str(found)
    return str(Path(default if default is not None else os.getcwd()).resolve())
