"""Checkpoint files of the refinement: ``registration.pt`` and the refiner's training state.

Both are one ``torch.save`` of ``{name: object.state_dict()}``, the format of Ignite's ``Checkpoint``,
so MONAI's ``CheckpointLoader`` resumes from them; they are written under a temporary name and renamed,
so a crash never leaves a truncated file that looks valid.

Example::

    >>> import tempfile, os
    >>> net = torch.nn.Linear(2, 2)
    >>> path = os.path.join(tempfile.mkdtemp(), "registration.pt")
    >>> _ = save_objects(path, {"network": net})
    >>> load_network(torch.nn.Linear(2, 2), path, hint="train it").weight.shape
    torch.Size([2, 2])
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from monai.handlers import CheckpointLoader
from torch import nn

from anatosynth_components.atomic import atomic_path
from anatosynth_components.engines.modules import unwrap
from anatosynth_components.errors import ConfigError, DataError

#: what trains ``registration.pt`` (named in the error when it is missing)
REGISTRATION_HINT = (
    "train the registration network first (RegistrationTrainer; in a bundle, the registration "
    "workflow of configs/refine.json)"
)


def save_objects(path: str | os.PathLike, objects: Mapping[str, Any]) -> Path:
    """``torch.save({name: obj.state_dict()})`` to ``path`` atomically (rank 0 only). Returns the path."""
    path = Path(path)
    if idist.get_rank() != 0:
        return path
    states = {
        name: (unwrap(obj) if isinstance(obj, nn.Module) else obj).state_dict()
        for name, obj in objects.items()
    }
    with atomic_path(path) as tmp:
        torch.save(states, tmp)
    return path


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


def load_network(
    network: nn.Module, path: str | os.PathLike, hint: str = REGISTRATION_HINT, key: str | None = "network"
) -> nn.Module:
    """Load ``checkpoint[key]`` of ``path`` into ``network`` (strict) and return the network.

    ``key=None`` reads ``path`` as a plain state dict (a bundle's ``models/model.pt``).
    Errors name the file: missing (``ConfigError`` with ``hint``), unreadable or without ``key``
    (``DataError``), weights that do not fit the configured network (``ConfigError``).
    """
    state = read_checkpoint(path, hint)
    if key is not None and key not in state:
        raise DataError(f"{path}: no '{key}' entry (found {sorted(state)}); is it a registration.pt?")
    try:
        unwrap(network).load_state_dict(state if key is None else state[key])
    except RuntimeError as exc:
        entry = "" if key is None else f"'{key}' "
        raise ConfigError(
            f"{path}: its {entry}weights do not fit the configured network (different spatial_dims or "
            f"channels?): {exc}"
        ) from exc
    return network


def attach_state_file(
    engine: Engine, path: str | os.PathLike, objects: Mapping[str, Any], resume: bool = False
) -> None:
    """Save ``objects`` (networks, optimizers, the engine itself, ...) to ``path`` after every epoch and,
    with ``resume``, load them from it when the engine starts (MONAI ``CheckpointLoader``: weights,
    optimizer state, epoch and iteration counters).  Resuming without the file is a ``ConfigError``."""
    path = str(path)

    def load(engine: Engine) -> None:
        if not Path(path).is_file():
            raise ConfigError(f"resume: true, but {path} does not exist; run once without resume first")
        engine.logger.info(f"resuming from {path}")
        CheckpointLoader(path, dict(objects), map_location=engine.state.device)(engine)

    def save(engine: Engine) -> None:
        save_objects(path, objects)
        engine.logger.info(f"epoch {engine.state.epoch}: saved {path}")

    if resume:
        engine.add_event_handler(Events.STARTED, load)
    engine.add_event_handler(Events.EPOCH_COMPLETED, save)
