"""``generate_demo``: write a demo dataset of phantoms in the layout of a real dataset."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from anatosynth_components.atomic import atomic_dir, write_json
from anatosynth_components.data.demo.abdomen import ABDOMEN_SHAPE, abdomen_phantom
from anatosynth_components.data.demo.anatomy import Phantom
from anatosynth_components.data.demo.brain import BRAIN_SHAPE, brain_phantom
from anatosynth_components.data.demo.chest import CHEST_SHAPE, chest_phantom
from anatosynth_components.data.demo.layouts import write_datalist, write_learn2reg, write_penet
from anatosynth_components.data.split import draw_split
from anatosynth_components.errors import ConfigError

MANIFEST = "demo_manifest.json"
Shape = tuple[int, int, int]


@dataclass(frozen=True)
class DemoKind:
    """A demo dataset: which phantom, at which default shape, written in which layout."""

    make: Callable[[Shape, np.random.Generator], Phantom]
    shape: Shape
    layout: str
    write: Callable[[Path, list[Phantom], int], Path]


def _penet_phases(count: int, seed: int) -> list[str]:
    names = [str(i) for i in range(1, count + 1)]
    split = draw_split(names, (0.7, 0.15, 0.15), seed) if count >= 3 else {"training": names}
    phase = {s: p for p, key in (("train", "training"), ("val", "validation"), ("test", "test"))
             for s in split.get(key, [])}  # fmt: skip
    return [phase[n] for n in names]


DEMO_KINDS: dict[str, DemoKind] = {
    "brain": DemoKind(
        brain_phantom,
        BRAIN_SHAPE,
        "learn2reg",
        lambda root, ph, seed: write_learn2reg(root, "OASIS", ph, "MR"),
    ),
    "abdomen": DemoKind(
        abdomen_phantom,
        ABDOMEN_SHAPE,
        "learn2reg",
        lambda root, ph, seed: write_learn2reg(root, "AbdomenCTCT", ph, "CT"),
    ),
    "chest": DemoKind(
        chest_phantom,
        CHEST_SHAPE,
        "datalist",
        lambda root, ph, seed: write_datalist(root, "chest", ph, "CT"),
    ),
    "penet": DemoKind(
        lambda shape, rng: chest_phantom(shape, rng, contrast=True),
        (128, 128, 48),
        "penet",
        lambda root, ph, seed: write_penet(root, ph, _penet_phases(len(ph), seed)),
    ),
}


def _manifest(kind: str, subjects: int, seed: int, shape: Shape) -> dict:
    return {"kind": kind, "subjects": subjects, "seed": seed, "shape": list(shape)}


def generate_demo(
    kind: str,
    out: str | os.PathLike,
    subjects: int = 8,
    seed: int = 0,
    shape: Shape | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write ``subjects`` phantoms of ``kind`` to ``out`` in the real dataset's layout.

    Subject ``i`` is drawn from ``numpy.random.default_rng([seed, i])``: the same seed gives the
    same files, and adding subjects keeps the earlier ones.  The folder is built under a temporary
    name and renamed when complete; ``demo_manifest.json`` records the parameters, and a later call
    with the same parameters reuses the folder.

    Args:
        kind: ``brain``, ``abdomen``, ``chest`` or ``penet``.
        out: output folder (must not exist, be empty, or hold the same demo, unless ``overwrite``).
        subjects: number of subjects (at least 3 for a 70/15/15 split).
        seed: random seed.
        shape: volume shape (x, y, z); default per kind (see :data:`DEMO_KINDS`).
        overwrite: replace an existing folder.
        progress: show a progress bar.

    Returns:
        the output folder.

    Example::

        generate_demo("brain", "demo_data/brain", subjects=10, seed=0)
        read_dataset("demo_data/brain").labels[1]   # 'Left-Cerebral-White-Matter'
    """
    if kind not in DEMO_KINDS:
        raise ConfigError(f"unknown demo kind {kind!r}; choose one of {sorted(DEMO_KINDS)}")
    if subjects < 1:
        raise ConfigError(f"subjects must be >= 1, got {subjects}")
    spec = DEMO_KINDS[kind]
    shape = tuple(int(s) for s in (shape or spec.shape))
    if len(shape) != 3 or min(shape) < 16:
        raise ConfigError(f"shape must be three sizes >= 16, got {list(shape)}")
    out = Path(out)
    wanted = _manifest(kind, subjects, seed, shape)
    manifest = out / MANIFEST
    if not overwrite and manifest.is_file() and json.loads(manifest.read_text()) == wanted:
        return out
    with atomic_dir(out, overwrite=overwrite) as tmp:
        bar = tqdm(range(subjects), desc=f"demo {kind}", unit="subject", disable=not progress)
        phantoms = [spec.make(shape, np.random.default_rng([seed, i])) for i in bar]
        spec.write(tmp, phantoms, seed)
        write_json(tmp / MANIFEST, wanted)
    return out
