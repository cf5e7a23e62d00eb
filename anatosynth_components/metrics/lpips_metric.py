"""LPIPS of synthetic vs real volumes, per 2-D slice, with genuine pretrained weights only.

LPIPS (Zhang et al. 2018, the ``lpips`` PyPI package, v0.1) has two parts: linear layers that the
package ships (``lpips/weights/v0.1/<net>.pth``) and an ImageNet backbone (AlexNet by default) that
it takes from torchvision's cache ``torch.hub.get_dir()/checkpoints`` (that is
``$TORCH_HOME/hub/checkpoints``), downloaded there the way torchvision does when absent
(:func:`anatosynth_components.pretrained.pretrained_weights_file`; ``ANATOSYNTH_NO_DOWNLOAD=1``
forbids the download). :func:`lpips_status` checks the package and both weight files (fetching the
backbone when allowed, loading nothing), and :class:`LPIPSMetric` refuses to start when they are
missing (a number from a random backbone is not LPIPS); the evaluation reports LPIPS "unavailable"
with that reason instead. The backbone is read from the cache file directly and loaded strictly.

Slices: each volume is cut along ``slice_axis``; slices in [0, 1] are mapped to [-1, 1] and repeated
to 3 channels; the volume's LPIPS is the mean over its slices (lower is better).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from monai.utils import MetricReduction
from torch import nn

from anatosynth_components.errors import ConfigError
from anatosynth_components.metrics.perceptual_slices import PerceptualSliceMetric
from anatosynth_components.pretrained import (
    ALEXNET,
    SQUEEZENET1_1,
    VGG16,
    WeightsUnavailableError,
    pretrained_weights_file,
)

LPIPS_VERSION = "0.1"
# torchvision's ImageNet weights of each LPIPS backbone, and their file names
BACKBONE_WEIGHTS = {"alex": ALEXNET, "vgg": VGG16, "squeeze": SQUEEZENET1_1}
BACKBONE_FILES = {net: weights.file_name for net, weights in BACKBONE_WEIGHTS.items()}
# the smallest slice (pixels per side) each backbone's LPIPS layers accept
MIN_SLICE_SIZE = {"alex": 31, "vgg": 16, "squeeze": 17}


def _check_net(net: str) -> str:
    if net not in BACKBONE_FILES:
        raise ConfigError(f"LPIPS net must be one of {sorted(BACKBONE_FILES)}, got {net!r}")
    return net


def lpips_backbone_path(net: str = "alex") -> Path:
    """Where torchvision keeps the ImageNet weights of LPIPS backbone ``net`` (nothing is checked).

    >>> lpips_backbone_path("alex").name
    'alexnet-owt-7be5be79.pth'
    """
    return BACKBONE_WEIGHTS[_check_net(net)].cache_path()


def lpips_status(net: str = "alex", backbone_path: str | os.PathLike | None = None) -> tuple[bool, str]:
    """Whether LPIPS with genuine weights can be computed here, and why (not).

    Checks that the ``lpips`` package imports, that its v0.1 linear weights for ``net`` are
    installed, and that the backbone file exists: ``backbone_path`` as given, or torchvision's cache
    (:func:`lpips_backbone_path`), downloaded there first when absent unless
    ``ANATOSYNTH_NO_DOWNLOAD=1`` forbids it. Nothing is loaded.

    Returns:
        ``(True, description)`` or ``(False, reason)``; the reason names the missing piece and the
        way out.

    Raises:
        ConfigError: ``net`` is not ``"alex"``, ``"vgg"`` or ``"squeeze"``.

    >>> lpips_status("alex", backbone_path="no-such-file.pth")[0]  # a given path is never downloaded
    False
    """
    _check_net(net)
    try:
        import lpips
    except Exception as err:  # lpips imports torchvision, which fails with the CPU-only torch wheel
        return False, f"the lpips package cannot be imported ({type(err).__name__}: {err})"
    linear = Path(lpips.__file__).parent / "weights" / f"v{LPIPS_VERSION}" / f"{net}.pth"
    if not linear.is_file():
        return False, f"the lpips package has no linear-layer weights at {linear}; reinstall lpips"
    if backbone_path is None:
        try:
            backbone = pretrained_weights_file(BACKBONE_WEIGHTS[net], f"the LPIPS {net} backbone")
        except WeightsUnavailableError as err:
            return False, str(err)
    else:
        backbone = Path(backbone_path)
        if not backbone.is_file():
            return False, f"the ImageNet {net} backbone weights {backbone} are missing"
    return True, f"LPIPS v{LPIPS_VERSION} ({net}), backbone {backbone}"


def load_lpips(net: str = "alex", backbone_path: str | os.PathLike | None = None) -> nn.Module:
    """The ``lpips.LPIPS`` network with its shipped linear layers and the cached backbone weights.

    The network is built with a random backbone (``pnet_rand=True``, so torchvision never tries a
    download) and the backbone weights are then loaded strictly from the cache file.

    Raises:
        ConfigError: LPIPS is unavailable (the message is :func:`lpips_status`'s reason) or the
            backbone file is not torchvision's ``net`` weights.
    """
    ok, reason = lpips_status(net, backbone_path)
    if not ok:
        raise ConfigError(f"LPIPS unavailable: {reason}")
    import lpips

    backbone = Path(backbone_path) if backbone_path is not None else lpips_backbone_path(net)
    with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained=False`
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torchvision\..*")
        model = lpips.LPIPS(net=net, version=LPIPS_VERSION, pnet_rand=True, verbose=False)
    try:
        state = torch.load(backbone, map_location="cpu", weights_only=True)
        features = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
        # lpips keeps torchvision's `features[i]` as `slice<k>.<i>`: map the names back
        trunk = {key: features[key.split(".", 1)[1]] for key in model.net.state_dict()}
        model.net.load_state_dict(trunk, strict=True)
    except Exception as err:
        raise ConfigError(
            f"{backbone}: not torchvision's ImageNet {net} weights usable by LPIPS "
            f"({type(err).__name__}: {err})"
        ) from err
    return model.eval().requires_grad_(False)


class LPIPSMetric(PerceptualSliceMetric):
    """LPIPS v0.1 of synthetic vs real volumes (B, 1, X, Y, Z) in [0, 1], mean over slices -> (B, 1).

    Args:
        net: LPIPS backbone, ``"alex"`` (the usual choice), ``"vgg"`` or ``"squeeze"``.
        slice_axis: the spatial axis (0, 1 or 2) the slices were synthesised along.
        slice_batch: how many slices go through the network at once (bounds memory).
        backbone_path: the torchvision backbone weights; default :func:`lpips_backbone_path`.
        reduction: how :meth:`aggregate` reduces the per-volume values (MONAI ``MetricReduction``).
        get_not_nans: whether :meth:`aggregate` also returns the count of non-NaN values.

    Raises:
        ConfigError: LPIPS is unavailable here (the message gives the reason, see
            :func:`lpips_status`); bad ``net``, ``slice_axis`` or ``slice_batch``.
        DataError: (when called) the inputs are not matching one-channel 5-D volumes, or the slices
            are smaller than the backbone accepts (31 pixels for alex).

    Example:
        >>> metric = LPIPSMetric(net="alex")  # doctest: +SKIP
        >>> metric(synthetic, real)  # (B, 1, X, Y, Z) each  # doctest: +SKIP
        tensor([[0.0561]])
    """

    def __init__(
        self,
        net: str = "alex",
        slice_axis: int = 2,
        slice_batch: int = 32,
        backbone_path: str | os.PathLike | None = None,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__(
            network=load_lpips(net, backbone_path),
            name="LPIPS",
            slice_axis=slice_axis,
            slice_batch=slice_batch,
            min_slice_size=MIN_SLICE_SIZE[net],
            reduction=reduction,
            get_not_nans=get_not_nans,
        )
        self.net = net
