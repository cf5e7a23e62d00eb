"""Batch inference that keeps going: an input that fails with a ``DataError`` is skipped, every other
output is written, and the run ends with one ``DataError`` that lists each failed input and why.

Two MONAI parts, wired in ``inference.json``:

- :class:`SkipFailedDataset` (a MONAI ``Dataset``): an item whose transform raises a ``DataError``
  (a corrupt file, label ids outside the set, a 2-D file) comes back as ``{FAILED_KEY: message}``
  instead of stopping the loader.  The marker is a plain dict of strings, so it crosses DataLoader
  worker processes like any item.
- :class:`SkipFailedEvaluator` (MONAI's ``SupervisedEvaluator``): a marker batch is recorded and
  skipped (no network call, no post-processing), an item whose inference or saving raises a
  ``DataError`` is recorded and skipped too, and after the run, when anything failed, one
  ``DataError`` names each failed file with its reason, so the process exits non-zero.

Only ``DataError`` (bad input) is skipped; any other error (a bug, out of memory, a ``ConfigError``
that every item would meet) stops the run as before.  Inference batches hold one item
(``batch_size`` 1), as the bundles' data loaders do.

Example::

    "dataset": {"_target_": "anatosynth_components.bundle.SkipFailedDataset",
                "data": "$anatosynth_components.bundle.synthesis_items(...)", "transform": "@preprocessing"},
    "evaluator": {"_target_": "anatosynth_components.bundle.SkipFailedEvaluator", ...}
    # (the rest: SupervisedEvaluator's arguments)

    # a folder a.nii.gz, b.nii.gz (truncated), c.nii.gz: a and c are synthesized, then
    # DataError: 1 input failed and was skipped; every other output was written:
    #   /in/b.nii.gz: cannot read the image file (...)
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from typing import Any

from monai.data import Dataset, MetaTensor
from monai.engines import SupervisedEvaluator

from anatosynth_components.errors import DataError, find_cause

logger = logging.getLogger(__name__)

#: the key of a failed item's marker; its value is the message (``"<file>: <problem>"``)
FAILED_KEY = "failed_input"


def named(message: str, source: Any) -> str:
    """``message``, prefixed with ``source`` (the input's file name) when it does not name it already."""
    if source is None or str(source) in message:
        return message
    return f"{source}: {message}"


class SkipFailedDataset(Dataset):
    """A MONAI ``Dataset`` whose items that raise a ``DataError`` in ``transform`` return
    ``{FAILED_KEY: "<file>: <problem>"}`` instead (the file is ``item[source_key]``).

    Args:
        data: the items (dicts).
        transform: the transform of each item (``preprocessing``).
        source_key: the item key that holds the input's file name.
    """

    def __init__(self, data: Any, transform: Any = None, source_key: Hashable = "image") -> None:
        super().__init__(data, transform)
        self.source_key = source_key

    def _transform(self, index: int) -> Any:
        try:
            return super()._transform(index)
        except Exception as err:
            cause = find_cause(err, DataError)
            if cause is None:
                raise
            item = self.data[index]
            source = item.get(self.source_key) if isinstance(item, Mapping) else None
            return {FAILED_KEY: named(str(cause), source)}


def batch_source(batch: Any, key: Hashable) -> str | None:
    """The input file of a one-item batch (``batch[key]``'s ``filename_or_obj``), or None."""
    value = batch.get(key) if isinstance(batch, Mapping) else None
    if isinstance(value, MetaTensor):
        name = value.meta.get("filename_or_obj")
        name = name[0] if isinstance(name, (list, tuple)) and name else name
        return None if name is None else str(name)
    return None


class SkipFailedEvaluator(SupervisedEvaluator):
    """MONAI's ``SupervisedEvaluator`` (same arguments) that skips failed inputs and lists them at the end.

    Args:
        source_key: the batch key whose ``MetaTensor`` names the input file (for errors raised during
            inference or saving).
        args, kwargs: ``SupervisedEvaluator``'s.

    Attributes:
        failures: the messages of the failed inputs, in order, each once.
    """

    def __init__(self, *args: Any, source_key: Hashable = "image", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.source_key = source_key
        self.failures: list[str] = []

    def record(self, message: str) -> None:
        """Note one failed input (the same message once) and log it now."""
        if message not in self.failures:
            self.failures.append(message)
            logger.warning("skipped %s", message)

    def _iteration(self, engine: Any, batchdata: Any) -> dict:
        failed = batchdata.get(FAILED_KEY) if isinstance(batchdata, Mapping) else None
        if failed is not None:
            for message in failed if isinstance(failed, (list, tuple)) else [failed]:
                self.record(str(message))
            return {}
        try:
            return super()._iteration(engine, batchdata)
        except Exception as err:
            cause = find_cause(err, DataError)
            if cause is None:
                raise
            self.record(named(str(cause), batch_source(batchdata, self.source_key)))
            return {}

    def report(self) -> str:
        """The message of the final error: how many inputs failed, then one line per input."""
        n = len(self.failures)
        head = f"{n} input failed and was skipped" if n == 1 else f"{n} inputs failed and were skipped"
        return f"{head}; every other output was written:\n" + "\n".join(f"  {m}" for m in self.failures)

    def run(self, global_epoch: int = 1) -> None:
        """Run MONAI's evaluation over every input, then raise one ``DataError`` (:meth:`report`) if any
        input failed."""
        self.failures = []
        super().run(global_epoch)
        if self.failures:
            raise DataError(self.report())
