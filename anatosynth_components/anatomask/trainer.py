"""``AnatoMaskTrainer``: the trainer of the AnatoMaskGAN bundles.

Its iteration is :func:`~anatosynth_components.anatomask.step.anatomask_train_step` (a D + G-TC step,
then a G step) on batches of slice stacks; everything else (amp, epoch means of the loss terms,
``TerminateOnNan``, checkpoints and ``resume``, handlers, events, ``DistributedSampler`` epochs) is the
shared :class:`~anatosynth_components.engines.AnatoSynthTrainer`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from anatosynth_components.anatomask.loss import AnatoMaskLoss
from anatosynth_components.anatomask.net import one_hot_stack
from anatosynth_components.anatomask.step import anatomask_train_step
from anatosynth_components.engines.modules import unwrap
from anatosynth_components.engines.trainer import AnatoSynthTrainer
from anatosynth_components.network_size import check_networks_fit


class AnatoMaskTrainer(AnatoSynthTrainer):
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
        kwargs: ``amp``, ``checkpoint_dir``, ``resume``, ``train_handlers``, ... of
            :class:`~anatosynth_components.engines.AnatoSynthTrainer`.  The checkpoint holds the
            generator, the discriminator, the G-TC classifier and both optimizers (the VGG19 of the
            loss is fixed and left out).

    ``engine.state.output`` after each iteration: ``{"losses": {name: float}, "loss": g_total,
    "label": label ids, "image": real stacks, "pred": generated stacks}``; after each epoch,
    ``engine.state.metrics`` holds ``mean_<term>`` for every loss term (for ``StatsHandler``).

    Example (what ``configs/train.json`` wires)::

        trainer = AnatoMaskTrainer("cuda", 100, loader, net, disc, AnatoMaskLoss(...), opt_g, opt_d,
                                   amp=True, checkpoint_dir="models",
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
        **kwargs: Any,
    ) -> None:
        generator = getattr(unwrap(network), "generator", None)
        if generator is not None:  # the discriminator and G-TC are not told the slice size
            gtc = getattr(loss, "gtc", None)
            parts = [discriminator] + ([gtc.classifier] if gtc is not None else [])
            check_networks_fit(generator.spatial_size, *parts, multiple=generator.size_multiple)
        super().__init__(device, max_epochs, train_data_loader, **kwargs)
        self.network, self.discriminator, self.loss = network, discriminator, loss
        self.opt_g, self.opt_d = opt_g, opt_d
        self.num_classes = int(unwrap(network).num_classes)

    def checkpoint_objects(self) -> dict[str, Any]:
        objects: dict[str, Any] = {"network": self.network, "discriminator": self.discriminator}
        if self.loss.gtc is not None:
            objects["gtc_classifier"] = self.loss.gtc.classifier
        return objects | {"opt_g": self.opt_g, "opt_d": self.opt_d}

    def train_step(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        labels = self.to_device(batch, "label")
        images = self.to_device(batch, "image", torch.float32)
        z_index = self.to_device(batch, "z_index")
        self.network.train()
        self.discriminator.train()
        masks = one_hot_stack(labels, self.num_classes)
        losses, fake = anatomask_train_step(
            masks,
            images,
            z_index,
            self.network,
            self.discriminator,
            self.loss,
            self.opt_g,
            self.opt_d,
            precision=self.precision,
        )
        return {"losses": losses, "loss": losses["g_total"], "label": labels, "image": images, "pred": fake}
