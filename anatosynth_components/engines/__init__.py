"""Training engines: the AnatoMaskGAN step, its MONAI trainer, and evaluation helpers."""

from anatosynth_components.engines.anatomask_step import anatomask_train_step, frozen, judge
from anatosynth_components.engines.anatomask_trainer import AnatoMaskTrainer, unwrap
from anatosynth_components.engines.prepare_batch import MaskToImageBatch
from anatosynth_components.engines.synthesis_report import SynthesisReport

__all__ = [
    "AnatoMaskTrainer",
    "MaskToImageBatch",
    "SynthesisReport",
    "anatomask_train_step",
    "frozen",
    "judge",
    "unwrap",
]
