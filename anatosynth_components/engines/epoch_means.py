"""``EpochMeans``: running means of per-iteration scalars in ``engine.state.metrics``, reset each epoch.

When an epoch ends, ``engine.state.metrics[prefix + name]`` holds the epoch mean of every value passed
to :meth:`EpochMeans.update`, which is what MONAI's ``StatsHandler`` (epoch log) and
``TensorBoardStatsHandler`` print.  The default prefix ``mean_`` keeps the epoch scalars apart from the
per-iteration values that a ``TensorBoardStatsHandler`` with ``output_transform=lambda x: x["losses"]``
writes under the plain names.

Example::

    >>> from ignite.engine import Engine
    >>> engine = Engine(lambda e, b: None)
    >>> means = EpochMeans(engine)
    >>> means.update(engine, {"loss": 1.0}); means.update(engine, {"loss": 3.0})
    >>> engine.state.metrics["mean_loss"]
    2.0
"""

from __future__ import annotations

from collections.abc import Mapping

from ignite.engine import Engine, Events


class EpochMeans:
    """Attach to ``engine``; :meth:`update` adds one iteration's values."""

    def __init__(self, engine: Engine, prefix: str = "mean_") -> None:
        self.prefix = prefix
        self._sums: dict[str, tuple[float, int]] = {}
        engine.add_event_handler(Events.EPOCH_STARTED, lambda _: self._sums.clear())

    def update(self, engine: Engine, values: Mapping[str, float]) -> None:
        for name, value in values.items():
            total, count = self._sums.get(name, (0.0, 0))
            self._sums[name] = (total + float(value), count + 1)
            engine.state.metrics[self.prefix + name] = (total + float(value)) / (count + 1)
