"""How the bundles' data loaders are sized: stacks per step, worker processes, pinned memory, label dtype.

The AnatoMaskGAN bundles cache whole volumes and cut ``stacks_per_volume`` random stacks from each
volume a loader draws (``RandSliceStackd``); MONAI's collation flattens those lists, so a batch of
``V`` volumes is a training step of ``V * stacks_per_volume`` stacks.  The configs' ``batch_size``
counts *stacks per step* (what sets the memory of a step); the loader's own batch size, in volumes,
is derived with :func:`volumes_per_batch`.

Example (what ``configs/train.json`` wires)::

    "batch_size": 8,
    "stacks_per_volume": 4,
    "num_workers": "$anatosynth_components.bundle.loader_workers(@device)",
    "train": {"dataloader": {
        "batch_size": "$anatosynth_components.bundle.volumes_per_batch(@batch_size, @stacks_per_volume)",
        "num_workers": "@num_workers",
        "pin_memory": "$anatosynth_components.bundle.on_cuda(@device)"}}
"""

from __future__ import annotations

import os
from typing import Any

import torch

from anatosynth_components.errors import ConfigError


def _config_int(key: str, value: Any) -> int:
    """``value`` as an int >= 1 (the command line may hand over ``"8"``); ``ConfigError`` naming ``key``."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key} must be an integer >= 1, got {value!r}")
    return value


def volumes_per_batch(batch_size: Any, stacks_per_volume: Any) -> int:
    """Volumes per loader batch so that one training step holds exactly ``batch_size`` stacks.

    >>> volumes_per_batch(8, 4)
    2
    >>> volumes_per_batch("8", "8")
    1

    Raises:
        ConfigError: naming both keys when ``batch_size`` is not a multiple of ``stacks_per_volume``.
    """
    stacks = _config_int("batch_size", batch_size)
    per_volume = _config_int("stacks_per_volume", stacks_per_volume)
    if stacks % per_volume:
        below = stacks - stacks % per_volume
        near = " or ".join(str(m) for m in (below, below + per_volume) if m >= per_volume)
        raise ConfigError(
            f"batch_size ({stacks}) counts the slice stacks of one training step and must be a multiple of "
            f"stacks_per_volume ({per_volume}), the stacks cut from each volume a batch draws: e.g. "
            f"batch_size {near}, or stacks_per_volume {_largest_divisor(stacks, per_volume)}"
        )
    return stacks // per_volume


def _largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


def on_cuda(device: torch.device | str) -> bool:
    """Whether ``device`` is a CUDA device (the loaders pin their batches' memory only then).

    >>> on_cuda("cuda:0"), on_cuda(torch.device("cpu"))
    (True, False)
    """
    return torch.device(device).type == "cuda"


def loader_workers(device: torch.device | str, max_workers: int = 4) -> int:
    """Loader worker processes: none on a CPU (the step itself needs the cores, and stack cutting
    from cached volumes is cheap), up to ``max_workers`` (at most the CPUs this process may use)
    when training on a GPU, so cutting, augmenting and collating overlap the GPU's step.

    >>> loader_workers("cpu")
    0
    """
    if not on_cuda(device):
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(int(max_workers), cpus - 1))


def label_dtype(num_classes: Any) -> torch.dtype:
    """The smallest integer dtype for label ids ``0 .. num_classes - 1``: the cached label volumes
    keep it (uint8: a quarter of float32's memory).

    >>> label_dtype(36), label_dtype(300)
    (torch.uint8, torch.int16)
    """
    k = _config_int("num_classes", num_classes)
    if k <= 256:
        return torch.uint8
    if k <= 2**15:
        return torch.int16
    return torch.int32
