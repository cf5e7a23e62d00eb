"""ST-LPIPS (shift-tolerant LPIPS, Ghildyal & Liu, ECCV 2022) per 2-D slice.

The ``stlpips-pytorch`` package, a dependency of anatosynth-components (with ``ipython`` and
``torchsummary``, which it imports without declaring them), ships complete weights (backbone
included, version ``ST0.0``), so ST-LPIPS works offline in every install: it is the realism figure
the evaluation always reports, for the model and the label-mean baseline. It is a different metric
from LPIPS: report it as "ST-LPIPS", next to LPIPS, never in its place. Slices are handled as for
:class:`~anatosynth_components.metrics.LPIPSMetric` (foreground slices with ``label_map=``).
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
# the smallest slice (pixels per side) each shift-tolerant network accepts (measured with 0.0.2)
MIN_SLICE_SIZE = {"alex": 21, "vgg": 18}


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
            f"the stlpips-pytorch package cannot be imported ({type(err).__name__}: {err}); it is a "
            "dependency of anatosynth-components: reinstall it (pip install anatosynth-components, "
            "which brings stlpips-pytorch, ipython and torchsummary)"
        )
    weights = _weights_path(stlpips, net)
    if not weights.is_file():
        return False, f"the stlpips-pytorch package has no {STLPIPS_VERSION} weights at {weights}"
    return True, f"ST-LPIPS {STLPIPS_VERSION} ({net}), weights {weights}"


def load_stlpips(net: str = "alex") -> nn.Module:
    """The shift-tolerant ``stlpips.LPIPS`` network, checked to have every weight from its file.

    The package loads its file with ``strict=False``, which would silently leave random weights; so
    every parameter and buffer of the network must come from the file. The network holds its linear
    layers twice, as ``lin<k>`` and as the list ``lins`` (the same modules): a tensor counts as loaded
    when the file holds it under either name.

    Raises:
        ConfigError: ST-LPIPS is unavailable, or its weight file does not cover the network.
    """
    ok, reason = stlpips_status(net)
    if not ok:
        raise ConfigError(f"ST-LPIPS unavailable: {reason}")
    from stlpips_pytorch import stlpips

    weights = _weights_path(stlpips, net)
    model = stlpips.LPIPS(net=net, variant="shift_tolerant", verbose=False)
    tensors = model.state_dict(keep_vars=True)  # aliases share one tensor object
    stored = torch.load(weights, map_location="cpu", weights_only=True)
    loaded = {id(tensors[k]) for k in stored if k in tensors}
    missing = sorted(k for k, v in tensors.items() if id(v) not in loaded)
    unused = sorted(set(stored) - set(tensors))
    if missing or unused:
        raise ConfigError(
            f"ST-LPIPS unavailable: {weights} does not match the network (no weights for "
            f"{missing[:5]}, unused {unused[:5]})"
        )
    return model.eval().requires_grad_(False)


class STLPIPSMetric(PerceptualSliceMetric):
    """ST-LPIPS of synthetic vs real volumes (B, 1, X, Y, Z) in [0, 1], mean over slices -> (B, 1);
    over the foreground slices of ``label_map`` when it is given (``metric(y_pred, y, label_map=...)``).

    Args:
        net: ``"alex"`` or ``"vgg"``.
        slice_axis: the spatial axis (0, 1 or 2) the slices were synthesised along.
        slice_batch: how many slices go through the network at once.
        reduction: how :meth:`aggregate` reduces the per-volume values (MONAI ``MetricReduction``).
        get_not_nans: whether :meth:`aggregate` also returns the count of non-NaN values.

    Raises:
        ConfigError: ST-LPIPS is unavailable (the message gives the reason, see
            :func:`stlpips_status`).
        DataError: (when called) the slices are smaller than the network accepts (21 pixels for
            alex), or the inputs are not matching one-channel 5-D volumes.

    Example:
        >>> metric = STLPIPSMetric(slice_axis=2)
        >>> real = torch.rand(1, 1, 32, 32, 2, generator=torch.Generator().manual_seed(0))
        >>> float(metric(real, real))  # identical slices
        0.0
        >>> bool(metric(0.5 * real, real) > 0)
        True
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
            min_slice_size=MIN_SLICE_SIZE[net],
            reduction=reduction,
            get_not_nans=get_not_nans,
        )
        self.net = net
