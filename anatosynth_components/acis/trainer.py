"""``AcisTrainer``: the two ACIS training phases (paper Sec. 2.2).

- **phase 1** ("real-world image-based initialization"), on batches of real images, annotations and
  pseudo-masks computed on the fly (``RandPseudoMaskd``: new Voronoi seeds every time a volume is
  drawn): every iteration (a) one WGAN-GP critic update of the pseudo-mask critic on the real
  pseudo-masks, and a pseudo-mask generator update every ``n_critic``-th iteration; (b)+(c) one
  image-discriminator update and one update of the annotation generator (Dice + CE) and the image
  generator (MSE + adversarial) on the real pairs
  (:func:`~anatosynth_components.acis.step.synthesis_step`).
- **phase 2** ("fine-tuning on generated pseudo-masks"): ``pm = G_pm(z)`` from the frozen pseudo-mask
  generator, annotation and image generated from it, the image discriminator judging real (image,
  annotation) pairs against generated ones (its pseudo-mask input zeros on both sides:
  :func:`~anatosynth_components.acis.step.judge`).  It starts from the networks of phase 1's latest
  checkpoint (``init_dir``): generators, critic and the discriminator (warm start).

A phase's length is ``max_epochs`` epochs of ``len(train_data_loader)`` iterations; the bundles count
both in iterations, the same for every training-set size (``phase1_iterations``,
``phase2_iterations``, ``epoch_length``: :mod:`~anatosynth_components.engines.iteration_budget`).

The iteration is this class's; amp, epoch means, ``TerminateOnNan``, checkpoints, ``resume`` and
``model_file`` are the shared :class:`~anatosynth_components.engines.AnatoSynthTrainer`'s.  Files: in
``checkpoint_dir`` (one folder per phase) ``latest_checkpoint_epoch=N.pt`` after every epoch (the
network, critic, discriminator, the optimizers and the engine state), and ``model_file`` (the
:class:`AcisPairGenerator` state dict alone, the bundle's ``models/model.pt``) after every epoch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine
from torch import nn

from anatosynth_components.acis.pair_generator import AcisPairGenerator
from anatosynth_components.acis.step import AcisParts, pseudo_mask_gan_step, synthesis_step
from anatosynth_components.acis.synthesis_loss import AcisSynthesisLoss
from anatosynth_components.acis.wgan_gp import WGANGPLoss
from anatosynth_components.engines.checkpoint import (
    checkpoint_files,
    load_states,
    newest_readable_checkpoint,
    resume_checkpoint,
)
from anatosynth_components.engines.modules import unwrap
from anatosynth_components.engines.trainer import AnatoSynthTrainer
from anatosynth_components.errors import ConfigError
from anatosynth_components.network_size import check_networks_fit

GENERATOR_PARTS = ("pseudo_mask_generator", "annotation_generator", "image_generator")


class AcisTrainer(AnatoSynthTrainer):
    """One ACIS training phase.

    Args:
        device: where the networks live.
        max_epochs: epochs of this phase (the bundles: ``budget_epochs(phaseN_iterations, epoch_length)``).
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
        init_dir: phase 2: the phase-1 checkpoint folder whose latest network, critic and
            discriminator this phase starts from (unless it resumes from its own checkpoint).
        model_file: where to write the network's state dict after every epoch (rank 0), or None.
        kwargs: ``amp``, ``checkpoint_dir``, ``resume``, ``train_handlers``, ... of
            :class:`~anatosynth_components.engines.AnatoSynthTrainer`.  With ``resume`` and no checkpoint
            of its own, phase 2 starts from ``init_dir`` (phase 1 finished, phase 2 never ran); phase 1
            stops with an error.

    ``engine.state.output``: ``{"losses": {name: float}, "loss": g_total, "image", "label",
    "pseudo_mask", "pred", "pred_label", "generated_pseudo_mask", ["generated_label",
    "generated_image"]}``; ``engine.state.metrics``: ``mean_<loss>`` epoch means.

    Example (what ``configs/train.json`` wires)::

        loader = DataLoader(dataset, batch_size=1, sampler=budget_sampler(dataset, 100, 1))  # 100 iterations
        phase1 = AcisTrainer("cpu", budget_epochs(8000, 100), loader, net, critic, disc, AcisSynthesisLoss(7),
                             WGANGPLoss(), opt_g, opt_d, opt_pm, opt_critic, phase=1,
                             checkpoint_dir="models/phase1")
        phase2 = AcisTrainer("cpu", budget_epochs(2000, 100), loader, net, critic, disc, AcisSynthesisLoss(7),
                             WGANGPLoss(), opt_g2, opt_d2, phase=2, checkpoint_dir="models/phase2",
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
        init_dir: str | None = None,
        model_file: str | None = None,
        **kwargs: Any,
    ) -> None:
        if int(phase) not in (1, 2):
            raise ConfigError(f"phase must be 1 or 2, got {phase!r}")
        if int(phase) == 1 and (opt_pm is None or opt_critic is None):
            raise ConfigError(
                "phase 1 trains the pseudo-mask generator and critic: give opt_pm and opt_critic"
            )
        if int(n_critic) < 1:
            raise ConfigError(f"n_critic must be >= 1, got {n_critic}")
        unknown = sorted(set(generators or {}) - set(GENERATOR_PARTS))
        if unknown:
            raise ConfigError(
                f"generators: unknown parts {unknown}; expected some of {list(GENERATOR_PARTS)}"
            )
        pair = unwrap(network)  # the critic and the discriminator are not told the image size
        if hasattr(pair, "size_multiple"):
            check_networks_fit(pair.spatial_size, critic, discriminator, multiple=pair.size_multiple)
        model = None if model_file is None else network
        super().__init__(device, max_epochs, train_data_loader, model=model, model_file=model_file, **kwargs)
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
        self.init_dir = init_dir

    def checkpoint_objects(self) -> dict[str, Any]:
        objects: dict[str, Any] = {
            "network": self.network,
            "critic": self.critic,
            "discriminator": self.discriminator,
        }
        for name in ("opt_pm", "opt_critic", "opt_g", "opt_d"):
            if getattr(self, name) is not None:
                objects[name] = getattr(self, name)
        return objects

    def restore(self) -> bool:
        """With ``resume``, before the run: this phase's newest readable checkpoint; phase 2 without one
        of its own (phase 1 finished, phase 2 never ran) starts from phase 1's networks at ``STARTED``."""
        if self.init_dir is not None and not checkpoint_files(self.checkpoint_dir):
            return True
        message = f"phase {self.phase}: resuming from"
        self.restored_from = resume_checkpoint(
            self.checkpoint_dir, self.all_checkpoint_objects(), self, message
        )
        return self.state.epoch < self.state.max_epochs

    def load_start_state(self, engine: Engine) -> None:
        """At ``STARTED``: a fresh run sets aside an earlier run's files; phase 2, unless it resumed from
        its own checkpoint, starts from the networks of phase 1's newest readable checkpoint."""
        super().load_start_state(engine)
        if self.init_dir is None or self.restored_from is not None:
            return
        if idist.get_world_size() > 1:
            idist.barrier()  # rank 0 may still be writing the checkpoint of the previous phase
        if not checkpoint_files(self.init_dir):
            raise ConfigError(
                f"phase {self.phase} starts from phase 1, but {self.init_dir} holds no "
                "latest_checkpoint_epoch=N.pt; run phase 1 first (run id 'phase1' or 'training')"
            )
        use = f"phase {self.phase} starts from the networks of phase 1's epoch {{epoch}}"
        path, state = newest_readable_checkpoint(self.init_dir, engine.state.device, engine.logger, use)
        nets = {"network": self.network, "critic": self.critic, "discriminator": self.discriminator}
        load_states(state, nets, engine, path)
        engine.logger.info(f"phase {self.phase}: starting from the networks of {path}")

    def _latent(self, batch_size: int) -> torch.Tensor:
        return torch.randn(unwrap(self.network).latent_shape(batch_size), device=self.state.device)

    def train_step(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        image = self.to_device(batch, "image", torch.float32)
        labels = self.to_device(batch, "label", torch.long)
        pm = self.to_device(batch, "pseudo_mask", torch.float32)
        for module in (self.network, self.critic, self.discriminator):
            module.train()
        step = {"precision": self.precision}
        if self.phase == 1:
            update_g = self.state.iteration % self.n_critic == 0
            parts = self.parts
            losses, generated_pm = pseudo_mask_gan_step(
                pm, parts.pseudo_mask_generator, parts.critic, self.wgan_loss, self.opt_pm, self.opt_critic,
                self._latent, update_g, **step,
            )  # fmt: skip
            syn, outputs = synthesis_step(
                self.parts, self.loss, self.opt_g, self.opt_d, image, labels, pm, **step
            )
        else:
            with torch.no_grad(), self.precision.autocast():
                generated_pm = self.parts.pseudo_mask_generator(self._latent(image.shape[0])).float()
            losses = {}
            syn, outputs = synthesis_step(
                self.parts, self.loss, self.opt_g, self.opt_d, image, labels, pm, generated_pm, **step
            )
        return {
            "losses": losses | syn,
            "loss": syn["g_total"],
            "image": image,
            "label": labels,
            "pseudo_mask": pm,
            "generated_pseudo_mask": generated_pm,
            **outputs,
        }
