"""The dataset folder of an experiment: the user's ``dataset_dir``, or demo phantoms generated once
into the results folder (``<out>/data/<kind>``) in the real dataset's layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from anatosynth_components.data.demo.generate import generate_demo
from anatosynth_components.errors import DataError
from anatosynth_components.experiments.results_folder import ResultsFolder


def resolve_dataset_dir(config: dict[str, Any]) -> dict[str, Any]:
    """Make ``dataset_dir`` absolute (and check it exists); without it keep ``demo``, else drop it."""
    if config["dataset_dir"] is not None:
        path = Path(config["dataset_dir"]).resolve()
        if not path.exists():
            raise DataError(f"dataset_dir {path}: not found")
        config["dataset_dir"], config["demo"] = str(path), None
    return config


def dataset_root(config: dict[str, Any], folder: ResultsFolder, progress: bool = True) -> Path:
    """``dataset_dir``, or the demo dataset ``config["demo"]`` (kind, subjects, seed, optional shape)."""
    if config["dataset_dir"] is not None:
        return Path(config["dataset_dir"])
    demo = config["demo"]
    return generate_demo(
        demo["kind"],
        folder.root / "data" / demo["kind"],
        subjects=demo["subjects"],
        seed=demo["seed"],
        shape=demo.get("shape"),
        progress=progress,
    )
