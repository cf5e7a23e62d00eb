"""``AcisTrainer``: the two ACIS training phases (paper Sec. 2.2) as a ``monai.engines.Trainer``.

- **phase 1** ("real-world image-based initialization"), on batches of real images, annotations and
  pseudo-masks computed on the fly (``RandPseudoMaskd``: new Voronoi seeds every epoch): every
  iteration (a) one WGAN-GP critic update of the pseudo-mask critic on the real pseudo-masks, and a
  pseudo-mask generator update every ``n_critic``-th iteration; (b)+(c) one image-discriminator update
  and one update of the annotation generator (Dice + CE) and the image generator (MSE + adversarial) on
  the real pairs (:func:`~anatosynth_components.acis.step.synthesis_step`).
- **phase 2** ("fine-tuning on generated pseudo-masks"): ``pm = G_pm(z)`` from the frozen pseudo-mask
  generator, annotation and image generated from it, the image discriminator judging real triples
  against generated ones.  It starts from the networks of phase 1's latest checkpoint (``init_dir``).

MONAI's ``GanTrainer`` fixes a one-generator, one-discriminator step, so this subclasses
``monai.engines.Trainer`` as :class:`~anatosynth_components.anatomask.AnatoMaskTrainer` does; handlers,
events, ``DistributedSampler`` epochs and engine-state checkpoints are MONAI's and Ignite's.

Files in ``checkpoint_dir`` (one folder per phase): ``latest_checkpoint_epoch=N.pt`` after every epoch
(the network, critic, discriminator, the optimizers and the engine state; one kept), and ``model_file``
(the :class:`AcisPairGenerator` state dict alone, the bundle's ``models/model.pt``) after every epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from monai.engines import Trainer
from monai.handlers import CheckpointLoader, CheckpointSaver
from torch import nn

from anatosynth_components.acis.pair_generator import AcisPairGenerator
from anatosynth_components.acis.step import AcisParts, plain, pseudo_mask_gan_step, synthesis_step
from anatosynth_components.acis.synthesis_loss import AcisSynthesisLoss
from anatosynth_components.acis.wgan_gp import WGANGPLoss
from anatosynth_components.anatomask.trainer import prune_latest
from anatosynth_components.atomic import atomic_path
from anatosynth_components.bundle.checkpoints import latest_checkpoint
from anatosynth_components.engines.modules import unwrap
from anatosynth_components.errors import ConfigError

GENERATOR_PARTS = ("pseudo_mask_generator", "annotation_generator", "image_generator")


def find_latest(checkpoint_dir: str | None) -> str | None:
    """The newest ``latest_checkpoint_epoch=N.pt`` of ``checkpoint_dir``, or None."""
    if checkpoint_dir is None:
        return None
    try:
        return latest_checkpoint(checkpoint_dir)
    except ConfigError:
        return None


class AcisTrainer(Trainer):
    """One ACIS training phase.

    Args:
        device: where the networks live.
        max_epochs: epochs of this phase.
        train_data_loader: batches ``{"image": (B, 1, *S) in [0, 1], "label": (B, 1, *S) ids,
            "pseudo_mask": (B, 1, *S)}``.
        network: the :class:`AcisPairGenerator` (not wrapped; its parts are what ``generators`` wraps).
        critic: ``PseudoMaskCritic`` (may be DDP-wrapped).
        discriminator: ``ImageDiscriminator`` (may be DDP-wrapped).
        loss: :class:`AcisSynthesisLoss`.
        wgan_loss: :class:`WGANGPLoss` (phase 1).
        opt_g: optimizer of the annotation and image generators.
        opt_d: optimizer of the image discriminator.
        opt_pm, opt_critic: optimizers of the pseudo-mask generator and critic (phase 1; may be None
            in phase 2, whose pseudo-mask generator is frozen).
        phase: 1 or 2.
        n_critic: critic updates per pseudo-mask generator update (5, Gulrajani et al.).
        generators: optional ``{part: module}`` that replaces the network's parts in the steps
            (``DistributedDataParallel`` wrappers under multi-GPU training); keys from
            ``pseudo_mask_generator``, ``annotation_generator``, ``image_generator``.
        checkpoint_dir: folder of this phase's ``latest_checkpoint_epoch=N.pt``; None saves nothing.
        resume: continue from the latest checkpoint of ``checkpoint_dir`` (networks, optimizers, epoch).
            Without one: an error in phase 1, a fresh start from ``init_dir`` in phase 2.
        init_dir: phase 2: the phase-1 checkpoint folder whose latest network, critic and
            discriminator this phase starts from (unless it resumes from its own checkpoint).
        model_file: where to write the network's state dict after every epoch (rank 0), or None.
        epoch_length, non_blocking, iteration_update, train_handlers, event_names, event_to_attr: as
            in MONAI's trainers.

    ``engine.state.output``: ``{"losses": {name: float}, "loss": g_total, "image", "label",
    "pseudo_mask", "pred", "pred_label", "generated_pseudo_mask", ["generated_label",
    "generated_image"]}``; ``engine.state.metrics``: ``phase<N>/<loss>`` epoch means.
    A non-finite loss stops training with a ``FloatingPointError`` naming the terms.

    Example (what ``configs/train.json`` wires)::

        phase1 = AcisTrainer("cpu", 100, loader, net, critic, disc, AcisSynthesisLoss(7), WGANGPLoss(),
                             opt_g, opt_d, opt_pm, opt_critic, phase=1, checkpoint_dir="models/phase1")
        phase2 = AcisTrainer("cpu", 20, loader, net, critic, disc, AcisSynthesisLoss(7), WGANGPLoss(),
                             opt_g2, opt_d2, phase=2, checkpoint_dir="models/phase2",
                             init_dir="models/phase1")
        phase1.run(); phase2.run()
    """

    def __init__(
        self,
        device: torch.device | str,
        max_epochs: int,
        train_data_loader: Iterable,
        network: AcisPairGenerator,
        critic: nn.Module,
        discriminator: nn.Module,
        loss: AcisSynthesisLoss,
        wgan_loss: WGANGPLoss,
        opt_g: torch.optim.Optimizer,
        opt_d: torch.optim.Optimizer,
        opt_pm: torch.optim.Optimizer | None = None,
        opt_critic: torch.optim.Optimizer | None = None,
        phase: int = 1,
        n_critic: int = 5,
        generators: Mapping[str, nn.Module] | None = None,
        checkpoint_dir: str | None = None,
        resume: bool = False,
        init_dir: str | None = None,
        model_file: str | None = None,
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
        if int(phase) not in (1, 2):
            raise ConfigError(f"phase must be 1 or 2, got {phase!r}")
        if int(phase) == 1 and (opt_pm is None or opt_critic is None):
            raise ConfigError(
                "phase 1 trains the pseudo-mask generator and critic: give opt_pm and opt_critic"
            )
        if int(n_critic) < 1:
            raise ConfigError(f"n_critic must be >= 1, got {n_critic}")
        if resume and checkpoint_dir is None:
            raise ConfigError("resume: true needs a checkpoint_dir")
        unknown = sorted(set(generators or {}) - set(GENERATOR_PARTS))
        if unknown:
            raise ConfigError(
                f"generators: unknown parts {unknown}; expected some of {list(GENERATOR_PARTS)}"
            )
        self.phase, self.n_critic = int(phase), int(n_critic)
        self.network, self.critic, self.discriminator = network, critic, discriminator
        self.loss, self.wgan_loss = loss, wgan_loss
        self.opt_g, self.opt_d, self.opt_pm, self.opt_critic = opt_g, opt_d, opt_pm, opt_critic
        wrapped = dict(generators or {})
        self.parts = AcisParts(
            **{name: wrapped.get(name, getattr(unwrap(network), name)) for name in GENERATOR_PARTS},
            critic=critic,
            discriminator=discriminator,
        )
        self.checkpoint_dir = None if checkpoint_dir is None else str(checkpoint_dir)
        self.resume, self.init_dir = bool(resume), init_dir
        self.model_file = model_file
        self._sums: dict[str, list[float]] = {}
        self.add_event_handler(Events.EPOCH_STARTED, lambda _: self._sums.clear())
        self.add_event_handler(Events.STARTED, self._load_start_state)
        if self.checkpoint_dir is not None:
            objects = self.checkpoint_objects()
            CheckpointSaver(
                self.checkpoint_dir, objects, file_prefix="latest", save_interval=1, n_saved=1
            ).attach(self)
            self.add_event_handler(Events.EPOCH_COMPLETED, lambda _: prune_latest(self.checkpoint_dir))
        if model_file is not None:
            self.add_event_handler(Events.EPOCH_COMPLETED, self._save_model)

    def checkpoint_objects(self) -> dict[str, Any]:
        """What ``latest_checkpoint_epoch=N.pt`` holds."""
        objects: dict[str, Any] = {
            "network": self.network,
            "critic": self.critic,
            "discriminator": self.discriminator,
        }
        for name in ("opt_pm", "opt_critic", "opt_g", "opt_d"):
            if getattr(self, name) is not None:
                objects[name] = getattr(self, name)
        objects["trainer"] = self
        return objects

    def _load_start_state(self, engine: Engine) -> None:
        """At ``STARTED``: resume from this phase's checkpoint, or start phase 2 from phase 1's."""
        if idist.get_world_size() > 1:
            idist.barrier()  # rank 0 may still be writing the checkpoint of the previous phase
        own = find_latest(self.checkpoint_dir) if self.resume else None
        if own is not None:
            self.logger.info(f"phase {self.phase}: resuming from {own}")
            CheckpointLoader(own, self.checkpoint_objects(), map_location=engine.state.device)(engine)
        elif self.init_dir is not None:
            path = find_latest(self.init_dir)
            if path is None:
                raise ConfigError(
                    f"phase {self.phase} starts from phase 1, but {self.init_dir} holds no "
                    "latest_checkpoint_epoch=N.pt; run phase 1 first (run id 'phase1' or 'training')"
                )
            self.logger.info(f"phase {self.phase}: starting from the networks of {path}")
            nets = {"network": self.network, "critic": self.critic, "discriminator": self.discriminator}
            CheckpointLoader(path, nets, map_location=engine.state.device)(engine)
        elif self.resume:
            latest_checkpoint(self.checkpoint_dir)  # raises: resume without a checkpoint

    def _save_model(self, engine: Engine) -> None:
        if idist.get_rank() != 0:
            return
        Path(self.model_file).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.model_file) as tmp:
            torch.save(unwrap(self.network).state_dict(), tmp)

    def _update_means(self, engine: Engine, losses: dict[str, float]) -> None:
        for name, value in losses.items():
            total, count = self._sums.get(name, [0.0, 0.0])
            self._sums[name] = [total + value, count + 1]
            engine.state.metrics[f"phase{self.phase}/{name}"] = (total + value) / (count + 1)

    def _latent(self, batch_size: int) -> torch.Tensor:
        return torch.randn(unwrap(self.network).latent_shape(batch_size), device=self.state.device)

    def _iteration(self, engine: Engine, batchdata: dict[str, Any]) -> dict[str, Any]:
        if batchdata is None:
            raise ValueError("must provide batch data for current iteration.")
        move = {"device": engine.state.device, "non_blocking": engine.non_blocking}
        image = plain(batchdata["image"]).to(**move).float()
        labels = plain(batchdata["label"]).to(**move).long()
        pm = plain(batchdata["pseudo_mask"]).to(**move).float()
        for module in (self.network, self.critic, self.discriminator):
            module.train()
        if self.phase == 1:
            update_g = engine.state.iteration % self.n_critic == 0
            losses, generated_pm = pseudo_mask_gan_step(
                pm,
                self.parts.pseudo_mask_generator,
                self.parts.critic,
                self.wgan_loss,
                self.opt_pm,
                self.opt_critic,
                self._latent,
                update_g,
            )
            syn, outputs = synthesis_step(self.parts, self.loss, self.opt_g, self.opt_d, image, labels, pm)
        else:
            with torch.no_grad():
                generated_pm = self.parts.pseudo_mask_generator(self._latent(image.shape[0]))
            losses = {}
            syn, outputs = synthesis_step(
                self.parts, self.loss, self.opt_g, self.opt_d, image, labels, pm, generated_pm
            )
        losses.update(syn)
        bad = sorted(k for k, v in losses.items() if not math.isfinite(v))
        if bad:
            raise FloatingPointError(
                f"phase {self.phase}, epoch {engine.state.epoch}, iteration {engine.state.iteration}: "
                f"non-finite losses {bad} ({ {k: losses[k] for k in bad} }); lower the lr or check the data"
            )
        self._update_means(engine, losses)
        return {
            "losses": losses,
            "loss": losses["g_total"],
            "image": image,
            "label": labels,
            "pseudo_mask": pm,
            "generated_pseudo_mask": generated_pm,
            **outputs,
        }
