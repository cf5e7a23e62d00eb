"""Helpers on networks that may be wrapped for multi-GPU training: :func:`unwrap` and :func:`frozen`.

Example::

    >>> from torch import nn
    >>> net = nn.Linear(2, 2)
    >>> unwrap(nn.DataParallel(net)) is net
    True
    >>> with frozen(net):
    ...     net.weight.requires_grad
    False
    >>> net.weight.requires_grad
    True
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from torch import nn
from torch.nn.parallel import DistributedDataParallel


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` / ``DataParallel`` wrapper (else ``module``)."""
    inner = getattr(module, "module", None)
    return inner if isinstance(inner, nn.Module) else module


@contextmanager
def frozen(*modules: nn.Module | None) -> Iterator[None]:
    """Switch off the parameters' gradients of ``modules`` (and DDP gradient sync) for a block.

    Used in a generator step: gradients must flow *through* the discriminator to the generator, but
    the discriminator's own parameters must neither accumulate gradients nor be synchronised.
    ``None`` entries are skipped.
    """
    live = [m for m in modules if m is not None]
    with ExitStack() as stack:
        for module in live:
            for sub in module.modules():
                if isinstance(sub, DistributedDataParallel):
                    stack.enter_context(sub.no_sync())
            module.requires_grad_(False)
        try:
            yield
        finally:
            for module in live:
                module.requires_grad_(True)
