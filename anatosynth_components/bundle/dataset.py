"""The bundles' data source: the user's ``dataset_dir``, or a demo dataset generated once."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch.distributed as dist

from anatosynth_components.data.dataset_index import detect_layout
from anatosynth_components.data.demo.generate import generate_demo
from anatosynth_components.errors import DataError

logger = logging.getLogger(__name__)


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
    ``torch.distributed`` rank 0 writes it while the other ranks wait.

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
        logger.info("no dataset_dir given: using the %s demo dataset in %s", demo_kind, demo_dir)
        generate_demo(demo_kind, demo_dir, subjects=subjects, seed=seed, progress=False)
    if parallel:
        dist.barrier()
    return str(demo_dir)
