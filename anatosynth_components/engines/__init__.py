"""Training engines: the AnatoMaskGAN and ACIS steps, their MONAI trainers, and evaluation helpers."""

from anatosynth_components.engines.acis_evaluator import AcisEvaluator
from anatosynth_components.engines.acis_step import AcisParts, pseudo_mask_gan_step, synthesis_step
from anatosynth_components.engines.acis_trainer import AcisTrainer
from anatosynth_components.engines.anatomask_step import anatomask_train_step, frozen, judge
from anatosynth_components.engines.anatomask_trainer import AnatoMaskTrainer, unwrap
from anatosynth_components.engines.prepare_batch import MaskToImageBatch
from anatosynth_components.engines.synthesis_report import SynthesisReport

__all__ = [
    "AcisEvaluator",
    "AcisParts",
    "AcisTrainer",
    "AnatoMaskTrainer",
    "MaskToImageBatch",
    "SynthesisReport",
    "anatomask_train_step",
    "frozen",
    "judge",
    "pseudo_mask_gan_step",
    "synthesis_step",
    "unwrap",
]
