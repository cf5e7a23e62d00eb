"""``RegistrationTrainer``: unsupervised training of the ACIS registration network on real pairs.

ACIS (Sec. 2.3) needs a trained diffeomorphic registration network before refinement; the paper uses
the authors' VoxelMorph-style code.  This trainer's iteration pairs the real items of a batch (item i is
registered to item ``(i - k) mod B``, with k drawn uniformly from 1..B-1 at every step, so each moving
image gets a different fixed one and over an epoch every pairing occurs), runs ``network(moving,
fixed)`` in train mode (dropout on, the MC-dropout Bayesian approximation of Gal & Ghahramani that
:func:`mc_dropout` samples later) and takes one optimizer step on :class:`RegistrationLoss`.  The rest
(amp, epoch means, ``TerminateOnNan``, checkpoints, resume) is the shared
:class:`~anatosynth_components.engines.AnatoSynthTrainer`; give ``model_file`` (``registration.pt``, the
network's weights after every epoch) for the refiner to load.

Example::

    trainer = RegistrationTrainer("cpu", 50, loader, DiffeomorphicRegistration(2),
                                  torch.optim.Adam(net.parameters(), 1e-4), RegistrationLoss(2),
                                  checkpoint_dir="models/registration", model_file="models/registration.pt",
                                  train_handlers=[StatsHandler(tag_name="registration", iteration_log=False)])
    trainer.run()
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from anatosynth_components.acis.one_hot import label_one_hot
from anatosynth_components.acis.refinement.jacobian import folding_fraction
from anatosynth_components.acis.refinement.real_batch import real_batch
from anatosynth_components.acis.refinement.registration_loss import RegistrationLoss
from anatosynth_components.engines.modules import unwrap
from anatosynth_components.engines.trainer import AnatoSynthTrainer
from anatosynth_components.errors import ConfigError
from anatosynth_components.network_size import check_networks_fit

#: what trains ``registration.pt`` (named in the error when it is missing)
REGISTRATION_HINT = (
    "train the registration network first (RegistrationTrainer; in a bundle, the registration "
    "workflow of configs/refine.json)"
)


class RegistrationTrainer(AnatoSynthTrainer):
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
        model_file: ``registration.pt``: the network's state dict, written after every epoch; or None.
        spatial_size: the images' spatial size, when known: checked against the network's depth at
            start-up (a ``ConfigError`` naming ``registration_channels`` and a size that works).
        kwargs: ``amp``, ``checkpoint_dir``, ``resume``, ``train_handlers``, ... of
            :class:`~anatosynth_components.engines.AnatoSynthTrainer` (the checkpoint holds the network,
            the optimizer and the engine state).

    ``engine.state.output``: ``{"losses": {name: float}, "loss": float, "image": moving, "fixed": fixed,
    "pred": warped moving}``; ``engine.state.metrics``: epoch means ``mean_loss``, ``mean_similarity``,
    ``mean_regularization``, [``mean_dice``] and ``mean_folding`` (fraction of voxels with det J <= 0).
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
        model_file: str | None = None,
        spatial_size: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> None:
        if spatial_size is not None:
            check_networks_fit(spatial_size, network)
        if loss.uses_labels and (num_classes is None or int(num_classes) < 2):
            raise ConfigError(
                f"lambda_dice > 0 needs num_classes >= 2 (background included), got {num_classes}"
            )
        model = None if model_file is None else network
        super().__init__(device, max_epochs, train_data_loader, model=model, model_file=model_file, **kwargs)
        self.network, self.optimizer, self.loss = network, optimizer, loss
        self.num_classes = None if num_classes is None else int(num_classes)

    def checkpoint_objects(self) -> dict[str, Any]:
        return {"network": self.network, "optimizer": self.optimizer}

    def _shift(self, image: torch.Tensor) -> int:
        """The cyclic shift k in 1..B-1 that pairs item i (moving) with item i - k (fixed)."""
        batch = image.shape[0]
        if batch < 2:
            raise ConfigError(
                f"registration training pairs the items of a batch: batch_size must be >= 2, got {batch}"
            )
        return int(torch.randint(1, batch, (1,)).item())

    def train_step(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        image, label = real_batch(batch, self.state.device, self.non_blocking)
        shift = self._shift(image)
        moving, fixed = image, image.roll(shift, dims=0)
        self.network.train()
        with self.precision.autocast():
            warped, ddf, velocity = self.network(moving, fixed, return_velocity=True)
            labels: dict[str, torch.Tensor] = {}
            if self.loss.uses_labels:
                onehot = label_one_hot(label, self.num_classes, "batch 'label'")
                labels = {
                    "warped_label": unwrap(self.network).warp(onehot, ddf),
                    "fixed_label": onehot.roll(shift, 0),
                }
            terms = self.loss(warped.float(), fixed, velocity.float(), **labels)
        self.precision.minimize(terms["loss"], self.optimizer)
        self.precision.update()
        values = {name: float(value.detach()) for name, value in terms.items()}
        values["folding"] = float(folding_fraction(ddf.detach().float()).mean())
        return {
            "losses": values,
            "loss": values["loss"],
            "image": moving,
            "fixed": fixed,
            "pred": warped.detach(),
        }
