"""Grayscale-texture joint classification (G-TC), AnatoMaskGAN Sec. III-C, Eqs. 3-4.

Descriptors, per slice and per anatomical class c (one-hot mask channel c, background included),
at M scales j (the image and mask average-pooled 2^j times):

- texture (Eq. 3): Sobel gradients ``gx, gy``; the class-masked means of ``(|grad I| + eps)^alpha_k``
  raised to ``1 / alpha_k`` for the texture weights ``alpha = (1, 2)`` (mean gradient magnitude and
  its quadratic mean).  Eq. 3 as printed mixes a product ``gx * gy`` with "N gradient directions";
  we use the gradient magnitude the text defines just before it, restricted to each class region;
- grayscale (Eq. 4): the class-masked mean, standard deviation, maximum and minimum.  Eq. 4 as
  printed multiplies the four and divides by the mask area; we keep the four statistics as
  separate features (their product is zero whenever one of them is, e.g. a black minimum) and let
  the classifier weight them, which "linearly combines the weighted texture and grayscale scores".

A classifier scores both descriptors per class: two small MLPs (texture, grayscale) with a learned
class embedding, combined linearly into S_class.  It is trained beside the discriminator to tell
real from generated (binary cross-entropy on S_class); the generator's loss is the L1 distance of
the generated scores to the real scores, ``mean_c |S_c(fake) - S_c(real)|`` over the classes present
in a slice, so it is exactly 0 when the generated image equals the real one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from anatosynth_components.network_size import check_size_fits

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal and vertical Sobel gradients of (N, 1, H, W) images (replicate padding)."""
    kx = _SOBEL_X.to(image).view(1, 1, 3, 3)
    padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
    return F.conv2d(padded, kx), F.conv2d(padded, kx.transpose(2, 3))


def masked_stats(values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-6) -> dict[str, torch.Tensor]:
    """Mean, std, max and min of (N, 1, H, W) ``values`` inside each (N, K, H, W) ``mask`` -> (N, K) each."""
    area = mask.sum((2, 3)).clamp_min(eps)
    mean = (values * mask).sum((2, 3)) / area
    var = ((values - mean[..., None, None]) ** 2 * mask).sum((2, 3)) / area
    inside = mask > 0.5
    big = torch.finfo(values.dtype).max
    vmax = torch.where(inside, values, torch.full_like(values, -big).expand_as(mask)).amax((2, 3))
    vmin = torch.where(inside, values, torch.full_like(values, big).expand_as(mask)).amin((2, 3))
    present = inside.any(-1).any(-1)
    zero = torch.zeros_like(mean)
    return {
        "mean": mean,
        "std": (var + eps).sqrt(),
        "max": torch.where(present, vmax, zero),
        "min": torch.where(present, vmin, zero),
    }


