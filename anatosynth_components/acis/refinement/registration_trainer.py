"""``RegistrationTrainer``: unsupervised training of the ACIS registration network on real pairs.

ACIS (Sec. 2.3) needs a trained diffeomorphic registration network before refinement; the paper uses
the authors' VoxelMorph-style code.  This is a ``monai.engines.Trainer`` whose iteration pairs the real
items of a batch (item i is registered to item ``(i - k) mod B``, with k drawn uniformly from
1..B-1 at every step, so each moving image gets a different fixed one and over an epoch every pairing
occurs), runs ``network(moving, fixed)`` in train mode (dropout on, the MC-dropout Bayesian approximation
of Gal & Ghahramani that :func:`mc_dropout` samples later) and takes one optimizer step on
:class:`RegistrationLoss`.  After every epoch it writes ``checkpoint_file`` (``registration.pt``:
``network``, ``optimizer``, ``trainer`` = engine epoch and iteration), which the refiner loads.

Example::

    trainer = RegistrationTrainer("cpu", 50, loader, DiffeomorphicRegistration(2),
                                  torch.optim.Adam(net.parameters(), 1e-4), RegistrationLoss(2),
                                  checkpoint_file="models/registration.pt",
                                  train_handlers=[StatsHandler(tag_name="registration", iteration_log=False)])
    trainer.run()
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from ignite.engine import Engine
from monai.engines import Trainer
from torch import nn

from anatosynth_components.acis.refinement._checks import non_empty
from anatosynth_components.acis.refinement.checkpoint import attach_state_file
from anatosynth_components.acis.refinement.epoch_means import EpochMeans
from anatosynth_components.acis.refinement.jacobian import folding_fraction
from anatosynth_components.acis.refinement.real_batch import one_hot_labels, real_batch
from anatosynth_components.acis.refinement.registration_loss import RegistrationLoss
from anatosynth_components.engines.modules import unwrap
from anatosynth_components.errors import ConfigError


class RegistrationTrainer(Trainer):
    """Train a :class:`DiffeomorphicRegistration` (or any module with its ``forward(moving, fixed,
    return_velocity=True) -> (warped, ddf, velocity)`` contract) on pairs of real images.

    Args:
        device: where the network lives.
        max_epochs: epochs to train.
        train_data_loader: batches ``{"image": (B, 1, *S) in [0, 1], "label": (B, 1, *S) ids}`` with
            B >= 2 (the pairs are drawn inside a batch).
        network: the registration network (possibly DDP-wrapped).
        optimizer: its optimizer.
        loss: :class:`RegistrationLoss`.
        num_classes: label classes including background; needed when the loss has a Dice term.
        checkpoint_file: ``registration.pt``, written after every epoch; ``None`` saves nothing.
        resume: continue from ``checkpoint_file`` (weights, optimizer, epoch).
        epoch_length, non_blocking, iteration_update, train_handlers, event_names, event_to_attr: as in
            MONAI's trainers.

    ``engine.state.output``: ``{"losses": {name: float}, "loss": float, "image": moving, "fixed": fixed,
    "pred": warped moving}``; ``engine.state.metrics``: epoch means of ``loss``, ``similarity``,
    ``regularization``, [``dice``] and ``folding`` (fraction of voxels with det J <= 0).
    """

    def __init__(
        self,
        device: torch.device | str,
        max_epochs: int,
        train_data_loader: Iterable,
        network: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss: RegistrationLoss,
        num_classes: int | None = None,
        checkpoint_file: str | None = None,
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
        non_empty(
            train_data_loader, "registration train_data_loader (bundle: refine#dataloader, refine_batch_size)"
        )
        if loss.uses_labels and (num_classes is None or int(num_classes) < 2):
            raise ConfigError(
                f"lambda_dice > 0 needs num_classes >= 2 (background included), got {num_classes}"
            )
        if resume and checkpoint_file is None:
            raise ConfigError("resume: true needs a checkpoint_file")
        self.network, self.optimizer, self.loss = network, optimizer, loss
        self.num_classes = None if num_classes is None else int(num_classes)
        self.means = EpochMeans(self)
        if checkpoint_file is not None:
            objects = {"network": network, "optimizer": optimizer, "trainer": self}
            attach_state_file(self, checkpoint_file, objects, bool(resume))

    def _pairs(self, image: torch.Tensor) -> int:
        """The cyclic shift k in 1..B-1 that pairs item i (moving) with item i - k (fixed)."""
        batch = image.shape[0]
        if batch < 2:
            raise ConfigError(
                f"registration training pairs the items of a batch: batch_size must be >= 2, got {batch}"
            )
        return int(torch.randint(1, batch, (1,)).item())

    def _iteration(self, engine: Engine, batchdata: dict[str, Any]) -> dict[str, Any]:
        image, label = real_batch(batchdata, engine.state.device, engine.non_blocking)
        shift = self._pairs(image)
        moving, fixed = image, image.roll(shift, dims=0)
        self.network.train()
        self.optimizer.zero_grad(set_to_none=True)
        warped, ddf, velocity = self.network(moving, fixed, return_velocity=True)
        labels: dict[str, torch.Tensor] = {}
        if self.loss.uses_labels:
            onehot = one_hot_labels(label, self.num_classes)
            labels = {
                "warped_label": unwrap(self.network).warp(onehot, ddf),
                "fixed_label": onehot.roll(shift, 0),
            }
        terms = self.loss(warped, fixed, velocity, **labels)
        terms["loss"].backward()
        self.optimizer.step()
        values = {name: float(value.detach()) for name, value in terms.items()}
        values["folding"] = float(folding_fraction(ddf.detach()).mean())
        self.means.update(engine, values)
        return {
            "losses": values,
            "loss": values["loss"],
            "image": moving,
            "fixed": fixed,
            "pred": warped.detach(),
        }
