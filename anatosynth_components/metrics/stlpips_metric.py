"""ST-LPIPS (shift-tolerant LPIPS, Ghildyal & Liu, ECCV 2022) per 2-D slice, when installed.

The optional ``stlpips-pytorch`` package (extra ``anatosynth-components[stlpips]``) ships complete
weights (backbone included, version ``ST0.0``), so it works offline. It is a different metric from
LPIPS: report it as "ST-LPIPS", next to LPIPS, never in its place. Slices are handled as for
:class:`~anatosynth_components.metrics.LPIPSMetric`.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch
from monai.utils import MetricReduction
from torch import nn

from anatosynth_components.errors import ConfigError
from anatosynth_components.metrics.perceptual_slices import PerceptualSliceMetric

STLPIPS_VERSION = "ST0.0"
STLPIPS_NETS = ("alex", "vgg")


def _weights_path(module: object, net: str) -> Path:
    # stlpips.LPIPS looks for its weights beside its own source file, as here
    return (
        Path(inspect.getfile(module.LPIPS)).parent
        / "weights"
        / f"v{STLPIPS_VERSION}"
        / f"{net}_shift_tolerant.pth"
    )  # type: ignore[attr-defined]


def stlpips_status(net: str = "alex") -> tuple[bool, str]:
    """Whether ST-LPIPS can be computed here, and why (not): the package imports and has its weights.

    >>> ok, reason = stlpips_status()
    >>> isinstance(ok, bool) and isinstance(reason, str)
    True
    """
    if net not in STLPIPS_NETS:
        raise ConfigError(f"ST-LPIPS net must be one of {list(STLPIPS_NETS)}, got {net!r}")
    try:
        from stlpips_pytorch import stlpips
    except Exception as err:  # not installed, or its undeclared IPython / torchsummary imports fail
        return False, (
            f"the stlpips-pytorch package cannot be imported ({type(err).__name__}: {err}); "
            "install the extra: pip install 'anatosynth-components[stlpips]'"
        )
    weights = _weights_path(stlpips, net)
    if not weights.is_file():
        return False, f"the stlpips-pytorch package has no {STLPIPS_VERSION} weights at {weights}"
    return True, f"ST-LPIPS {STLPIPS_VERSION} ({net}), weights {weights}"


def load_stlpips(net: str = "alex") -> nn.Module:
    """The shift-tolerant ``stlpips.LPIPS`` network, checked to have every weight from its file.

    Raises:
        ConfigError: ST-LPIPS is unavailable, or its weight file does not cover the network (the
            package loads with ``strict=False``, which would silently leave random weights).
    """
    ok, reason = stlpips_status(net)
    if not ok:
        raise ConfigError(f"ST-LPIPS unavailable: {reason}")
    from stlpips_pytorch import stlpips

    weights = _weights_path(stlpips, net)
    model = stlpips.LPIPS(net=net, variant="shift_tolerant", verbose=False)
    missing = set(model.state_dict()) - set(torch.load(weights, map_location="cpu", weights_only=True))
    if missing:
        raise ConfigError(f"ST-LPIPS unavailable: {weights} lacks weights for {sorted(missing)[:5]}")
    return model


class STLPIPSMetric(PerceptualSliceMetric):
    """ST-LPIPS of synthetic vs real volumes (B, 1, X, Y, Z) in [0, 1], mean over slices -> (B, 1).

    Args:
        net: ``"alex"`` or ``"vgg"``.
        slice_axis: the spatial axis (0, 1 or 2) the slices were synthesised along.
        slice_batch: how many slices go through the network at once.
        reduction: how :meth:`aggregate` reduces the per-volume values (MONAI ``MetricReduction``).
        get_not_nans: whether :meth:`aggregate` also returns the count of non-NaN values.

    Raises:
        ConfigError: ST-LPIPS is unavailable (the message gives the reason, see
            :func:`stlpips_status`).

    Example:
        >>> metric = STLPIPSMetric()  # doctest: +SKIP
    """

    def __init__(
        self,
        net: str = "alex",
        slice_axis: int = 2,
        slice_batch: int = 32,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__(
            network=load_stlpips(net),
            name="ST-LPIPS",
            slice_axis=slice_axis,
            slice_batch=slice_batch,
            reduction=reduction,
            get_not_nans=get_not_nans,
        )
        self.net = net
