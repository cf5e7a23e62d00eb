"""``EpochMeans``: running means of per-iteration scalars in ``engine.state.metrics``, reset each epoch.

When an epoch ends, ``engine.state.metrics[name]`` holds the epoch mean of every value passed to
:meth:`EpochMeans.update`, which is what MONAI's ``StatsHandler`` (epoch log) and
``TensorBoardStatsHandler`` print.  A non-finite value stops training with a ``FloatingPointError``.

Example::

    >>> from ignite.engine import Engine
    >>> engine = Engine(lambda e, b: None)
    >>> means = EpochMeans(engine)
    >>> means.update(engine, {"loss": 1.0}); means.update(engine, {"loss": 3.0})
    >>> engine.state.metrics["loss"]
    2.0
"""

from __future__ import annotations

import math

from ignite.engine import Engine, Events


class EpochMeans:
    """Attach to ``engine``; :meth:`update` adds one iteration's values."""

    def __init__(self, engine: Engine, prefix: str = "") -> None:
        self.prefix = prefix
        self._sums: dict[str, tuple[float, int]] = {}
        engine.add_event_handler(Events.EPOCH_STARTED, lambda _: self._sums.clear())

    def update(self, engine: Engine, values: dict[str, float]) -> None:
        bad = sorted(k for k, v in values.items() if not math.isfinite(v))
        if bad:
            raise FloatingPointError(
                f"epoch {engine.state.epoch}, iteration {engine.state.iteration}: non-finite {bad} "
                f"({ {k: values[k] for k in bad} }); lower the learning rate or check the data"
            )
        for name, value in values.items():
            total, count = self._sums.get(name, (0.0, 0))
            self._sums[name] = (total + float(value), count + 1)
            engine.state.metrics[self.prefix + name] = (total + float(value)) / (count + 1)
