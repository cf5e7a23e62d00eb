"""``AnatoMaskTrainer``: the Ignite/MONAI trainer of the anatomask bundles.

MONAI's ``GanTrainer`` and ``AdversarialTrainer`` fix their own step (a latent code in, one
reconstruction loss); AnatoMaskGAN's step needs the one-hot mask, the slices' z indices, a noise
seed per stack, one discriminator pass per step on (fake, real) and the G-TC classifier trained
beside D.  So this subclasses ``monai.engines.Trainer`` (as ``GanTrainer`` does) and its iteration
calls :func:`anatomask_train_step`.  Everything else (handlers, events, DistributedSampler epochs,
checkpointing of the engine state) is MONAI's and Ignite's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from monai.engines import Trainer
from monai.handlers import CheckpointLoader, CheckpointSaver
from torch import nn

from anatosynth_components.anatomask.loss import AnatoMaskLoss
from anatosynth_components.anatomask.net import one_hot_stack
from anatosynth_components.anatomask.step import anatomask_train_step
from anatosynth_components.bundle.checkpoints import LATEST_PATTERN, latest_checkpoint
from anatosynth_components.engines.modules import unwrap
from anatosynth_components.errors import ConfigError


def prune_latest(checkpoint_dir: str) -> None:
    """Keep only the newest ``latest_checkpoint_epoch=N.pt`` (the saver forgets files of earlier runs,
    such as the one a resumed run started from).  Rank 0 only."""
    if idist.get_rank() != 0:
        return
    newest = latest_checkpoint(checkpoint_dir)
    for path in Path(checkpoint_dir).glob("latest_checkpoint_epoch=*.pt"):
        if str(path) != newest and LATEST_PATTERN.match(path.name):
            path.unlink(missing_ok=True)


class AnatoMaskTrainer(Trainer):
    """Adversarial training of an :class:`AnatoMaskNet` on batches of slice stacks.

    Args:
        device: where the networks live.
        max_epochs: epochs to train.
        train_data_loader: batches ``{"label": (B, 1, n, H, W), "image": (B, 1, n, H, W),
            "z_index": (B, n), ...}`` (``RandSliceStackd`` items, collated).
        network: the generator (``AnatoMaskNet``, possibly DDP-wrapped); its ``num_classes`` sets
            the one-hot size.
        discriminator: ``AnatoMaskDiscriminator`` (possibly DDP-wrapped).
        loss: the Eq. 5 objective (``AnatoMaskLoss``).
        opt_g: optimizer of the generator.
        opt_d: optimizer of the discriminator and the G-TC classifier.
        checkpoint_dir: where to save the latest training state after every epoch
            (``latest_checkpoint_epoch=N.pt``: networks, G-TC classifier, optimizers and the engine's
            epoch and iteration; MONAI's ``CheckpointSaver``, one file kept); ``None`` saves nothing.
        resume: continue from the latest checkpoint in ``checkpoint_dir`` (MONAI's
            ``CheckpointLoader``), with its optimizer state and epoch counter.
        epoch_length, non_blocking, iteration_update, train_handlers, event_names, event_to_attr:
            as in MONAI's trainers.

    The checkpoint handlers live here rather than in the config's handler list because they must
    save the trainer itself, which a config entry cannot reference from inside the trainer's own
    arguments.

    ``engine.state.output`` after each iteration: ``{"losses": {name: float}, "loss": g_total,
    "label": label ids, "image": real stacks, "pred": generated stacks}``; after each epoch,
    ``engine.state.metrics`` holds the epoch mean of every loss term (for ``StatsHandler``).  A
    non-finite loss stops training with a ``FloatingPointError`` naming the terms.

    Example (what ``configs/train.json`` wires)::

        trainer = AnatoMaskTrainer("cpu", 100, loader, net, disc, AnatoMaskLoss(...), opt_g, opt_d,
                                   train_handlers=[StatsHandler(...), ValidationHandler(...)])
        trainer.run()
    """

    def __init__(
        self,
        device: torch.device | str,
        max_epochs: int,
        train_data_loader: Iterable,
        network: nn.Module,
        discriminator: nn.Module,
        loss: AnatoMaskLoss,
        opt_g: torch.optim.Optimizer,
        opt_d: torch.optim.Optimizer,
        checkpoint_dir: str | None = None,
        resume: bool = False,
        epoch_length: int | None = None,
        non_blocking: bool = False,
        iteration_update: Callable[[Engine, Any], Any] | None = None,
        train_handlers: Sequence | None = None,
        event_names: list | None = None,
        event_to_attr: dict | None = None,
    ) -> None:
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            data_loader=train_data_loader,
            epoch_length=epoch_length,
            non_blocking=non_blocking,
            iteration_update=iteration_update,
            handlers=train_handlers,
            event_names=event_names,
            event_to_attr=event_to_attr,
            decollate=False,
        )
        self.network, self.discriminator, self.loss = network, discriminator, loss
        self.opt_g, self.opt_d = opt_g, opt_d
        self.num_classes = int(unwrap(network).num_classes)
        self._sums: dict[str, float] = {}
        self.add_event_handler(Events.EPOCH_STARTED, lambda _: self._sums.clear())
        if resume and checkpoint_dir is None:
            raise ConfigError("resume: true needs a checkpoint_dir")
        if checkpoint_dir is not None:
            self._attach_checkpoints(str(checkpoint_dir), bool(resume))

    def checkpoint_objects(self) -> dict[str, Any]:
        """What the latest checkpoint holds (the VGG19 of the loss is fixed and left out)."""
        objects: dict[str, Any] = {"network": self.network, "discriminator": self.discriminator}
        if self.loss.gtc is not None:
            objects["gtc_classifier"] = self.loss.gtc.classifier
        objects.update(opt_g=self.opt_g, opt_d=self.opt_d, trainer=self)
        return objects

    def _attach_checkpoints(self, checkpoint_dir: str, resume: bool) -> None:
        objects = self.checkpoint_objects()
        if resume:
            path = latest_checkpoint(checkpoint_dir)
            self.logger.info(f"resuming from {path}")
            CheckpointLoader(path, objects, map_location=self.state.device).attach(self)
        saver = CheckpointSaver(checkpoint_dir, objects, file_prefix="latest", save_interval=1, n_saved=1)
        saver.attach(self)
        self.add_event_handler(Events.EPOCH_COMPLETED, lambda _: prune_latest(checkpoint_dir))

    def _update_means(self, engine: Engine, losses: dict[str, float]) -> None:
        """Running epoch means in ``engine.state.metrics`` (complete when the epoch ends)."""
        count = self._sums["_count"] = self._sums.get("_count", 0.0) + 1
        for name, value in losses.items():
            self._sums[name] = self._sums.get(name, 0.0) + value
            engine.state.metrics[f"mean_{name}"] = self._sums[name] / count

    def _iteration(self, engine: Engine, batchdata: dict[str, Any]) -> dict[str, Any]:
        if batchdata is None:
            raise ValueError("must provide batch data for current iteration.")
        move = {"device": engine.state.device, "non_blocking": engine.non_blocking}
        labels = torch.as_tensor(batchdata["label"]).to(**move)
        images = torch.as_tensor(batchdata["image"]).to(**move).float()
        z_index = torch.as_tensor(batchdata["z_index"]).to(**move)
        self.network.train()
        self.discriminator.train()
        masks = one_hot_stack(labels, self.num_classes)
        losses, fake = anatomask_train_step(
            masks, images, z_index, self.network, self.discriminator, self.loss, self.opt_g, self.opt_d
        )
        bad = sorted(k for k, v in losses.items() if not math.isfinite(v))
        if bad:
            raise FloatingPointError(
                f"epoch {engine.state.epoch}, iteration {engine.state.iteration}: non-finite losses {bad} "
                f"({ {k: losses[k] for k in bad} }); lower lr or check the data"
            )
        self._update_means(engine, losses)
        return {"losses": losses, "loss": losses["g_total"], "label": labels, "image": images, "pred": fake}
