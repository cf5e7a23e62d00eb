"""Training machinery shared by both methods: the trainer base (``AnatoSynthTrainer``: amp, epoch means,
``TerminateOnNan``, checkpoints, resume), mixed precision, the checkpoint files, helpers on networks."""

from anatosynth_components.engines.checkpoint import (
    TrainingCheckpoint,
    checkpoint_files,
    latest_checkpoint,
    load_checkpoint,
    load_network,
    read_checkpoint,
)
from anatosynth_components.engines.epoch_means import EpochMeans
from anatosynth_components.engines.modules import frozen, unwrap
from anatosynth_components.engines.precision import FULL_PRECISION, Precision, amp_dtype
from anatosynth_components.engines.trainer import AnatoSynthTrainer

__all__ = [
    "FULL_PRECISION",
    "AnatoSynthTrainer",
    "EpochMeans",
    "Precision",
    "TrainingCheckpoint",
    "amp_dtype",
    "checkpoint_files",
    "frozen",
    "latest_checkpoint",
    "load_checkpoint",
    "load_network",
    "read_checkpoint",
    "unwrap",
]
