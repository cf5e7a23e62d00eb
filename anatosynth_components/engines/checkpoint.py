"""Training checkpoints: one mechanism for every trainer, and the checks of files read back.

:class:`TrainingCheckpoint` saves ``{name: obj.state_dict()}`` of the networks, optimizers, the engine
(epoch and iteration) and whatever else a trainer names, after every epoch, as
``<dir>/latest_checkpoint_epoch=N.pt``, with ignite's ``Checkpoint`` and ``DiskSaver(atomic=True)``: the
file is written under a temporary name and renamed when complete, and the older files are removed only
after that, so a crash while saving never leaves the directory without a complete checkpoint.  The
newest ``keep`` files stay (default 2: the previous one is a fallback if the newest is damaged later).
Files of earlier runs in the folder count too (a resumed run prunes what the run it resumes wrote).

The format is the one MONAI's ``CheckpointSaver`` / ``CheckpointLoader`` use, so
``CheckpointLoader(path, objects)`` resumes from it (:func:`load_checkpoint`).

Example::

    >>> import tempfile
    >>> from ignite.engine import Engine
    >>> net = torch.nn.Linear(2, 2)
    >>> engine = Engine(lambda e, b: None)
    >>> folder = tempfile.mkdtemp()
    >>> TrainingCheckpoint(folder, {"network": net, "trainer": engine}).attach(engine)
    >>> _ = engine.run([0], max_epochs=3)
    >>> [Path(p).name for p in checkpoint_files(folder)]
    ['latest_checkpoint_epoch=2.pt', 'latest_checkpoint_epoch=3.pt']
    >>> sorted(torch.load(latest_checkpoint(folder), weights_only=True))
    ['network', 'trainer']
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver
from monai.handlers import CheckpointLoader
from torch import nn

from anatosynth_components.engines.modules import unwrap
from anatosynth_components.errors import ConfigError, DataError

#: file name of a training checkpoint (``N`` = the epoch it completed)
LATEST_PATTERN = re.compile(r"^latest_checkpoint_epoch=(\d+)\.pt$")
FILENAME_PATTERN = "{filename_prefix}_checkpoint_epoch={global_step}.{ext}"


def checkpoint_files(folder: str | os.PathLike | None) -> list[str]:
    """The ``latest_checkpoint_epoch=N.pt`` files of ``folder``, oldest epoch first ([] if none)."""
    if folder is None or not Path(folder).is_dir():
        return []
    found = [(int(m.group(1)), p) for p in Path(folder).iterdir() if (m := LATEST_PATTERN.match(p.name))]
    return [str(p) for _, p in sorted(found)]


def latest_checkpoint(folder: str | os.PathLike) -> str:
    """The ``latest_checkpoint_epoch=N.pt`` with the largest N in ``folder``.

    Raises a ``ConfigError`` when there is none (``resume: true`` needs an earlier run).
    """
    files = checkpoint_files(folder)
    if not files:
        raise ConfigError(
            f"resume: true, but {folder} holds no latest_checkpoint_epoch=N.pt; "
            "train once without resume first"
        )
    return files[-1]


class TrainingCheckpoint:
    """Save ``objects`` to ``folder`` after every epoch of the engine it is attached to.

    Args:
        folder: where ``latest_checkpoint_epoch=N.pt`` go (created when missing).
        objects: ``{name: object with state_dict()}``; DDP-wrapped networks are saved unwrapped.
        keep: how many of the newest files stay (>= 1).

    Rank 0 writes (``DiskSaver(save_on_rank=0)``); every rank may call it.
    """

    def __init__(self, folder: str | os.PathLike, objects: Mapping[str, Any], keep: int = 2) -> None:
        if int(keep) < 1:
            raise ConfigError(f"keep_checkpoints must be >= 1, got {keep}")
        self.folder, self.keep = Path(folder), int(keep)
        self.checkpoint = Checkpoint(
            dict(objects),
            DiskSaver(self.folder, atomic=True, create_dir=True, require_empty=False),
            filename_prefix="latest",
            filename_pattern=FILENAME_PATTERN,
            n_saved=None,
            global_step_transform=lambda engine, _: engine.state.epoch,
        )

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        self.checkpoint(engine)
        if idist.get_rank() == 0:
            for path in checkpoint_files(self.folder)[: -self.keep]:
                Path(path).unlink(missing_ok=True)


def load_checkpoint(
    path: str | os.PathLike, objects: Mapping[str, Any], engine: Engine, message: str = "resuming from"
) -> None:
    """Load ``objects`` (networks, optimizers, the engine, ...) from ``path`` with MONAI's
    ``CheckpointLoader`` (the engine keeps its own ``max_epochs``); logs ``"{message} {path}"``."""
    engine.logger.info(f"{message} {path}")
    CheckpointLoader(str(path), dict(objects), map_location=engine.state.device)(engine)


def read_checkpoint(path: str | os.PathLike, hint: str, map_location: Any = "cpu") -> dict[str, Any]:
    """The dict saved in ``path``: a ``ConfigError`` naming it when it is missing (with ``hint``, what
    makes it), a ``DataError`` when it cannot be read or is not a dict of states."""
    if not Path(path).is_file():
        raise ConfigError(f"{path}: checkpoint not found; {hint}")
    try:
        state = torch.load(str(path), map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several kinds for truncated or foreign files
        raise DataError(f"{path}: cannot read the checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict):
        raise DataError(f"{path}: expected a dict of state dicts, found {type(state).__name__}")
    return state


def load_network(network: nn.Module, path: str | os.PathLike, hint: str, key: str | None = None) -> nn.Module:
    """Load ``path`` (a plain state dict, or ``checkpoint[key]``) into ``network`` (strict); returns it.

    With ``key=None``, a training checkpoint (a dict with ``network`` and ``trainer`` entries, as
    ``registration.pt`` was before it became a plain state dict) is read through its ``network`` entry.
    Errors name the file: missing (``ConfigError`` with ``hint``), unreadable or without ``key``
    (``DataError``), weights that do not fit the configured network (``ConfigError``).

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "model.pt")
    >>> torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    >>> load_network(torch.nn.Linear(2, 2), path, hint="train it").weight.shape
    torch.Size([2, 2])
    >>> load_network(torch.nn.Linear(3, 2), path, hint="train it")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    anatosynth_components.errors.ConfigError: ...model.pt: its weights do not fit the configured network...
    """
    state = read_checkpoint(path, hint)
    if key is None and {"network", "trainer"} <= set(state):
        key = "network"
    if key is not None and key not in state:
        raise DataError(f"{path}: no '{key}' entry (found {sorted(state)})")
    try:
        unwrap(network).load_state_dict(state if key is None else state[key])
    except RuntimeError as exc:
        entry = "" if key is None else f"'{key}' "
        raise ConfigError(
            f"{path}: its {entry}weights do not fit the configured network (different sizes or channels "
            f"in the config than when it was trained?): {exc}"
        ) from exc
    return network
