"""VGG19 perceptual loss (the lambda_vgg term of Eq. 5), pix2pixHD / SPADE style.

MONAI's ``PerceptualLoss`` wraps LPIPS, RadImageNet or MedicalNet networks fetched from hubs; the
paper's term is SPADE's VGG loss: L1 distances of VGG19 features at relu1_1, relu2_1, relu3_1,
relu4_1 and relu5_1, weighted 1/32, 1/16, 1/8, 1/4 and 1, on grey images in [0, 1] repeated to 3
channels and normalised with ImageNet's mean and std.  The ImageNet weights come the way torchvision
fetches them (:func:`anatosynth_components.pretrained.pretrained_weights_file`): read from
``$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth``, downloaded there first when absent, unless
``ANATOSYNTH_NO_DOWNLOAD=1`` forbids it.  When the file is neither cached nor downloadable the loss
refuses to start, naming the file and the way out (``lambda_vgg: 0``).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from anatosynth_components.errors import ConfigError
from anatosynth_components.pretrained import VGG19, pretrained_weights_file

VGG19_FILE = VGG19.file_name
_LAYERS = (2, 7, 12, 21, 30)  # ends of relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 in vgg19.features
_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def vgg19_weights_path() -> Path:
    """Where torchvision keeps the VGG19 ImageNet weights (``torch.hub.get_dir()/checkpoints``)."""
    return VGG19.cache_path()


class VGG19Loss(nn.Module):
    """Perceptual loss between two grayscale images in [0, 1], shape (N, 1, H, W).

    Args:
        weights_path: a torchvision VGG19 state dict, read as it is; default torchvision's cached
            ``VGG19_Weights.IMAGENET1K_V1`` (:func:`vgg19_weights_path`), downloaded first when
            absent unless ``ANATOSYNTH_NO_DOWNLOAD=1``.

    Raises:
        ConfigError: the weights file is missing and cannot be downloaded, or is unreadable (the
            message names it and the switch ``lambda_vgg: 0``).
    """

    def __init__(self, weights_path: str | os.PathLike | None = None) -> None:
        super().__init__()
        from torchvision.models import vgg19

        way_out = "or set lambda_vgg: 0 to train without the VGG term"
        if weights_path is None:
            path = pretrained_weights_file(VGG19, "the VGG19 perceptual loss (lambda_vgg)", way_out)
        else:
            path = Path(weights_path)
            if not path.is_file():
                raise ConfigError(
                    f"the VGG19 perceptual loss (lambda_vgg) needs torchvision's ImageNet weights at "
                    f"{path}, which is not a file; {way_out}"
                )
        net = vgg19(weights=None)
        try:
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as err:  # corrupt file or another network's weights
            raise ConfigError(f"{path}: not torchvision VGG19 weights ({err}); or set lambda_vgg: 0") from err
        self.slices = nn.ModuleList()
        start = 0
        for end in _LAYERS:
            self.slices.append(net.features[start:end])
            start = end
        self.requires_grad_(False).eval()
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x.expand(-1, 3, -1, -1) - self.mean) / self.std
        out = []
        for block in self.slices:
            x = block(x)
            out.append(x)
        return out

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        loss = fake.new_zeros(())
        for w, f, r in zip(_WEIGHTS, self.features(fake), self.features(real), strict=True):
            loss = loss + w * F.l1_loss(f, r.detach())
        return loss

    def train(self, mode: bool = True) -> VGG19Loss:
        return super().train(False)  # a fixed feature extractor
