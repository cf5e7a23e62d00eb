"""Training engines and steps."""

from anatosynth_components.engines.anatomask_step import anatomask_train_step

__all__ = ["anatomask_train_step"]
