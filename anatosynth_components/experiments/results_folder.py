"""The results folder of one experiment: its exact configuration, its finished cells, its outputs.

Layout::

    <out>/config.json          {"experiment": name, "config": {...}, "recorded": {version, created, command}}
    <out>/cells/<cell>.json    one finished cell each (written atomically when the cell ends)
    <out>/results.json         every number: configuration, cells, summaries, p-values
    <out>/table.md, *.png      tables and plots, rebuilt from the cells on every run

A folder belongs to one configuration.  Opening it again with the same configuration resumes it
(finished cells are kept); with another configuration it is a :class:`ConfigError` that names the
keys that differ, so results of two configurations are never mixed.  Pass ``overwrite=True``
(``--overwrite`` on the command line) to discard the old results, or choose another folder.

Example:
    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> folder = ResultsFolder.open(root, "demo", {"epochs": 2})
    >>> ResultsFolder.open(root, "demo", {"epochs": 3})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    anatosynth_components.errors.ConfigError: ...another configuration (epochs: 2 there, 3 now)...
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anatosynth_components import __version__
from anatosynth_components.atomic import atomic_path, write_json
from anatosynth_components.errors import ConfigError, DataError

CONFIG_FILE = "config.json"
CELLS_DIR = "cells"


def canonical(obj: Any) -> Any:
    """``obj`` as plain JSON values (tuples become lists, paths strings), for exact comparison."""
    return json.loads(json.dumps(obj, default=str))


def differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Human-readable differences between two JSON values: ``["epochs: 2 there, 3 now", ...]``."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            name = f"{prefix}{key}"
            if key not in old:
                out.append(f"{name}: absent there, {json.dumps(new[key])} now")
            elif key not in new:
                out.append(f"{name}: {json.dumps(old[key])} there, absent now")
            else:
                out += differences(old[key], new[key], f"{name}.")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: {json.dumps(old)} there, {json.dumps(new)} now"]


@dataclass
class ResultsFolder:
    """An experiment's results folder (see the module docstring).

    Args:
        root: the folder.
        experiment: the experiment's name (``ablation``, ``segmentation``, ``reconstruction``).
        config: the exact configuration (plain JSON values).
    """

    root: Path
    experiment: str
    config: dict[str, Any]

    @classmethod
    def open(
        cls, root: str | os.PathLike, experiment: str, config: dict[str, Any], overwrite: bool = False
    ) -> ResultsFolder:
        """Create the folder for ``config``, or reopen it when it was made for the same one.

        Raises:
            ConfigError: the folder holds results of another experiment or configuration (and
                ``overwrite`` is False), or its ``config.json`` is unreadable.
        """
        root = Path(root).resolve()  # absolute: subprocesses (bundle workflows) run elsewhere
        config = canonical(config)
        path = root / CONFIG_FILE
        if overwrite and root.exists():
            shutil.rmtree(root)
        if path.is_file():
            try:
                doc = json.loads(path.read_text())
                old_experiment, old_config = doc["experiment"], doc["config"]
            except (ValueError, KeyError, TypeError) as err:
                raise ConfigError(
                    f"{path}: unreadable experiment configuration ({err}); delete the folder "
                    "or pass --overwrite"
                ) from err
            diff = (
                [f"experiment: {old_experiment} there, {experiment} now"]
                if old_experiment != experiment
                else []
            )
            diff += differences(old_config, config)
            if diff:
                raise ConfigError(
                    f"{path} holds the results of another configuration ({'; '.join(diff[:8])}"
                    f"{'; ...' if len(diff) > 8 else ''}); choose another --out folder, or pass --overwrite "
                    "to discard those results"
                )
        elif root.is_dir() and any(root.iterdir()):
            raise ConfigError(
                f"{root} exists, is not empty and holds no {CONFIG_FILE}: it is not an experiment's results "
                "folder; choose another --out folder"
            )
        else:
            recorded = {
                "anatosynth_version": __version__,
                "created": datetime.datetime.now().isoformat(timespec="seconds"),
                "command": " ".join(sys.argv),
            }
            write_json(path, {"experiment": experiment, "config": config, "recorded": recorded})
        (root / CELLS_DIR).mkdir(parents=True, exist_ok=True)
        return cls(root, experiment, config)

    def path(self, name: str) -> Path:
        """A path inside the folder (parents created)."""
        out = self.root / name
        out.parent.mkdir(parents=True, exist_ok=True)
        return out

    def cell_file(self, cell_id: str) -> Path:
        if not cell_id or any(c in cell_id for c in "/\\") or cell_id.startswith("."):
            raise ConfigError(f"cell id {cell_id!r} must be a plain file name")
        return self.root / CELLS_DIR / f"{cell_id}.json"

    def finished(self, cell_id: str) -> dict[str, Any] | None:
        """The stored record of a finished cell, or None.

        Raises:
            DataError: the cell file exists but is not a valid record (it was edited by hand).
        """
        path = self.cell_file(cell_id)
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text())
        except ValueError as err:
            raise DataError(f"{path}: corrupt cell record ({err}); delete it to recompute that cell") from err
        if not isinstance(record, dict) or record.get("id") != cell_id or "result" not in record:
            raise DataError(f"{path}: not a record of cell {cell_id!r}; delete it to recompute that cell")
        return record

    def store(self, record: dict[str, Any]) -> Path:
        """Write a finished cell's record atomically."""
        return write_json(self.cell_file(record["id"]), canonical(record))

    def write_json(self, name: str, obj: Any) -> Path:
        return write_json(self.path(name), canonical(obj))

    def write_results(
        self, cells: dict[str, Any], summary: dict[str, Any], plot: str, **extra: Any
    ) -> dict[str, Any]:
        """Write and return ``results.json``: ``{"experiment", "config", **extra, "cells", "summary",
        "table": "table.md", "plot"}`` (every number of the experiment, next to its table and plot)."""
        doc = {
            "experiment": self.experiment,
            "config": self.config,
            **extra,
            "cells": cells,
            "summary": summary,
            "table": "table.md",
            "plot": plot,
        }
        self.write_json("results.json", doc)
        return doc

    def write_text(self, name: str, text: str) -> Path:
        with atomic_path(self.path(name)) as tmp:
            tmp.write_text(text)
        return self.root / name
