"""``AnatoSynthTrainer``: the ``monai.engines.Trainer`` that every trainer of both methods subclasses.

MONAI's ``SupervisedTrainer``, ``GanTrainer`` and ``AdversarialTrainer`` fix their own iteration (one
network and one loss, or one generator and one discriminator with a latent code).  The steps of the
papers need more (AnatoMaskGAN: a D + G-TC step then a G step on slice stacks with z indices and noise
seeds; ACIS: a WGAN-GP critic, three generators and an image discriminator; the registration network;
the REINFORCE refiner), so each trainer subclasses ``Trainer`` as ``GanTrainer`` does and implements
one method, :meth:`AnatoSynthTrainer.train_step`.  What they share is here, once:

- the ``Trainer`` constructor arguments (device, epochs, loader, handlers, events) and ``amp``
  (:class:`~anatosynth_components.engines.precision.Precision`: autocast, bfloat16 on CUDA where
  supported, else float16 with a ``GradScaler``; off on a CPU unless a dtype is asked for);
- epoch means of every value in the step's ``losses`` (:class:`EpochMeans`, ``mean_<name>`` in
  ``engine.state.metrics``, printed by ``StatsHandler``);
- ignite's ``TerminateOnNan`` on the ``losses``, then a ``FloatingPointError`` naming the non-finite
  terms (before any checkpoint or validation of that epoch could run);
- one checkpoint mechanism (:class:`TrainingCheckpoint`: ignite ``Checkpoint`` + an atomic, synced
  ``DiskSaver``, the previous file kept until the next is complete) with ``resume``: the newest readable
  checkpoint is loaded before the run starts (a damaged newest one falls back to the previous one with a
  warning), so ignite's "Engine run resuming from iteration I, epoch N" line shows the restored epoch;
  a fresh run (no ``resume``) first sets aside the checkpoints an earlier run left in its folder
  (:func:`~anatosynth_components.engines.checkpoint.set_aside_earlier_run`), so reruns in one folder work;
- optionally the weights of the trained ``model`` written to ``model_file`` after every epoch (what a
  bundle's ``models/model.pt`` or ``registration.pt`` holds), atomically, by rank 0.

A subclass implements ``train_step(batch) -> dict`` returning at least ``{"losses": {name: float}}``
(it calls ``self.precision.autocast()`` / ``minimize`` / ``update`` around its updates) and
``checkpoint_objects() -> dict`` (what its training checkpoint holds besides the engine).

Example (a subclass: least squares; the tests hold it in full)::

    class Regression(AnatoSynthTrainer):
        def checkpoint_objects(self):
            return {"network": self.net, "optimizer": self.opt}

        def train_step(self, batch):
            x, y = self.to_device(batch, "x"), self.to_device(batch, "y")
            with self.precision.autocast():
                loss = (self.net(x).float() - y).square().mean()
            self.precision.minimize(loss, self.opt)
            self.precision.update()
            return {"losses": {"mse": float(loss)}}

    trainer = Regression("cuda", 10, loader, amp=True, checkpoint_dir="models/reg")
    trainer.net, trainer.opt = net, opt
    trainer.run()
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from ignite.handlers import TerminateOnNan
from monai.engines import Trainer
from monai.utils import convert_to_tensor
from torch import nn

from anatosynth_components.atomic import atomic_path
from anatosynth_components.checks import non_empty
from anatosynth_components.engines.checkpoint import (
    TrainingCheckpoint,
    resume_checkpoint,
    set_aside_earlier_run,
)
from anatosynth_components.engines.epoch_means import EpochMeans
from anatosynth_components.engines.modules import unwrap
from anatosynth_components.engines.precision import Precision
from anatosynth_components.errors import ConfigError


class AnatoSynthTrainer(Trainer):
    """Base of the AnatoMaskGAN, ACIS, registration and refinement trainers.

    Args:
        device: where the networks live.
        max_epochs: epochs to train.
        train_data_loader: the batches (a torch ``DataLoader`` or any iterable).
        amp: mixed precision: ``false``, ``true`` (CUDA: bf16 or fp16 + scaler; CPU: off), ``"bf16"``,
            ``"fp16"`` (see :mod:`~anatosynth_components.engines.precision`).
        checkpoint_dir: folder of the training checkpoints ``latest_checkpoint_epoch=N.pt`` (networks,
            optimizers, loss scaler and the engine's epoch and iteration) written after every epoch;
            ``None`` saves nothing.
        resume: start from the newest readable checkpoint of ``checkpoint_dir`` (an error if there is
            none); without it, the files of an earlier run in ``checkpoint_dir`` are moved into
            ``checkpoint_dir/earlier_run_<date>_<time>/`` when training starts (said in the log).
        keep_checkpoints: how many of the newest checkpoints stay in ``checkpoint_dir``.
        model, model_file: after every epoch, rank 0 writes ``unwrap(model).state_dict()`` to
            ``model_file`` (atomically); give both or neither.
        epoch_length, non_blocking, iteration_update, train_handlers, event_names, event_to_attr: as in
            MONAI's trainers.
    """

    def __init__(
        self,
        device: torch.device | str,
        max_epochs: int,
        train_data_loader: Iterable,
        amp: bool | str = False,
        checkpoint_dir: str | os.PathLike | None = None,
        resume: bool = False,
        keep_checkpoints: int = 2,
        model: nn.Module | None = None,
        model_file: str | os.PathLike | None = None,
        epoch_length: int | None = None,
        non_blocking: bool = False,
        iteration_update: Callable[[Engine, Any], Any] | None = None,
        train_handlers: Sequence | None = None,
        event_names: list | None = None,
        event_to_attr: dict | None = None,
    ) -> None:
        if int(max_epochs) < 1:
            raise ConfigError(f"max_epochs must be >= 1, got {max_epochs}")
        non_empty(train_data_loader, f"{type(self).__name__} train_data_loader")
        if resume and checkpoint_dir is None:
            raise ConfigError("resume: true needs a checkpoint_dir")
        if (model is None) != (model_file is None):
            raise ConfigError("model and model_file go together: give both (to write the weights) or neither")
        super().__init__(
            device=device,
            max_epochs=int(max_epochs),
            data_loader=train_data_loader,
            epoch_length=epoch_length,
            non_blocking=non_blocking,
            iteration_update=iteration_update,
            handlers=train_handlers,
            event_names=event_names,
            event_to_attr=event_to_attr,
            decollate=False,
        )
        self.precision = Precision(device, amp)
        self.checkpoint_dir = None if checkpoint_dir is None else str(checkpoint_dir)
        self.resume, self.keep_checkpoints = bool(resume), int(keep_checkpoints)
        self.model, self.model_file = model, None if model_file is None else str(model_file)
        self.means = EpochMeans(self)
        self._prepared = self._started = False
        #: the checkpoint :meth:`restore` loaded (``None``: a fresh start)
        self.restored_from: str | None = None
        self.add_event_handler(
            Events.ITERATION_COMPLETED, TerminateOnNan(output_transform=lambda output: output["losses"])
        )
        self.add_event_handler(Events.TERMINATE, self._stop_on_non_finite)
        self.add_event_handler(Events.STARTED, self._start_once)
        if self.model_file is not None:
            self.add_event_handler(Events.EPOCH_COMPLETED, self._save_model)

    # --- what subclasses provide -------------------------------------------------------------------------

    def checkpoint_objects(self) -> dict[str, Any]:
        """``{name: object}`` saved in the training checkpoint besides the engine itself."""
        raise NotImplementedError

    def train_step(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """One iteration on ``batch``; returns ``engine.state.output``: ``{"losses": {name: float}, ...}``."""
        raise NotImplementedError

    # --- shared machinery -------------------------------------------------------------------------------

    def all_checkpoint_objects(self) -> dict[str, Any]:
        """:meth:`checkpoint_objects`, plus the loss scaler when float16 scaling is on, plus the engine."""
        objects = dict(self.checkpoint_objects())
        if self.precision.scaler.is_enabled():
            objects["grad_scaler"] = self.precision.scaler
        objects["trainer"] = self
        return objects

    def run(self) -> None:  # type: ignore[override]
        """Train (``Trainer.run``), attaching the checkpoint handler on the first call.

        With ``resume``, the first call loads the checkpoint before ignite starts (:meth:`restore`); when
        that checkpoint has already trained ``max_epochs`` epochs it says so and trains nothing.
        """
        if not self._prepared:
            self._prepared = True
            if self.resume and not self.restore():
                self.logger.info(
                    f"nothing to train: the checkpoint has completed all {self.state.max_epochs} epochs "
                    "(raise max_epochs, in a bundle --train#trainer#max_epochs, to train further)"
                )
                return
            if self.checkpoint_dir is not None:
                TrainingCheckpoint(
                    self.checkpoint_dir, self.all_checkpoint_objects(), self.keep_checkpoints
                ).attach(self)
            if self.precision.enabled:
                self.logger.info(f"mixed precision: {self.precision}")
        super().run()

    def restore(self) -> bool:
        """With ``resume``, before the run: load the newest readable checkpoint of ``checkpoint_dir``
        into :meth:`all_checkpoint_objects` (networks, optimizers, scaler, this engine's epoch and
        iteration).  Returns whether epochs are left to train."""
        self.restored_from = resume_checkpoint(self.checkpoint_dir, self.all_checkpoint_objects(), self)
        return self.state.epoch < self.state.max_epochs

    def load_start_state(self, engine: Engine) -> None:
        """At the first ``STARTED`` (after the handlers given to the trainer, e.g. a loader of pretrained
        weights): a fresh run (no ``resume``) sets aside an earlier run's files of ``checkpoint_dir``."""
        if not self.resume and self.checkpoint_dir is not None and idist.get_rank() == 0:
            set_aside_earlier_run(self.checkpoint_dir, self.logger)

    def to_device(self, batch: Mapping[str, Any], key: str, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``batch[key]`` as a plain tensor (no MetaTensor meta data) on the engine's device."""
        if key not in batch:
            raise KeyError(f"the batch has no '{key}' entry (keys: {sorted(batch)})")
        tensor = convert_to_tensor(batch[key], track_meta=False)
        return tensor.to(device=self.state.device, dtype=dtype, non_blocking=self.non_blocking)

    def _iteration(self, engine: Engine, batchdata: dict[str, Any]) -> dict[str, Any]:
        if batchdata is None:
            raise ValueError("must provide batch data for current iteration.")
        output = self.train_step(batchdata)
        self.means.update(engine, output["losses"])
        return output

    def _start_once(self, engine: Engine) -> None:
        if not self._started:
            self._started = True
            self.load_start_state(engine)

    def _stop_on_non_finite(self, engine: Engine) -> None:
        losses = (
            (engine.state.output or {}).get("losses", {}) if isinstance(engine.state.output, dict) else {}
        )
        bad = sorted(k for k, v in losses.items() if not math.isfinite(float(v)))
        if bad:
            raise FloatingPointError(
                f"epoch {engine.state.epoch}, iteration {engine.state.iteration}: non-finite losses {bad} "
                f"({ {k: losses[k] for k in bad} }); training stopped before saving this epoch. Lower the "
                "learning rate, turn amp off, or check the data"
            )

    def _save_model(self, engine: Engine) -> None:
        if idist.get_rank() != 0:
            return
        Path(self.model_file).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.model_file) as tmp:
            torch.save(unwrap(self.model).state_dict(), tmp)
