"""Checkpoint files of a bundle: the trained model and the latest training state."""

from __future__ import annotations

import os
import re
from pathlib import Path

from anatosynth_components.errors import ConfigError

#: name of the latest full training state (``CheckpointSaver`` with ``file_prefix="latest"``)
LATEST_PATTERN = re.compile(r"^latest_checkpoint_epoch=(\d+)\.pt$")


def required_file(path: str | os.PathLike, hint: str) -> str:
    """``path`` if it is a file, else a ``ConfigError`` that names it and says what to do."""
    if not Path(path).is_file():
        raise ConfigError(f"{path}: file not found; {hint}")
    return str(path)


def latest_checkpoint(ckpt_dir: str | os.PathLike) -> str:
    """The ``latest_checkpoint_epoch=N.pt`` with the largest N in ``ckpt_dir``.

    Raises a ``ConfigError`` when there is none (``resume: true`` needs an earlier run).
    """
    found = [
        (int(m.group(1)), p)
        for p in Path(ckpt_dir).glob("latest_checkpoint_epoch=*.pt")
        if (m := LATEST_PATTERN.match(p.name))
    ]
    if not found:
        raise ConfigError(
            f"resume: true, but {ckpt_dir} holds no latest_checkpoint_epoch=N.pt; "
            "train once without resume first"
        )
    return str(max(found)[1])
