"""ImageNet weights of torchvision backbones, fetched the way torchvision fetches them.

Two parts of AnatoSynth use torchvision's ImageNet weights: the VGG19 perceptual term of Eq. 5
(:class:`~anatosynth_components.anatomask.VGG19Loss`) and the AlexNet backbone of LPIPS
(:class:`~anatosynth_components.metrics.LPIPSMetric`; the linear layers ship in the ``lpips``
package). ``torchvision.models.vgg19(weights=VGG19_Weights.IMAGENET1K_V1)`` calls
``torch.hub.load_state_dict_from_url(url, check_hash=True)``: the file keeps the URL's name in
``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME/hub/checkpoints``, by default
``~/.cache/torch/hub/checkpoints``), is downloaded there when absent, and the download is checked
against the SHA-256 prefix in the name (a file already in the cache is used as it is).
:func:`pretrained_weights_file` makes that same call, with two differences:

- a download that fails (no network, a proxy, a bad hash) is a :class:`WeightsUnavailableError`
  naming the file expected, the URL and the ways out, not a bare ``URLError``;
- ``ANATOSYNTH_NO_DOWNLOAD=1`` forbids downloads: only the cache is read, and a missing file is the
  same clear error, naming the variable (for offline machines, shared read-only caches, tests).

>>> VGG19.file_name, ALEXNET.file_name
('vgg19-dcbb9e9d.pth', 'alexnet-owt-7be5be79.pth')
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch

from anatosynth_components.errors import ConfigError

#: set to 1 (or true / yes / on) to forbid downloads of pretrained weights: only the cache is read
NO_DOWNLOAD_ENV = "ANATOSYNTH_NO_DOWNLOAD"
_ALLOW_VALUES = {"", "0", "false", "no", "off"}


class WeightsUnavailableError(ConfigError):
    """Pretrained weights are neither in torchvision's cache nor downloadable (forbidden or failed);
    the message names the file expected, where it comes from and the ways out."""


@dataclass(frozen=True)
class TorchvisionWeights:
    """One torchvision weights entry: the enum member's name and its URL (the cache file's name)."""

    enum: str
    url: str

    @property
    def file_name(self) -> str:
        """The cache file's name: the URL's basename, as ``load_state_dict_from_url`` names it."""
        return os.path.basename(urlparse(self.url).path)

    def cache_path(self) -> Path:
        """Where torchvision keeps the file (``torch.hub.get_dir()/checkpoints``); nothing is checked."""
        return Path(torch.hub.get_dir()) / "checkpoints" / self.file_name


# the URLs of torchvision's enums (tests check they still agree), so no torchvision import is needed
# to name a file: torchvision may fail to import where LPIPS is only being reported unavailable
VGG19 = TorchvisionWeights(
    "VGG19_Weights.IMAGENET1K_V1", "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
)
ALEXNET = TorchvisionWeights(
    "AlexNet_Weights.IMAGENET1K_V1", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
)
VGG16 = TorchvisionWeights(
    "VGG16_Weights.IMAGENET1K_V1", "https://download.pytorch.org/models/vgg16-397923af.pth"
)
SQUEEZENET1_1 = TorchvisionWeights(
    "SqueezeNet1_1_Weights.IMAGENET1K_V1", "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth"
)


def downloads_forbidden() -> bool:
    """Whether ``ANATOSYNTH_NO_DOWNLOAD`` forbids downloads (set to anything but ``""``, ``0``,
    ``false``, ``no`` or ``off``)."""
    return os.environ.get(NO_DOWNLOAD_ENV, "").strip().lower() not in _ALLOW_VALUES


def pretrained_weights_file(
    weights: TorchvisionWeights, purpose: str, way_out: str = "", progress: bool = True
) -> Path:
    """The cached weights file, downloaded by torchvision's mechanism first when absent and allowed.

    Args:
        weights: which weights (:data:`VGG19`, :data:`ALEXNET`, ...).
        purpose: what needs them, to start the error message (``"the VGG19 perceptual loss"``).
        way_out: an extra remedy appended to the error message (``"or set lambda_vgg: 0"``).
        progress: show torchvision's download progress bar.

    Raises:
        WeightsUnavailableError: the file is absent and downloads are forbidden
            (:data:`NO_DOWNLOAD_ENV`) or the download failed; the message names the file.
    """
    path = weights.cache_path()
    if path.is_file():
        return path
    remedy = (
        f"copy {weights.file_name} (from {weights.url}) to {path.parent}, or set TORCH_HOME to a cache "
        f"holding hub/checkpoints/{weights.file_name}"
    )
    tail = f"; {way_out}" if way_out else ""
    start = (
        f"{purpose} needs torchvision's ImageNet weights {path} ({weights.enum}), which are not in the cache"
    )
    if downloads_forbidden():
        raise WeightsUnavailableError(
            f"{start} and cannot be downloaded: {NO_DOWNLOAD_ENV}={os.environ[NO_DOWNLOAD_ENV]} forbids "
            f"downloads; {remedy}, or unset {NO_DOWNLOAD_ENV} to let torchvision download it{tail}"
        )
    try:  # what torchvision's `<model>(weights=...)` does; the state dict is loaded later, by the caller
        torch.hub.load_state_dict_from_url(
            weights.url, progress=progress, check_hash=True, map_location="cpu", weights_only=True
        )
    except Exception as err:  # no network, proxy, HTTP error, hash mismatch, unreadable download
        raise WeightsUnavailableError(
            f"{start} and cannot be downloaded from {weights.url} ({type(err).__name__}: {err}); "
            f"{remedy} ({NO_DOWNLOAD_ENV}=1 skips the download attempt){tail}"
        ) from err
    if not path.is_file():  # torch.hub names the file as computed here; a change there would land here
        raise WeightsUnavailableError(f"{start}: torch.hub downloaded {weights.url} but not to {path}{tail}")
    return path
