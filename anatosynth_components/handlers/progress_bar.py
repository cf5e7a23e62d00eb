"""``LossProgressBar``: Ignite's tqdm progress bar, showing the current losses."""

from __future__ import annotations

from typing import Any

from ignite.engine import Engine
from ignite.handlers import ProgressBar


class LossProgressBar(ProgressBar):
    """Ignite's ``ProgressBar`` attached with an ``output_transform``, so a bundle config can list
    it among the handlers (MONAI calls ``attach(engine)`` with the engine alone).

    Args:
        keys: entries of the ``"losses"`` dict to show (default: all).
        persist: keep the finished bar of every epoch on screen.
    """

    def __init__(self, keys: list[str] | None = None, persist: bool = False, **kwargs: Any) -> None:
        super().__init__(persist=persist, **kwargs)
        self.keys = keys

    def _losses(self, output: dict[str, Any]) -> dict[str, float]:
        losses = output.get("losses", {})
        return {k: v for k, v in losses.items() if self.keys is None or k in self.keys}

    def attach(self, engine: Engine, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        kwargs.setdefault("output_transform", self._losses)
        super().attach(engine, *args, **kwargs)
