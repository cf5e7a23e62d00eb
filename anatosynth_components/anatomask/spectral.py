"""Spectral normalisation of convolution layers: added after construction for training, folded into
plain weights for inference and export.

MONAI's SPADE residual block and patch discriminator have no spectral-norm option; SPADE (Park et
al.) puts spectral norm on the generator's residual-block convolutions and on every discriminator
convolution, so it is added here with one general helper.

PyTorch's spectral-norm parametrization cannot be compiled by TorchScript (and adds a power
iteration to every training forward).  In eval mode it is a fixed function of the stored tensors,
``W / sigma`` with ``sigma = u^T W v`` from the stored power-iteration vectors, so
:func:`fold_spectral_norm` replaces it by that weight in a copy of the network: the same function in
eval mode, scriptable.  The networks whose ``forward`` is scripted define ``__prepare_scriptable__``
(which ``torch.jit.script`` calls before compiling) with :func:`prepare_scriptable`, so scripting the
network itself, as MONAI's ``ckpt_export`` does, compiles the folded copy; the network that was
passed in keeps its spectral norm (training is unchanged).
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm


def add_spectral_norm(module: nn.Module, kinds: tuple[type, ...] = (nn.Conv2d, nn.Conv3d)) -> nn.Module:
    """Wrap every layer of ``kinds`` inside ``module`` with spectral normalisation (in place)."""
    for layer in [m for m in module.modules() if isinstance(m, kinds)]:
        spectral_norm(layer)
    return module


def is_parametrized(module: nn.Module) -> bool:
    """Whether any layer of ``module`` (itself included) carries a parametrization (spectral norm)."""
    return any(parametrize.is_parametrized(m) for m in module.modules())


def fold_spectral_norm(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with every parametrization (spectral norm) folded into a plain weight.

    Each weight is evaluated as the parametrization gives it in eval mode (``W / sigma`` with the
    stored vectors: no power-iteration step, nothing of ``module`` changes); the copy keeps the
    training flags of ``module``.  ``module`` itself keeps its parametrizations.

    >>> conv = add_spectral_norm(nn.Conv2d(2, 3, 3))
    >>> plain = fold_spectral_norm(conv.eval())
    >>> is_parametrized(plain), is_parametrized(conv), bool((plain.weight == conv.weight).all())
    (False, True, True)
    """
    plain = copy.deepcopy(module)
    for layer in [m for m in plain.modules() if parametrize.is_parametrized(m)]:
        # deepcopy shares the generated Parametrized* class, whose properties removal deletes: give the
        # copy its own class first, or ``module`` would lose its ``weight`` too
        cls = type(layer)
        layer.__class__ = type(cls.__name__, cls.__bases__, dict(cls.__dict__))
        for name in list(layer.parametrizations.keys()):
            layer.parametrizations[name].eval()  # evaluate W / sigma without a power-iteration step
            parametrize.remove_parametrizations(layer, name, leave_parametrized=True)
    return plain


def prepare_scriptable(module: nn.Module) -> nn.Module:
    """What ``__prepare_scriptable__`` returns: ``module`` itself when nothing is parametrized, else
    :func:`fold_spectral_norm` of it (scripting compiles the folded copy; ``module`` is untouched)."""
    return fold_spectral_norm(module) if is_parametrized(module) else module
