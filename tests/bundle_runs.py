"""Running the bundles as users do, for the end-to-end tests: ``python -m monai.bundle run`` in a
subprocess, with its working directory outside the repository and one torch thread."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from conftest import REPO

BUNDLES = REPO / "bundles"
PYTHON = sys.executable

#: an AnatoMaskGAN bundle at the smallest size its networks fit (32 x 32 slices, 3 levels, 2 layers of D)
TINY_ANATOMASK = {
    "spatial_size": "[32,32]",
    "num_slices": "4",
    "base_channels": "8",
    "channel_mults": "[4,2,1]",
    "disc_channels": "8",
    "disc_layers": "2",
    "lambda_vgg": "0",
    "batch_size": "2",
    "stacks_per_volume": "2",
    "stack_batch_size": "8",
}


def config(bundle: str, *names: str) -> str:
    """The ``--config_file`` value for ``names`` of ``bundle`` (a list literal for overlays)."""
    files = [str(BUNDLES / bundle / "configs" / f"{n}.json") for n in names]
    return files[0] if len(files) == 1 else repr(files)


def run_bundle(
    cwd: Path,
    config_file: str,
    run_id: str = "run",
    root: Path | None = None,
    check: bool = True,
    launcher: tuple[str, ...] = (PYTHON,),
    **overrides: str,
) -> subprocess.CompletedProcess:
    """``python -m monai.bundle run <run_id> --config_file ... [--bundle_root root] --key value ...``;
    with ``check`` a failure raises with the end of its output."""
    cmd = [*launcher, "-m", "monai.bundle", "run", run_id, "--config_file", config_file]
    if root is not None:
        cmd += ["--bundle_root", str(root)]
    for key, value in overrides.items():
        cmd += [f"--{key}", str(value)]
    # one torch thread: tiny networks run many times faster than with two threads on a shared 2-core machine
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def state(path: Path) -> dict:
    """A saved checkpoint, on the CPU."""
    return torch.load(path, map_location="cpu", weights_only=False)
