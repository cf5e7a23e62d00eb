"""ACIS refinement (paper Sec. 2.3, Eq. 3): registration uncertainty as a policy-gradient reward.

Modules (one concept each):
    registration: ``DiffeomorphicRegistration`` (MONAI VoxelMorph, scaling and squaring, MC dropout)
        and ``mc_dropout`` (the T stochastic passes of Eq. 3).
    jacobian: ``jacobian_determinant``, ``folding_fraction`` of a displacement field.
    registration_loss: ``RegistrationLoss`` (LNCC or MSE + diffusion or bending energy [+ label Dice]).
    registration_trainer: ``RegistrationTrainer``, unsupervised training on real pairs -> ``registration.pt``.
    uncertainty: ``AppearanceUncertainty``, Eq. 3 for images and annotations, frozen and without autograd.
    policy: ``GeneratorPolicy``, the three generators as a stochastic policy with a log-density.
    reinforce: ``reinforce_loss`` and ``EmaBaseline`` (REINFORCE with a baseline, ref. [25]).
    reward: ``RewardNormaliser``, ``normalised_reward`` (the two Eq. 3 terms on one scale).
    refiner: ``AcisRefiner``, the refinement trainer.
    report: ``RefinementReport``, diversity (mean pairwise MS-SSIM) and Eq. 3 of fixed samples before
        and after refinement -> ``models/refinement_report.json``.

Workflow (the ACIS bundles' ``configs/refine.json``, merged over ``train.json``): run id
``registration`` trains the registration network on pairs of real training items
(``RegistrationTrainer``: ``models/registration.pt`` = its weights, ``models/registration/`` = its
training checkpoints); run id ``refining`` (or ``run``) loads ``models/model.pt`` into the pair generator
and ``registration.pt`` into the registration network, then refines the three generators
(``AcisRefiner``: ``models/model_refined.pt`` after every epoch, ``models/refine/`` = its training
checkpoints; ``RefinementReport``: ``models/refinement_report.json``, diversity and Eq. 3 of fixed
samples at the start and the end).  Both budgets are counted in iterations (``registration_iterations``,
``refine_iterations``, in epochs of ``epoch_length`` batches drawn with replacement), the same whatever
the number of real volumes.  The refiner loads ``registration.pt`` in its constructor: a missing file is
a ``ConfigError`` naming it and what makes it.  The epoch means (``mean_uncertainty``, ``mean_reward``,
``mean_baseline``, ...) are in ``engine.state.metrics``, which the ``StatsHandler`` epoch log prints.
"""

from anatosynth_components.acis.refinement.jacobian import folding_fraction, jacobian_determinant
from anatosynth_components.acis.refinement.policy import GeneratorPolicy, PolicySample
from anatosynth_components.acis.refinement.real_batch import real_batch
from anatosynth_components.acis.refinement.refiner import AcisRefiner
from anatosynth_components.acis.refinement.registration import DiffeomorphicRegistration, mc_dropout
from anatosynth_components.acis.refinement.registration_loss import RegistrationLoss
from anatosynth_components.acis.refinement.registration_trainer import REGISTRATION_HINT, RegistrationTrainer
from anatosynth_components.acis.refinement.reinforce import EmaBaseline, reinforce_loss
from anatosynth_components.acis.refinement.report import RefinementReport
from anatosynth_components.acis.refinement.reward import (
    REWARD_NORMALISATIONS,
    RewardNormaliser,
    normalised_reward,
)
from anatosynth_components.acis.refinement.uncertainty import AppearanceUncertainty, Uncertainty

__all__ = [
    "REGISTRATION_HINT",
    "REWARD_NORMALISATIONS",
    "AcisRefiner",
    "AppearanceUncertainty",
    "DiffeomorphicRegistration",
    "EmaBaseline",
    "GeneratorPolicy",
    "PolicySample",
    "RefinementReport",
    "RegistrationLoss",
    "RegistrationTrainer",
    "RewardNormaliser",
    "Uncertainty",
    "folding_fraction",
    "jacobian_determinant",
    "mc_dropout",
    "normalised_reward",
    "real_batch",
    "reinforce_loss",
]
