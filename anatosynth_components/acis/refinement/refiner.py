"""``AcisRefiner``: the ACIS refinement (paper Sec. 2.3) as a ``monai.engines.Trainer``.

Each iteration: draw a real batch (x, y) and latent noise z; sample (pm, y_hat, x_hat) from the
:class:`GeneratorPolicy`; measure Eq. 3 (:class:`AppearanceUncertainty`, frozen registration network,
no autograd) for the images (``U_image``) and the one-hot annotations (``U_annotation``); reward per
sample ``r = -(w_img * U_image / s_image + w_ann * U_annotation / s_annotation)`` with the scales ``s`` of
:class:`RewardNormaliser` (``reward_normalisation="ema"``: running means of each term over past batches,
so the two terms of Eq. 3 count on one scale; ``"none"``: ``s = 1``, the raw Eq. 3 reward); baseline b
from :class:`EmaBaseline`; one optimizer step on the generators with the REINFORCE surrogate
``-mean((r - b) * log pi(a) / N)`` (:func:`reinforce_loss`).  N, the voxels of one image, is a constant
rescaling of the step (log pi sums over N voxels; dividing keeps a learning rate meaningful across
image sizes) that leaves the gradient's direction and unbiasedness unchanged.  With Adam (the bundles'
optimizer) the step is about ``lr`` per parameter whatever that scale, as long as the gradients stay
above Adam's eps: measured on the penet generators at 256 x 256, median |gradient| 1.5e-6 (0.5 % of
the parameters below eps 1e-8), relative parameter change 6.5e-4 per step at lr 1e-5 (the bundle
README's ``lr_refine`` row).

Real sample i is paired with synthetic sample i: the real images act as the anatomy the synthetic ones
must register to consistently (Sec. 2.3: "registration between real-world and synthesized
image-annotation pairs").

**Collapse.**  Each sample's Eq. 3 error depends only on that sample and its real partner, never on
the other samples (the scales and the baseline only shift and scale rewards alike), so the reward holds
no term for diversity.  At *equal* registration error a collapsed
generator (one output for every z) earns exactly the reward of a diverse one and the policy gradient
has no component towards collapse (``tests/test_refinement_diversity.py``: with every position of a
categorical policy registering to the same error, the exact gradient of the expected reward is 0 and
the uniform and the collapsed policy score the same).  But the expected reward is maximised by putting
all mass on the output that registers best to the real data, so when outputs differ in how easily they
register, the gradient *does* lower the policy's entropy towards the easiest one (the same test shows
it); nothing in Eq. 3 stops a collapse onto an easily-registered mode.  The refinement report
(:class:`~anatosynth_components.acis.refinement.report.RefinementReport`, ``models/refinement_report.json``)
therefore measures the diversity of a fixed set of samples (mean pairwise MS-SSIM) before and after and
warns when it fell.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from anatosynth_components.acis.one_hot import label_one_hot
from anatosynth_components.acis.refinement.policy import GeneratorPolicy
from anatosynth_components.acis.refinement.real_batch import real_batch
from anatosynth_components.acis.refinement.registration_trainer import REGISTRATION_HINT
from anatosynth_components.acis.refinement.reinforce import EmaBaseline, reinforce_loss
from anatosynth_components.acis.refinement.reward import RewardNormaliser, normalised_reward
from anatosynth_components.acis.refinement.uncertainty import AppearanceUncertainty
from anatosynth_components.checks import non_negative
from anatosynth_components.engines.checkpoint import load_network
from anatosynth_components.engines.modules import unwrap
from anatosynth_components.engines.trainer import AnatoSynthTrainer
from anatosynth_components.errors import ConfigError, DataError
from anatosynth_components.network_size import check_networks_fit


class AcisRefiner(AnatoSynthTrainer):
    """Policy-gradient refinement of the three ACIS generators with the Eq. 3 reward.

    Args:
        device: where the networks live.
        max_epochs: epochs of refinement (in the bundles ``refine_iterations / epoch_length``, with a
            loader of ``epoch_length`` batches per epoch from
            :func:`~anatosynth_components.engines.budget_sampler`).
        train_data_loader: real batches ``{"image": (B, 1, *S) in [0, 1], "label": (B, 1, *S) ids}``.
        pm_generator, annotation_generator, image_generator: the generators (see
            :class:`GeneratorPolicy` for the interface); e.g. ``@network.pseudo_mask_generator``.
        registration_network: a registration network with MONAI ``VoxelMorph``'s ``(moving, fixed) ->
            (warped, ddf)`` contract (:class:`DiffeomorphicRegistration`); frozen.
        optimizer: optimizer of the generators' parameters only (a registration parameter in it is a
            ``ConfigError``).
        registration_checkpoint: ``registration.pt`` (the registration network's state dict) to load into
            ``registration_network`` now; missing -> ``ConfigError`` naming it and ``registration_hint``.
            ``None`` uses the network as given.
        registration_hint: what trains the checkpoint (shown when it is missing).
        num_passes: T of Eq. 3.
        image_weight, annotation_weight: w_img, w_ann of the reward.
        reward_normalisation: ``"ema"`` (divide each Eq. 3 term by the running mean of that term over
            past batches, momentum ``baseline_momentum``; :class:`RewardNormaliser`) or ``"none"``.
        pm_sigma, image_sigma: exploration noise of the policy.
        baseline_momentum: momentum of :class:`EmaBaseline` and of the reward scales.
        kwargs: ``amp``, ``checkpoint_dir``, ``resume``, ``model`` and ``model_file`` (e.g. the
            ``AcisPairGenerator`` holding the three generators, written as ``models/model_refined.pt``
            after every epoch), ``train_handlers``, ... of
            :class:`~anatosynth_components.engines.AnatoSynthTrainer`.  The checkpoint holds the three
            generators, the optimizer, the reward baseline, the reward scales and the engine state.

    ``engine.state.output``: ``{"uncertainty", "reward", "baseline", "loss"}`` (batch means, floats;
    ``uncertainty = w_img * U_image + w_ann * U_annotation``, the raw weighted Eq. 3; ``reward`` the
    normalised one, ``= -uncertainty`` with ``reward_normalisation="none"``),
    ``"losses"`` (those and ``uncertainty_image``, ``uncertainty_annotation``, ``scale_image``,
    ``scale_annotation``, for StatsHandler / TensorBoardStatsHandler), ``"image"``, ``"label"`` (real),
    ``"pred"``, ``"pred_label"``,
    ``"pseudo_mask"`` (the sample), ``"uncertainty_map"`` (B, 1, *S) of the images;
    ``engine.state.metrics``: epoch means of the ``losses`` entries.

    Example::

        refiner = AcisRefiner("cpu", 10, loader, net.pseudo_mask_generator, net.annotation_generator,
                              net.image_generator, DiffeomorphicRegistration(2),
                              torch.optim.Adam(net.parameters(), 1e-5),
                              registration_checkpoint="models/registration.pt",
                              checkpoint_dir="models/refine", model=net,
                              model_file="models/model_refined.pt")
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
        reward_normalisation: str = "ema",
        **kwargs: Any,
    ) -> None:
        size = getattr(unwrap(pm_generator), "spatial_size", None)
        if size is not None:  # the registration network is not told the image size
            check_networks_fit(size, registration_network)
        super().__init__(device, max_epochs, train_data_loader, **kwargs)
        if registration_checkpoint is not None:
            load_network(registration_network, registration_checkpoint, registration_hint)
        _check_optimizer(optimizer, registration_network)
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
        self.normaliser = RewardNormaliser(reward_normalisation, baseline_momentum)
        self.weights = {"image": self.image_weight, "annotation": self.annotation_weight}
        self.generators = {
            "pm_generator": pm_generator,
            "annotation_generator": annotation_generator,
            "image_generator": image_generator,
        }

    def checkpoint_objects(self) -> dict[str, Any]:
        return self.generators | {
            "optimizer": self.optimizer,
            "baseline": self.baseline,
            "reward_scales": self.normaliser,
        }

    def train_step(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        image, label = real_batch(batch, self.state.device, self.non_blocking)
        self.policy.train()
        z = torch.randn(self.policy.latent_shape(image.shape[0]), device=image.device)
        with self.precision.autocast():
            sample = self.policy.sample(z)
        if sample.image.shape != image.shape:
            raise DataError(
                f"the generators make {tuple(sample.image.shape)} samples but the real batch is "
                f"{tuple(image.shape)}: the generators' spatial_size and the data's must agree"
            )
        real_onehot = label_one_hot(label, sample.annotation_onehot.shape[1], "batch 'label'")
        with self.precision.autocast():
            u = self.uncertainty(
                image, sample.image.detach().float(), real_onehot, sample.annotation_onehot.float()
            )
        terms = {"image": u.image.float(), "annotation": u.annotation.float()}
        scales = self.normaliser(terms)
        reward = normalised_reward(terms, self.weights, scales)
        baseline = self.baseline(reward)
        loss = reinforce_loss(sample.log_prob.float() / sample.num_voxels, reward, baseline)
        self.precision.minimize(loss, self.optimizer)
        self.precision.update()
        self.baseline.update(reward)
        self.normaliser.update(terms)
        values = {
            "uncertainty": float(sum(self.weights[k] * terms[k] for k in terms).mean()),
            "uncertainty_image": float(u.image.mean()),
            "uncertainty_annotation": float(u.annotation.mean()),
            "scale_image": float(scales["image"].mean()),
            "scale_annotation": float(scales["annotation"].mean()),
            "reward": float(reward.mean()),
            "baseline": float(baseline.mean()),
            "loss": float(loss.detach()),
        }
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
