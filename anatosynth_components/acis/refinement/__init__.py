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
    refiner: ``AcisRefiner``, the refinement trainer.
    checkpoint: ``load_network`` / ``save_objects`` for ``registration.pt`` and the refiner state.

Config (``configs/refine.json``; ``network`` is the ``AcisPairGenerator`` of ``train.json``, loaded from
``models/model.pt``; ``real_loader`` yields ``{"image", "label"}`` batches of real data, B >= 2)::

    "registration_def": {"_target_": "anatosynth_components.acis.refinement.DiffeomorphicRegistration",
                         "spatial_dims": "@spatial_dims", "channels": [16, 32, 32, 32, 32, 32],
                         "final_conv_channels": [16, 16], "integration_steps": 7, "dropout": 0.15},
    "registration_net": "$@registration_def.to(@device)",
    "registration_file": "$@ckpt_dir + '/registration.pt'",
    "registration_trainer": {
        "_target_": "anatosynth_components.acis.refinement.RegistrationTrainer",
        "device": "@device", "max_epochs": "@registration_epochs", "train_data_loader": "@real_loader",
        "network": "@registration_net",
        "optimizer": {"_target_": "torch.optim.Adam", "params": "$@registration_net.parameters()",
                      "lr": 1e-4},
        "loss": {"_target_": "anatosynth_components.acis.refinement.RegistrationLoss",
                 "spatial_dims": "@spatial_dims", "similarity": "lncc", "lambda_reg": 1.0,
                 "lambda_dice": 0.0},
        "num_classes": "@num_classes", "checkpoint_file": "@registration_file",
        "train_handlers": [{"_target_": "StatsHandler", "tag_name": "registration", "iteration_log": false}]},
    "refiner": {
        "_target_": "anatosynth_components.acis.refinement.AcisRefiner",
        "device": "@device", "max_epochs": "@refine_epochs", "train_data_loader": "@real_loader",
        "pm_generator": "@network.pseudo_mask_generator",
        "annotation_generator": "@network.annotation_generator",
        "image_generator": "@network.image_generator",
        "registration_network": "@registration_net", "registration_checkpoint": "@registration_file",
        "registration_hint": "run `python -m monai.bundle run registration --config_file <refine.json>`",
        "optimizer": {"_target_": "torch.optim.Adam", "params": "$@network.parameters()", "lr": 1e-5},
        "num_passes": 10, "image_weight": 1.0, "annotation_weight": 1.0,
        "pm_sigma": 0.05, "image_sigma": 0.05, "baseline_momentum": 0.9,
        "checkpoint_file": "$@ckpt_dir + '/refine_state.pt'", "resume": "@resume",
        "model": "@network", "model_file": "$@ckpt_dir + '/model_refined.pt'",
        "train_handlers": [
            {"_target_": "StatsHandler", "tag_name": "refine", "iteration_log": false},
            {"_target_": "TensorBoardStatsHandler", "log_dir": "$@output_dir + '/refine'",
             "tag_name": "refine", "output_transform": "$lambda x: x['losses']"}]},
    "registration": ["$@registration_trainer.run()"],
    "run": ["$@refiner.run()"]

The registration network must be trained (``registration.pt``) before ``refiner`` is instantiated:
``AcisRefiner`` loads it in its constructor and a missing file is a ``ConfigError`` naming it and the
``registration_hint``.  Both trainers' epoch means (``uncertainty``, ``reward``, ``baseline``, ...) are
in ``engine.state.metrics``, which the ``StatsHandler`` epoch log prints.
"""

from anatosynth_components.acis.refinement.checkpoint import REGISTRATION_HINT, load_network, save_objects
from anatosynth_components.acis.refinement.jacobian import folding_fraction, jacobian_determinant
from anatosynth_components.acis.refinement.policy import GeneratorPolicy, PolicySample
from anatosynth_components.acis.refinement.real_batch import one_hot_labels, real_batch
from anatosynth_components.acis.refinement.refiner import AcisRefiner
from anatosynth_components.acis.refinement.registration import DiffeomorphicRegistration, mc_dropout
from anatosynth_components.acis.refinement.registration_loss import RegistrationLoss
from anatosynth_components.acis.refinement.registration_trainer import RegistrationTrainer
from anatosynth_components.acis.refinement.reinforce import EmaBaseline, reinforce_loss
from anatosynth_components.acis.refinement.uncertainty import AppearanceUncertainty, Uncertainty

__all__ = [
    "REGISTRATION_HINT",
    "AcisRefiner",
    "AppearanceUncertainty",
    "DiffeomorphicRegistration",
    "EmaBaseline",
    "GeneratorPolicy",
    "PolicySample",
    "RegistrationLoss",
    "RegistrationTrainer",
    "Uncertainty",
    "folding_fraction",
    "jacobian_determinant",
    "load_network",
    "mc_dropout",
    "one_hot_labels",
    "real_batch",
    "reinforce_loss",
    "save_objects",
]