def gtc_descriptors(
    image: torch.Tensor,
    masks: torch.Tensor,
    scales: int = 3,
    alphas: tuple[float, ...] = (1.0, 2.0),
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Texture and grayscale descriptors.

    Args:
        image: (N, 1, H, W) in [0, 1].
        masks: (N, K, H, W) one-hot.
        scales: M.
        alphas: texture exponents alpha_k.

    Returns:
        texture (N, K, M * len(alphas)), gray (N, K, 4 M), present (N, K) bool (class in the slice).
    """
    texture, gray = [], []
    for j in range(scales):
        img = F.avg_pool2d(image, 2**j) if j else image
        msk = F.avg_pool2d(masks.float(), 2**j) if j else masks.float()
        gx, gy = sobel(img)
        magnitude = (gx**2 + gy**2 + eps).sqrt()
        area = msk.sum((2, 3)).clamp_min(eps)
        for a in alphas:
            # + eps inside the root: an absent class has mean 0, where x ** (1 / a) has no gradient
            texture.append((((magnitude + eps) ** a * msk).sum((2, 3)) / area + eps) ** (1 / a))
        stats = masked_stats(img, msk)
        gray += [stats["mean"], stats["std"], stats["max"], stats["min"]]
    present = masks.float().sum((2, 3)) > 0
    return torch.stack(texture, -1), torch.stack(gray, -1), present


class GTCClassifier(nn.Module):
    """Scores S_class of every class of every slice from its G-TC descriptors.

    Args:
        num_classes: K.
        scales: M.
        hidden: width of the two MLPs.
        embed: size of the class embedding.

    Shapes:
        ``forward(image (N, 1, H, W), masks (N, K, H, W))`` -> scores (N, K), present (N, K).
    """

    def __init__(self, num_classes: int, scales: int = 3, hidden: int = 64, embed: int = 8) -> None:
        super().__init__()
        self.scales = scales
        self.embedding = nn.Embedding(num_classes, embed)

        def mlp(features: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Linear(features + embed, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                nn.LeakyReLU(0.2), nn.Linear(hidden, 1),
            )  # fmt: skip

        self.texture = mlp(2 * scales)
        self.gray = mlp(4 * scales)
        self.combine = nn.Linear(2, 1)  # S_class = a * s_texture + b * s_gray + c

    def check_size(self, spatial_size: Sequence[int], multiple: int = 1) -> None:
        """``ConfigError`` unless every side of ``spatial_size`` is at least ``2 ** (scales - 1)``, the
        average pooling of the coarsest scale.

        >>> GTCClassifier(3).check_size((2, 8))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        anatosynth_components.errors.ConfigError: spatial_size [2, 8] is too small for G-TC's 3 scales ...
        """
        pool = 2 ** (self.scales - 1)
        check_size_fits(
            spatial_size,
            lambda size: (
                None
                if min(size) >= pool
                else f"G-TC's {self.scales} scales (the coarsest average-pools the image by {pool})"
            ),
            multiple,
        )

    def forward(self, image: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        texture, gray, present = gtc_descriptors(image, masks, self.scales)
        emb = self.embedding.weight.unsqueeze(0).expand(image.shape[0], -1, -1)
        s_tex = self.texture(torch.cat([texture, emb], -1))
        s_gray = self.gray(torch.cat([gray, emb], -1))
        return self.combine(torch.cat([s_tex, s_gray], -1)).squeeze(-1), present


def _fold(masks: torch.Tensor, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, K, n, H, W), (B, 1, n, H, W) -> slices (B n, K, H, W), (B n, 1, H, W)."""
    return masks.transpose(1, 2).flatten(0, 1), images.transpose(1, 2).flatten(0, 1)


class GTCLoss(nn.Module):
    """The G-TC terms: ``generator(...)`` pulls generated scores to real ones (L1 over present
    classes); ``classifier(...)`` trains the classifier to tell real (1) from generated (0)."""

    def __init__(self, classifier: GTCClassifier) -> None:
        super().__init__()
        self.classifier = classifier

    def generator(self, masks: torch.Tensor, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        m, f = _fold(masks, fake)
        _, r = _fold(masks, real)
        s_fake, present = self.classifier(f, m)
        with torch.no_grad():
            s_real, _ = self.classifier(r, m)
        return ((s_fake - s_real).abs() * present).sum() / present.sum().clamp_min(1)

    def classifier_loss(self, masks: torch.Tensor, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        m, f = _fold(masks, fake.detach())
        _, r = _fold(masks, real)
        scores, present = self.classifier(torch.cat([r, f]), torch.cat([m, m]))  # one pass (DDP)
        (s_real, s_fake), present = scores.chunk(2), present.chunk(2)[0]
        w = present.float()
        bce = F.binary_cross_entropy_with_logits
        real_term = bce(s_real, torch.ones_like(s_real), weight=w, reduction="sum")
        fake_term = bce(s_fake, torch.zeros_like(s_fake), weight=w, reduction="sum")
        return (real_term + fake_term) / w.sum().clamp_min(1) / 2
