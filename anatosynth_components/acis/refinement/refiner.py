"""``AcisRefiner``: the ACIS refinement (paper Sec. 2.3) as a ``monai.engines.Trainer``.

Each iteration: draw a real batch (x, y) and latent noise z; sample (pm, y_hat, x_hat) from the
:class:`GeneratorPolicy`; measure Eq. 3 (:class:`AppearanceUncertainty`, frozen registration network,
no autograd); reward ``r = -(w_img * U_image + w_ann * U_annotation)`` per sample; baseline b from
:class:`EmaBaseline`; one optimizer step on the generators with the REINFORCE surrogate
``-mean((r - b) * log pi(a) / N)`` (:func:`reinforce_loss`).  N, the voxels of one image, is a constant
rescaling of the step (log pi sums over N voxels; dividing keeps a learning rate meaningful across
image sizes) that leaves the gradient's direction and unbiasedness unchanged.

Real sample i is paired with synthetic sample i: the real images act as the anatomy the synthetic ones
must register to consistently (Sec. 2.3: "registration between real-world and synthesized
image-annotation pairs").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from monai.engines import Trainer
from torch import nn

from anatosynth_components.acis.refinement._checks import non_empty, non_negative
from anatosynth_components.acis.refinement.checkpoint import (
    REGISTRATION_HINT,
    attach_state_file,
    load_network,
)
from anatosynth_components.acis.refinement.epoch_means import EpochMeans
from anatosynth_components.acis.refinement.policy import GeneratorPolicy
from anatosynth_components.acis.refinement.real_batch import one_hot_labels, real_batch
from anatosynth_components.acis.refinement.reinforce import EmaBaseline, reinforce_loss
from anatosynth_components.acis.refinement.uncertainty import AppearanceUncertainty
from anatosynth_components.atomic import atomic_path
from anatosynth_components.engines.modules import unwrap
from anatosynth_components.errors import ConfigError, DataError


class AcisRefiner(Trainer):
    """Policy-gradient refinement of the three ACIS generators with the Eq. 3 reward.

    Args:
        device: where the networks live.
        max_epochs: epochs of refinement.
        train_data_loader: real batches ``{"image": (B, 1, *S) in [0, 1], "label": (B, 1, *S) ids}``.
        pm_generator, annotation_generator, image_generator: the generators (see
            :class:`GeneratorPolicy` for the interface); e.g. ``@network.pseudo_mask_generator``.
        registration_network: a registration network with MONAI ``VoxelMorph``'s ``(moving, fixed) ->
            (warped, ddf)`` contract (:class:`DiffeomorphicRegistration`); frozen.
        optimizer: optimizer of the generators' parameters only (a registration parameter in it is a
            ``ConfigError``).
        registration_checkpoint: ``registration.pt`` to load into ``registration_network`` now; missing
            -> ``ConfigError`` naming it and ``registration_hint``.  ``None`` uses the network as given.
        registration_hint: what trains the checkpoint (shown when it is missing).
        num_passes: T of Eq. 3.
        image_weight, annotation_weight: w_img, w_ann of the reward.
        pm_sigma, image_sigma: exploration noise of the policy.
        baseline_momentum: momentum of :class:`EmaBaseline`.
        checkpoint_file: the refinement state, written after every epoch (generators, optimizer,
            baseline, engine epoch and iteration); ``None`` saves nothing.
        resume: continue from ``checkpoint_file``.
        model, model_file: after every epoch write ``model.state_dict()`` to ``model_file`` (e.g. the
            ``AcisPairGenerator`` holding the three generators, as ``models/model.pt``); both or neither.
        epoch_length, non_blocking, iteration_update, train_handlers, event_names, event_to_attr: as in
            MONAI's trainers.

    ``engine.state.output``: ``{"uncertainty", "reward", "baseline", "loss"}`` (batch means, floats;
    ``uncertainty = w_img * U_image + w_ann * U_annotation = -reward``),
    ``"losses"`` (those and ``uncertainty_image``, ``uncertainty_annotation``, for StatsHandler /
    TensorBoardStatsHandler), ``"image"``, ``"label"`` (real), ``"pred"``, ``"pred_label"``,
    ``"pseudo_mask"`` (the sample), ``"uncertainty_map"`` (B, 1, *S) of the images;
    ``engine.state.metrics``: epoch means of the ``losses`` entries.

    Example::

        refiner = AcisRefiner("cpu", 10, loader, net.pseudo_mask_generator, net.annotation_generator,
                              net.image_generator, DiffeomorphicRegistration(2),
                              torch.optim.Adam(net.parameters(), 1e-5),
                              registration_checkpoint="models/registration.pt",
                              checkpoint_file="models/refine_state.pt", model=net,
                              model_file="models/model.pt")
        refiner.run()
    """

    def __init__(
        self,
        device: torch.device | str,
        max_epochs: int,
        train_data_loader: Iterable,
        pm_generator: nn.Module,
        annotation_generator: nn.Module,
        image_generator: nn.Module,
        registration_network: nn.Module,
        optimizer: torch.optim.Optimizer,
        registration_checkpoint: str | None = None,
        registration_hint: str = REGISTRATION_HINT,
        num_passes: int = 10,
        image_weight: float = 1.0,
        annotation_weight: float = 1.0,
        pm_sigma: float = 0.05,
        image_sigma: float = 0.05,
        baseline_momentum: float = 0.9,
        checkpoint_file: str | None = None,
        resume: bool = False,
        model: nn.Module | None = None,
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
        non_empty(
            train_data_loader, "refiner train_data_loader (bundle: refine#dataloader, refine_batch_size)"
        )
        if registration_checkpoint is not None:
            load_network(registration_network, registration_checkpoint, registration_hint)
        _check_optimizer(optimizer, registration_network)
        if (model is None) != (model_file is None):
            raise ConfigError("model and model_file go together: give both (to write model.pt) or neither")
        if resume and checkpoint_file is None:
            raise ConfigError("resume: true needs a checkpoint_file")
        self.policy = GeneratorPolicy(
            pm_generator, annotation_generator, image_generator, pm_sigma, image_sigma
        )
        self.uncertainty = AppearanceUncertainty(registration_network, num_passes)
        self.registration_network, self.optimizer = registration_network, optimizer
        self.image_weight = non_negative(image_weight, "image_weight")
        self.annotation_weight = non_negative(annotation_weight, "annotation_weight")
        if self.image_weight + self.annotation_weight == 0:
            raise ConfigError("image_weight and annotation_weight are both 0: the reward would be constant")
        self.baseline = EmaBaseline(baseline_momentum)
        self.model, self.model_file = model, model_file
        self.means = EpochMeans(self)
        if checkpoint_file is not None:
            objects = {
                "pm_generator": pm_generator,
                "annotation_generator": annotation_generator,
                "image_generator": image_generator,
                "optimizer": optimizer,
                "baseline": self.baseline,
                "trainer": self,
            }
            attach_state_file(self, checkpoint_file, objects, bool(resume))
        if model_file is not None:
            self.add_event_handler(Events.EPOCH_COMPLETED, self._save_model)

    def _save_model(self, engine: Engine) -> None:
        if idist.get_rank() != 0:
            return
        Path(self.model_file).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.model_file) as tmp:
            torch.save(unwrap(self.model).state_dict(), tmp)

    def _iteration(self, engine: Engine, batchdata: dict[str, Any]) -> dict[str, Any]:
        image, label = real_batch(batchdata, engine.state.device, engine.non_blocking)
        self.policy.train()
        z = torch.randn(self.policy.latent_shape(image.shape[0]), device=image.device)
        sample = self.policy.sample(z)
        if sample.image.shape != image.shape:
            raise DataError(
                f"the generators make {tuple(sample.image.shape)} samples but the real batch is "
                f"{tuple(image.shape)}: the generators' spatial_size and the data's must agree"
            )
        real_onehot = one_hot_labels(label, sample.annotation_onehot.shape[1])
        u = self.uncertainty(image, sample.image.detach(), real_onehot, sample.annotation_onehot)
        reward = -(self.image_weight * u.image + self.annotation_weight * u.annotation)
        baseline = self.baseline(reward)
        loss = reinforce_loss(sample.log_prob / sample.num_voxels, reward, baseline)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.baseline.update(reward)
        values = {
            "uncertainty": float(-reward.mean()),
            "uncertainty_image": float(u.image.mean()),
            "uncertainty_annotation": float(u.annotation.mean()),
            "reward": float(reward.mean()),
            "baseline": float(baseline.mean()),
            "loss": float(loss.detach()),
        }
        self.means.update(engine, values)
        return {
            **{key: values[key] for key in ("uncertainty", "reward", "baseline", "loss")},
            "losses": values,
            "image": image,
            "label": label,
            "pred": sample.image.detach(),
            "pred_label": sample.annotation,
            "pseudo_mask": sample.pseudo_mask.detach(),
            "uncertainty_map": u.image_map,
        }


def _check_optimizer(optimizer: torch.optim.Optimizer, registration: nn.Module) -> None:
    """The optimizer must not hold registration parameters (no update may reach that network)."""
    frozen = {id(p) for p in registration.parameters()}
    if any(id(p) in frozen for group in optimizer.param_groups for p in group["params"]):
        raise ConfigError(
            "optimizer holds parameters of the registration network; give it the generators' parameters only"
        )
