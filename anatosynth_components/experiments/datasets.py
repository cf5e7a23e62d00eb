"""The dataset folder of an experiment: the user's ``dataset_dir``, or demo phantoms generated once
into the results folder (``<out>/data/<kind>``) in the real dataset's layout; and the CT intensity
scaling of the ACIS experiments."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from monai.transforms import Lambdad, ScaleIntensityRanged, Transform

from anatosynth_components.bundle.dataset import demo_data_banner
from anatosynth_components.data.demo.generate import generate_demo
from anatosynth_components.data.validate_volume import source_name
from anatosynth_components.errors import DataError
from anatosynth_components.experiments.results_folder import ResultsFolder
from anatosynth_components.experiments.synthetic import check_unit_range

#: ACIS paper Sec. 3.1: "CT clipped to HU [-1000, 600]" and scaled to [0, 1], on ``data["image"]``
logger = logging.getLogger(__name__)

CHEST_CT_TO_UNIT = ScaleIntensityRanged("image", a_min=-1000, a_max=600, b_min=0, b_max=1, clip=True)


def to_unit_range(intensity: str) -> Transform:
    """The dictionary transform that brings ``data["image"]`` to [0, 1]: :data:`CHEST_CT_TO_UNIT` for
    ``"chest"`` (Hounsfield units), for ``"unit"`` (already in [0, 1]) the check that it is
    (:func:`~anatosynth_components.experiments.synthetic.check_unit_range`, naming the file)."""
    if intensity == "chest":
        return CHEST_CT_TO_UNIT
    return Lambdad("image", lambda x: check_unit_range(x, source_name(x, "image")))


def resolve_dataset_dir(config: dict[str, Any]) -> dict[str, Any]:
    """Make ``dataset_dir`` absolute (and check it exists); without it keep ``demo``, else drop it."""
    if config["dataset_dir"] is not None:
        path = Path(config["dataset_dir"]).resolve()
        if not path.exists():
            raise DataError(f"dataset_dir {path}: not found")
        config["dataset_dir"], config["demo"] = str(path), None
    return config


def dataset_root(config: dict[str, Any], folder: ResultsFolder, progress: bool = True) -> Path:
    """``dataset_dir``, or the demo dataset ``config["demo"]`` (kind, subjects, seed, optional shape),
    generated once into the results folder and announced by a WARNING banner."""
    if config["dataset_dir"] is not None:
        return Path(config["dataset_dir"])
    demo = config["demo"]
    path = generate_demo(
        demo["kind"],
        folder.root / "data" / demo["kind"],
        subjects=demo["subjects"],
        seed=demo["seed"],
        shape=demo.get("shape"),
        progress=progress,
    )
    hint = "--dataset-dir /path/to/dataset (any layout `anatosynth inspect` reads)"
    logger.warning("\n%s", demo_data_banner(demo["kind"], path.resolve(), demo["subjects"], hint))
    return path
