"""Training machinery shared by both methods: the trainer base (``AnatoSynthTrainer``: amp, epoch means,
``TerminateOnNan``, checkpoints, resume with fallback, reruns), mixed precision, the checkpoint files,
helpers on networks."""

from anatosynth_components.engines.checkpoint import (
    DurableDiskSaver,
    TrainingCheckpoint,
    checkpoint_epoch,
    checkpoint_files,
    latest_checkpoint,
    load_checkpoint,
    load_network,
    load_states,
    newest_readable_checkpoint,
    read_checkpoint,
    resume_checkpoint,
    set_aside_earlier_run,
)
from anatosynth_components.engines.epoch_means import EpochMeans
from anatosynth_components.engines.iteration_budget import budget_epochs, budget_sampler
from anatosynth_components.engines.modules import frozen, unwrap
from anatosynth_components.engines.precision import FULL_PRECISION, Precision, amp_dtype
from anatosynth_components.engines.trainer import AnatoSynthTrainer

__all__ = [
    "FULL_PRECISION",
    "AnatoSynthTrainer",
    "DurableDiskSaver",
    "EpochMeans",
    "Precision",
    "TrainingCheckpoint",
    "amp_dtype",
    "budget_epochs",
    "budget_sampler",
    "checkpoint_epoch",
    "checkpoint_files",
    "frozen",
    "latest_checkpoint",
    "load_checkpoint",
    "load_network",
    "load_states",
    "newest_readable_checkpoint",
    "read_checkpoint",
    "resume_checkpoint",
    "set_aside_earlier_run",
    "unwrap",
]
