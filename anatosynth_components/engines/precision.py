"""Mixed precision of a training step: ``torch.autocast`` and, for float16, a ``GradScaler``.

``amp`` (the bundles' config key) chooses it:

===================  ===========================================================================
``amp``              effect
===================  ===========================================================================
``False`` / "off"    full precision everywhere
``True`` / "auto"    CUDA: bfloat16 autocast where the GPU supports it (Ampere and newer), else
                     float16 autocast with a ``GradScaler``; CPU: full precision (autocast on a
                     CPU is slower than float32 for these networks and changes results, so only
                     an explicit dtype turns it on)
"bf16" / "bfloat16"  bfloat16 autocast on any device (no scaler: bfloat16 has float32's range)
"fp16" / "float16"   float16 autocast with a ``GradScaler`` on any device
===================  ===========================================================================

A step calls :meth:`Precision.autocast` around its forward passes and loss terms,
:meth:`Precision.minimize` for each ``backward`` + ``optimizer.step`` and :meth:`Precision.update`
once at the end of the iteration (PyTorch's recipe for several losses and optimizers in one
iteration).  Gradient penalties differentiate through a network inside the loss: scale their scores
by :attr:`Precision.grad_scale` before ``torch.autograd.grad`` and divide the gradients by it (the
PyTorch AMP recipe for gradient penalties), so float16 gradients do not underflow.

Example::

    >>> net = torch.nn.Linear(3, 1)
    >>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
    >>> precision = Precision("cpu", amp="bf16")
    >>> with precision.autocast():
    ...     loss = net(torch.ones(2, 3)).square().mean()
    >>> loss.dtype
    torch.bfloat16
    >>> precision.minimize(loss, opt); precision.update()
    >>> Precision("cpu", amp=True).enabled      # "auto" stays off on a CPU
    False
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from anatosynth_components.errors import ConfigError

#: accepted spellings of ``amp`` -> the dtype they ask for ("auto": chosen by device)
AMP_CHOICES: dict[Any, str | None] = {
    False: None,
    "off": None,
    "false": None,
    "no": None,
    "none": None,
    "0": None,
    True: "auto",
    "auto": "auto",
    "true": "auto",
    "yes": "auto",
    "1": "auto",
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp16": "float16",
    "float16": "float16",
}


def amp_dtype(amp: bool | str | None, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype ``amp`` means on ``device`` (None: full precision).

    >>> amp_dtype("fp16", "cpu"), amp_dtype(True, "cpu"), amp_dtype(False, "cuda")
    (torch.float16, None, None)
    """
    key = amp.lower() if isinstance(amp, str) else bool(amp) if amp is not None else False
    if key not in AMP_CHOICES:
        raise ConfigError(f"amp must be one of false, true/'auto', 'bf16', 'fp16'; got {amp!r}")
    choice = AMP_CHOICES[key]
    device = torch.device(device)
    if choice == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None if choice is None else getattr(torch, choice)


class Precision:
    """Autocast and gradient scaling for the steps of one trainer.

    Args:
        device: where the networks run (``cuda``, ``cpu``, ...).
        amp: see the module docstring.

    Attributes:
        dtype: the autocast dtype, or None for full precision.
        scaler: a ``torch.amp.GradScaler``, enabled for float16 only.
    """

    def __init__(self, device: torch.device | str = "cpu", amp: bool | str | None = False) -> None:
        self.device_type = torch.device(device).type
        self.dtype = amp_dtype(amp, device)
        self.scaler = torch.amp.GradScaler(self.device_type, enabled=self.dtype == torch.float16)

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    @property
    def grad_scale(self) -> float:
        """The current loss scale (1.0 unless float16 scaling is on)."""
        return float(self.scaler.get_scale()) if self.scaler.is_enabled() else 1.0

    def autocast(self) -> contextlib.AbstractContextManager:
        """``torch.autocast`` with this dtype, or a no-op context for full precision."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def minimize(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """``optimizer.zero_grad``, (scaled) ``loss.backward()`` and ``optimizer.step()`` (skipped by
        the scaler when float16 gradients overflowed)."""
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)

    def update(self) -> None:
        """Adjust the loss scale once per iteration, after every :meth:`minimize` of the iteration."""
        self.scaler.update()

    def __repr__(self) -> str:
        dtype = "float32" if self.dtype is None else str(self.dtype).removeprefix("torch.")
        scaler = ", GradScaler" if self.scaler.is_enabled() else ""
        return f"Precision({self.device_type}, {dtype}{scaler})"


#: full precision, for steps called without a trainer (tests, benchmarks)
FULL_PRECISION = Precision("cpu", amp=False)
