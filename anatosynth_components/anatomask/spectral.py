"""Spectral normalisation of convolution layers, applied after construction.

MONAI's SPADE residual block and patch discriminator have no spectral-norm option; SPADE (Park et
al.) puts spectral norm on the generator's residual-block convolutions and on every discriminator
convolution, so it is added here with one general helper.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def add_spectral_norm(module: nn.Module, kinds: tuple[type, ...] = (nn.Conv2d, nn.Conv3d)) -> nn.Module:
    """Wrap every layer of ``kinds`` inside ``module`` with spectral normalisation (in place)."""
    for layer in [m for m in module.modules() if isinstance(m, kinds)]:
        spectral_norm(layer)
    return module
