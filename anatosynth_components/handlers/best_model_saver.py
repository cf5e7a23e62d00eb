"""``BestModelSaver``: MONAI's key-metric ``CheckpointSaver`` whose best score survives ``resume``.

MONAI's ``CheckpointSaver(save_key_metric=True)`` remembers the best score only in memory, so a
resumed training run would overwrite ``model.pt`` at its first validation, however bad.  MONAI's own
remedy (``key_metric_save_state=True``) stores the record inside ``model.pt``, which turns the file
from a plain state dict (the model-zoo convention that ``ckpt_export``, MONAI Label and users'
``load_state_dict(torch.load(...))`` expect) into a dict of two entries.  This saver keeps ``model.pt``
as it is and writes the record beside it, ``model.pt.best.json``::

    {"metric": "val_psnr", "score": 27.1, "epoch": 40, "file": "model.pt"}

The record is written (atomically) right after each new best model; on ``resume`` it is read back
into the saver's tracking list, so only a better model replaces ``model.pt``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from ignite.engine import Engine
from monai.handlers import CheckpointSaver

from anatosynth_components.atomic import write_json
from anatosynth_components.errors import ConfigError

RECORD_SUFFIX = ".best.json"


class BestModelSaver(CheckpointSaver):
    """Save ``save_dict`` to ``save_dir/filename`` whenever the evaluator's key metric improves.

    Args:
        save_dir: the bundle's ``models`` folder.
        save_dict: what to save, e.g. ``{"model": network}`` (one entry: the file is its state dict).
        filename: the file name (``model.pt``, the bundle convention).
        resume: read the record of an earlier run (``<filename>.best.json``) so that only a better model
            replaces the file; the evaluator's ``best_metric`` / ``best_metric_epoch`` are set from it.
        kwargs: further ``CheckpointSaver`` arguments (``key_metric_name``, ``key_metric_negative_sign``,
            ...).

    ``resume`` with ``model.pt`` present but no record (a file from another tool) is a ``ConfigError``:
    the run could not tell whether its models are better.  ``resume`` with neither file (no validation
    has run yet) starts a fresh record.

    Example (a validation handler of ``train.json``)::

        {"_target_": "anatosynth_components.handlers.BestModelSaver", "save_dir": "@ckpt_dir",
         "save_dict": {"model": "@network"}, "resume": "@resume"}
    """

    def __init__(
        self,
        save_dir: str | os.PathLike,
        save_dict: dict[str, Any],
        filename: str = "model.pt",
        resume: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            save_dir=str(save_dir),
            save_dict=save_dict,
            save_key_metric=True,
            key_metric_n_saved=1,
            key_metric_filename=filename,
            **kwargs,
        )
        self.path = Path(save_dir) / filename
        self.record_path = Path(f"{self.path}{RECORD_SUFFIX}")
        self.sign = -1.0 if kwargs.get("key_metric_negative_sign", False) else 1.0
        self.resume = bool(resume)

    def attach(self, engine: Engine) -> None:
        super().attach(engine)
        if self.resume:
            record = self.read_record()
            if record is not None:
                self._key_metric_checkpoint.load_state_dict(
                    {"_saved": [(self.sign * record["score"], self.path.name)]}
                )
                engine.state.best_metric = record["score"]
                engine.state.best_metric_epoch = record["epoch"]
                self.logger.info(f"best model so far: {self.path} ({record['metric']} {record['score']:.4f})")

    def read_record(self) -> dict[str, Any] | None:
        """The record of the current best model, or ``None`` when no model has been saved yet."""
        if not self.record_path.is_file():
            if self.path.is_file():
                raise ConfigError(
                    f"{self.path}: exists without its best-metric record {self.record_path.name}, so a "
                    "resumed run cannot tell whether its models are better; move the file away or train "
                    "without resume"
                )
            return None
        try:
            record = json.loads(self.record_path.read_text())
            score = float(record["score"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"{self.record_path}: unreadable best-metric record ({err})") from err
        if not math.isfinite(score):
            raise ConfigError(f"{self.record_path}: score {record['score']!r} is not a finite number")
        return {"metric": record.get("metric"), "score": score, "epoch": int(record.get("epoch", -1))}

    def metrics_completed(self, engine: Engine) -> None:
        before = list(self._key_metric_checkpoint._saved)
        super().metrics_completed(engine)
        saved = self._key_metric_checkpoint._saved
        if saved and saved != before:
            record = {
                "metric": getattr(engine.state, "key_metric_name", None),
                "score": self.sign * float(saved[-1].priority),
                "epoch": int(engine.state.epoch),
                "file": self.path.name,
            }
            write_json(self.record_path, record)
