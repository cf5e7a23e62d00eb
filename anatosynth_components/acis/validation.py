"""``PhaseValidationHandler``: validation of a training phase, numbered on the run's global epoch axis.

Both ACIS phases validate with one evaluator; phase 2's epochs restart at 1, so its validations would
overwrite phase 1's in TensorBoard.  This is the package's ``FinalValidationHandler`` (MONAI's
``ValidationHandler`` that also validates after the last epoch) with ``epoch_offset`` added to the
epoch the validator is run with (phase 2: the number of phase-1 epochs).
"""

from __future__ import annotations

from typing import Any

from ignite.engine import Engine
from monai.engines import Evaluator

from anatosynth_components.handlers.final_validation import FinalValidationHandler


class PhaseValidationHandler(FinalValidationHandler):
    """``FinalValidationHandler(interval, validator, epoch_level=True)`` run at ``epoch + epoch_offset``."""

    def __init__(
        self, interval: int, validator: Evaluator | None = None, epoch_offset: int = 0, **kwargs: Any
    ) -> None:
        super().__init__(interval=interval, validator=validator, **kwargs)
        self.epoch_offset = int(epoch_offset)

    def __call__(self, engine: Engine) -> None:
        if self.validator is None:
            raise RuntimeError(
                "please set validator in __init__() or call `set_validator()` before training."
            )
        self.validator.run(engine.state.epoch + self.epoch_offset)
