"""The bundles' data source: the user's ``dataset_dir``, or a demo dataset generated once, announced by a
WARNING banner (:func:`demo_data_banner`) so that nobody mistakes results on phantoms for real ones."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch.distributed as dist

from anatosynth_components.data.dataset_index import detect_layout
from anatosynth_components.data.demo.generate import DEMO_KINDS, generate_demo
from anatosynth_components.errors import DataError

logger = logging.getLogger(__name__)

RULE = "=" * 100
#: how a bundle user supplies real data instead
BUNDLE_DATASET_HINT = (
    "--dataset_dir /path/to/dataset (Learn2Reg, neurite-oasis, PENet, or a MONAI datalist JSON; "
    'README "Data")'
)


def demo_data_banner(kind: str, folder: str | os.PathLike, subjects: int, how_to_use_real: str) -> str:
    """The WARNING banner of a run on generated demo data: what the data is, where it is, how to give
    real data instead.

    >>> print(demo_data_banner("brain", "runs/demo_data", 10, "--dataset_dir DIR"))  # doctest: +ELLIPSIS
    ====...
    WARNING: no dataset given, so this run uses GENERATED DEMO DATA (procedural phantoms), not real scans
      data: 10 brain phantoms (`anatosynth demo-data --kind brain`, learn2reg layout) in runs/demo_data
      results on them check the pipeline end to end and say nothing about real data
      to use your data: --dataset_dir DIR
    ====...
    """
    layout = DEMO_KINDS[kind].layout if kind in DEMO_KINDS else "its own"
    return "\n".join(
        [
            RULE,
            "WARNING: no dataset given, so this run uses GENERATED DEMO DATA (procedural phantoms), "
            "not real scans",
            f"  data: {subjects} {kind} phantoms (`anatosynth demo-data --kind {kind}`, {layout} layout) "
            f"in {folder}",
            "  results on them check the pipeline end to end and say nothing about real data",
            f"  to use your data: {how_to_use_real}",
            RULE,
        ]
    )


def dataset_or_demo(
    dataset_dir: str | os.PathLike | None,
    demo_kind: str,
    demo_dir: str | os.PathLike,
    subjects: int = 10,
    seed: int = 0,
) -> str:
    """``dataset_dir`` when given (checked to hold a dataset the readers know), else the demo.

    Without ``dataset_dir`` the demo dataset of ``demo_kind`` (``anatosynth demo-data``) is written
    to ``demo_dir`` once, in the real dataset's on-disk layout, and reused by later runs.  Under
    ``torch.distributed`` rank 0 writes it while the other ranks wait, and logs the WARNING banner of
    :func:`demo_data_banner` (what the data is, where, how to give real data).

    Example::

        "data_root": "$anatosynth_components.bundle.dataset_or_demo(@dataset_dir, 'brain', @demo_dir)"
    """
    if dataset_dir not in (None, ""):
        path = Path(dataset_dir).expanduser()
        if not path.exists():
            raise DataError(f"dataset_dir {path}: no such file or folder")
        detect_layout(path)  # a clear error when the folder holds no dataset JSON / known layout
        return str(path)
    parallel = dist.is_available() and dist.is_initialized()
    if not parallel or dist.get_rank() == 0:
        generate_demo(demo_kind, demo_dir, subjects=subjects, seed=seed, progress=False)
        logger.warning(
            "\n%s", demo_data_banner(demo_kind, Path(demo_dir).resolve(), subjects, BUNDLE_DATASET_HINT)
        )
    if parallel:
        dist.barrier()
    return str(demo_dir)
