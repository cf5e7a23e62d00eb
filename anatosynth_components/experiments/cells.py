"""Resumable experiment cells: each cell is computed once, stored as soon as it finishes, and
skipped on a rerun.

A cell is one unit of an experiment's grid (one ablation variant, one (n, model, arm) training,
...).  :func:`run_cells` walks the grid with a tqdm progress bar; for every cell whose record is
already in the results folder it reuses the record, otherwise it calls ``compute(cell)`` and
stores ``{"id", "params", "result", "started", "finished", "wall_s"}`` atomically before moving on,
so an interrupted run loses at most the cell it was computing.

Example:
    >>> import tempfile
    >>> from anatosynth_components.experiments.results_folder import ResultsFolder
    >>> folder = ResultsFolder.open(tempfile.mkdtemp(), "demo", {})
    >>> cells = [Cell("a", {"x": 1}), Cell("b", {"x": 2})]
    >>> run = run_cells(folder, cells, lambda c: {"y": 2 * c.params["x"]}, progress=False)
    >>> run.computed, run.results["b"]["y"]
    (['a', 'b'], 4)
    >>> run_cells(folder, cells, lambda c: {"y": 0}, progress=False).computed  # a rerun computes nothing
    []
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from anatosynth_components.errors import ConfigError
from anatosynth_components.experiments.results_folder import ResultsFolder, canonical, differences


@dataclass(frozen=True)
class Cell:
    """One unit of an experiment grid: a file-name-safe ``id`` and the parameters that define it."""

    id: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class CellRun:
    """What :func:`run_cells` did: every cell's result and record, and which cells it computed."""

    results: dict[str, dict[str, Any]]
    records: dict[str, dict[str, Any]]
    computed: list[str]
    skipped: list[str]
    wall_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        """``{"computed", "skipped", "wall_s"}``: the ``this_run`` entry of ``results.json``."""
        return {"computed": self.computed, "skipped": self.skipped, "wall_s": round(self.wall_s, 1)}


def _now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def run_cells(
    folder: ResultsFolder,
    cells: Sequence[Cell],
    compute: Callable[[Cell], dict[str, Any]],
    desc: str = "cells",
    progress: bool = True,
) -> CellRun:
    """Compute the cells that are not finished yet, in order; return every cell's result.

    Raises:
        ConfigError: two cells share an id, or a stored cell was made with other parameters.
    """
    ids = [c.id for c in cells]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{desc}: duplicate cell ids {sorted({i for i in ids if ids.count(i) > 1})}")
    run, start = CellRun({}, {}, [], []), time.perf_counter()
    bar = tqdm(cells, desc=desc, unit="cell", disable=not progress, dynamic_ncols=True)
    for cell in bar:
        bar.set_postfix_str(cell.id)
        record = folder.finished(cell.id)
        params = canonical(cell.params)
        if record is not None:
            diff = differences(record.get("params"), params)
            if diff:
                raise ConfigError(
                    f"{folder.cell_file(cell.id)} was computed with other parameters ({'; '.join(diff)}); "
                    "delete it or use another results folder"
                )
            run.skipped.append(cell.id)
        else:
            started, t0 = _now(), time.perf_counter()
            result = compute(cell)
            record = {
                "id": cell.id,
                "params": params,
                "result": result,
                "started": started,
                "finished": _now(),
                "wall_s": round(time.perf_counter() - t0, 3),
            }
            folder.store(record)
            record = folder.finished(cell.id)
            run.computed.append(cell.id)
        run.records[cell.id] = record
        run.results[cell.id] = record["result"]
    run.wall_s = time.perf_counter() - start
    return run


def run_grid(
    folder: ResultsFolder,
    cells: Sequence[Cell],
    compute: Callable[[Cell], dict[str, Any]],
    outputs: Callable[[dict[str, dict[str, Any]]], dict[str, Any]],
    desc: str,
    progress: bool = True,
) -> dict[str, Any]:
    """:func:`run_cells`, then ``outputs(results)`` (an experiment's tables and figures, returning its
    ``results.json`` document) with what this run did under ``"this_run"``."""
    runs = run_cells(folder, cells, compute, desc=desc, progress=progress)
    doc = outputs(runs.results)
    doc["this_run"] = runs.summary()
    return doc
