"""Training checkpoints: one mechanism for every trainer, and the checks of files read back.

:class:`TrainingCheckpoint` saves ``{name: obj.state_dict()}`` of the networks, optimizers, the engine
(epoch and iteration) and whatever else a trainer names, after every epoch, as
``<dir>/latest_checkpoint_epoch=N.pt``, with ignite's ``Checkpoint`` and a ``DiskSaver(atomic=True)``
that also syncs the file to disk (:class:`DurableDiskSaver`): the file is written under a temporary
name, flushed to the disk and renamed when complete, and the older files are removed only after that,
so a crash while saving never leaves the directory without a complete checkpoint.  The newest ``keep``
files stay (default 2: the previous one is the fallback if the newest is damaged later).

Resuming (:func:`resume_checkpoint`) reads the newest checkpoint; when it cannot be read (a truncated
or foreign file) it says which file and why, and falls back to the newest older one that can be read,
with a warning naming the epoch it resumes from.

A fresh (not resumed) training into a folder that holds an earlier run's checkpoints first sets that
run aside (:func:`set_aside_earlier_run`): every file of the folder moves into
``<dir>/earlier_run_<date>_<time>/`` and the log says so, so that this run's pruning and a later
``resume`` see only this run's files, and nothing of the earlier run is lost.

The format is the one MONAI's ``CheckpointSaver`` / ``CheckpointLoader`` use (``CheckpointLoader(path,
objects)`` resumes from it too); :func:`load_states` puts a read checkpoint into the objects with
ignite's ``Checkpoint.load_objects``, as ``CheckpointLoader`` does.

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

import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver
from torch import nn

from anatosynth_components.engines.modules import unwrap
from anatosynth_components.errors import ConfigError, DataError

#: file name of a training checkpoint (``N`` = the epoch it completed)
LATEST_PATTERN = re.compile(r"^latest_checkpoint_epoch=(\d+)\.pt$")
FILENAME_PATTERN = "{filename_prefix}_checkpoint_epoch={global_step}.{ext}"
#: prefix of the folder an earlier run's files are moved to (:func:`set_aside_earlier_run`)
EARLIER_RUN_PREFIX = "earlier_run_"

logger = logging.getLogger(__name__)


def checkpoint_files(folder: str | os.PathLike | None) -> list[str]:
    """The ``latest_checkpoint_epoch=N.pt`` files of ``folder``, oldest epoch first ([] if none)."""
    if folder is None or not Path(folder).is_dir():
        return []
    found = [(int(m.group(1)), p) for p in Path(folder).iterdir() if (m := LATEST_PATTERN.match(p.name))]
    return [str(p) for _, p in sorted(found)]


def checkpoint_epoch(path: str | os.PathLike) -> int:
    """The epoch ``N`` in the name ``latest_checkpoint_epoch=N.pt`` of ``path``.

    >>> checkpoint_epoch("models/latest_checkpoint_epoch=12.pt")
    12
    """
    match = LATEST_PATTERN.match(Path(path).name)
    if match is None:
        raise ValueError(f"{path}: not a latest_checkpoint_epoch=N.pt file")
    return int(match.group(1))


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


class DurableDiskSaver(DiskSaver):
    """ignite's ``DiskSaver`` (atomic: a temporary file renamed when complete) that also flushes the file
    to the disk (``fsync``) before the rename, so that after a crash or a power cut the newest name never
    points at a file whose bytes did not reach the disk."""

    def _save_func(self, checkpoint: Mapping, path: Path, func: Callable) -> None:
        def save_and_sync(obj: Any, file: Any, **kwargs: Any) -> None:
            func(obj, file, **kwargs)
            file.flush()
            os.fsync(file.fileno())

        super()._save_func(checkpoint, path, save_and_sync)


class TrainingCheckpoint:
    """Save ``objects`` to ``folder`` after every epoch of the engine it is attached to.

    Args:
        folder: where ``latest_checkpoint_epoch=N.pt`` go (created when missing).
        objects: ``{name: object with state_dict()}``; DDP-wrapped networks are saved unwrapped.
        keep: how many of the newest files stay (>= 1); older ones are removed only once the new one
            is completely written.

    Rank 0 writes (``DiskSaver(save_on_rank=0)``); every rank may call it.
    """

    def __init__(self, folder: str | os.PathLike, objects: Mapping[str, Any], keep: int = 2) -> None:
        if int(keep) < 1:
            raise ConfigError(f"keep_checkpoints must be >= 1, got {keep}")
        self.folder, self.keep = Path(folder), int(keep)
        self.checkpoint = Checkpoint(
            dict(objects),
            DurableDiskSaver(self.folder, atomic=True, create_dir=True, require_empty=False),
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


def set_aside_earlier_run(folder: str | os.PathLike, log: logging.Logger = logger) -> Path | None:
    """Move the files of ``folder`` into ``folder/earlier_run_<date>_<time>/`` when it holds
    ``latest_checkpoint_epoch=N.pt`` files (an earlier run's); returns that folder, or ``None``.

    A fresh training calls it before its first save: its pruning and a later ``resume`` then see only
    its own files.  Plain files move (the checkpoints and what the run wrote beside them, e.g. the best
    model ``model.pt`` and its record); subfolders stay.  The warning names the files and where they went.
    """
    folder = Path(folder)
    if not checkpoint_files(folder):
        return None
    stamp = time.strftime("%Y-%m-%d_%H%M%S")
    target, n = folder / f"{EARLIER_RUN_PREFIX}{stamp}", 1
    while target.exists():
        n += 1
        target = folder / f"{EARLIER_RUN_PREFIX}{stamp}_{n}"
    target.mkdir()
    moved = sorted(p.name for p in folder.iterdir() if p.is_file() or p.is_symlink())
    for name in moved:
        os.replace(folder / name, target / name)
    log.warning(
        f"{folder} held the checkpoints of an earlier run and this training starts afresh (resume: false): "
        f"the earlier run's files ({', '.join(moved)}) were moved to {target}. To continue that run instead, "
        f"move them back into {folder} and run again with --resume true; to keep both runs apart from the "
        "start, give each its own --bundle_root"
    )
    return target


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


def newest_readable_checkpoint(
    folder: str | os.PathLike,
    map_location: Any = "cpu",
    log: logging.Logger = logger,
    use: str = "resuming from epoch {epoch} (the epochs after it are trained again)",
) -> tuple[str, dict[str, Any]]:
    """``(path, states)`` of the newest checkpoint of ``folder`` that can be read.

    A newer one that cannot be read (truncated, foreign) is skipped with a warning naming it, the
    reason, the file used instead and ``use`` (what is done with it; ``{epoch}`` is its epoch).  Raises
    a ``ConfigError`` when ``folder`` holds no checkpoint and a ``DataError`` naming every file when
    none can be read.
    """
    files = checkpoint_files(folder)
    if not files:
        latest_checkpoint(folder)  # raises the ConfigError that says how to make one
    problems: list[str] = []
    for path in reversed(files):
        try:
            state = read_checkpoint(path, "it was listed a moment ago", map_location)
        except DataError as err:
            problems.append(str(err))
            continue
        if problems:
            note = use.format(epoch=checkpoint_epoch(path))
            log.warning(f"{'; '.join(problems)}. Falling back to the previous checkpoint {path}: {note}")
        return path, state
    raise DataError(
        f"{folder}: no checkpoint can be read, so there is nothing to resume from: {'; '.join(problems)}. "
        "Train without resume (the unreadable files are set aside) or restore the files from a backup"
    )


def load_states(
    state: Mapping[str, Any], objects: Mapping[str, Any], engine: Engine, path: str | os.PathLike
) -> None:
    """Load the read checkpoint ``state`` (of file ``path``) into ``objects`` with ignite's
    ``Checkpoint.load_objects``, as MONAI's ``CheckpointLoader`` does: the engine keeps its own
    ``max_epochs``, and a checkpoint that has trained more epochs than that is a ``ConfigError``."""
    missing = sorted(set(objects) - set(state))
    if missing:
        raise DataError(
            f"{path}: no {missing} entries (found {sorted(state)}); was it written by a trainer with other "
            "settings (another method, or amp on / off)?"
        )
    max_epochs = engine.state.max_epochs
    try:
        Checkpoint.load_objects(to_load=dict(objects), checkpoint=dict(state))
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path}: the checkpoint does not fit the configured trainer (different sizes, channels or "
            f"switches in the config than when it was written?): {type(exc).__name__}: {exc}"
        ) from exc
    if max_epochs is not None and engine.state.epoch > max_epochs:
        raise ConfigError(
            f"{path}: the checkpoint has trained {engine.state.epoch} epochs, more than "
            f"max_epochs={max_epochs}; to train further from it, set max_epochs above {engine.state.epoch} "
            "(in a bundle: --train#trainer#max_epochs)"
        )
    engine.state.max_epochs = max_epochs


def load_checkpoint(
    path: str | os.PathLike, objects: Mapping[str, Any], engine: Engine, message: str = "resuming from"
) -> None:
    """Load ``objects`` (networks, optimizers, the engine, ...) from the file ``path`` (errors name it);
    the engine keeps its own ``max_epochs``; logs ``"{message} {path}"``."""
    state = read_checkpoint(path, "train once first", map_location=engine.state.device)
    load_states(state, objects, engine, path)
    engine.logger.info(f"{message} {path}")


def resume_checkpoint(
    folder: str | os.PathLike, objects: Mapping[str, Any], engine: Engine, message: str = "resuming from"
) -> str:
    """Load ``objects`` from the newest readable checkpoint of ``folder``
    (:func:`newest_readable_checkpoint`: a damaged newest file falls back to the previous one, with a
    warning); logs ``"{message} {path} (epoch N of M)"`` and returns the path."""
    path, state = newest_readable_checkpoint(folder, engine.state.device, engine.logger)
    load_states(state, objects, engine, path)
    engine.logger.info(f"{message} {path} (epoch {engine.state.epoch} of {engine.state.max_epochs})")
    return path


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
