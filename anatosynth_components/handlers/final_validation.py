"""``FinalValidationHandler``: MONAI's ``ValidationHandler`` that also validates after the last epoch.

With ``interval`` epochs between validations, a run whose ``max_epochs`` is not a multiple of the
interval would end unvalidated (and a short run would never write the best model); this handler
runs the validator once more when training completes on an epoch that was not validated.
"""

from __future__ import annotations

from ignite.engine import Engine, Events
from monai.handlers import ValidationHandler


class FinalValidationHandler(ValidationHandler):
    """``ValidationHandler(interval, validator, epoch_level=True)`` plus a validation at the end."""

    def attach(self, engine: Engine) -> None:
        super().attach(engine)
        engine.add_event_handler(Events.COMPLETED, self._final)

    def _final(self, engine: Engine) -> None:
        if engine.state.epoch % self.interval != 0:
            self(engine)
