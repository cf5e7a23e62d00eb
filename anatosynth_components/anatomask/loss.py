"""The AnatoMaskGAN objective, Eq. 5, and its discriminator counterpart.

``L_G = L_GAN + lambda_feat / N_D * sum_i sum_j L_feat^(i,j) + lambda_vgg * L_VGG + lambda_gtc * L_GTC``

with SPADE's hinge adversarial loss (:func:`hinge_generator`, :func:`hinge_discriminator`),
feature matching as L1 between the discriminator's intermediate features of the real and the
generated image (the mean absolute difference of each layer's features, summed over the layers of
each discriminator and over the discriminators, divided by N_D as written), the VGG19 loss and the
G-TC loss.  The paper's weights are the defaults: lambda_feat 10, lambda_vgg 5, lambda_gtc 10.  A
weight of 0 removes its term (and needs no network: ``lambda_vgg: 0`` trains
without VGG weights).

Why the hinge loss is written here: MONAI's ``PatchAdversarialLoss(criterion="hinge")`` passes the
discriminator's output through tanh first, so the generator's gradient with respect to D's output
is about -1.8e-4 at D = -5 (where SPADE's is -1 / N): it vanishes exactly when D is confident.
SPADE (``GANLoss`` with ``gan_mode="hinge"``) uses the raw logits; so do we.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from anatosynth_components.anatomask.gtc import GTCLoss
from anatosynth_components.anatomask.vgg import VGG19Loss
from anatosynth_components.checks import check_positive_float
from anatosynth_components.errors import ConfigError

#: what ``AnatoMaskDiscriminator`` returns: per-scale logits and per-scale intermediate features
DiscriminatorOutput = tuple[list[torch.Tensor], list[list[torch.Tensor]]]


def hinge_generator(fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """SPADE's generator hinge term ``-mean D(fake)``, averaged over the discriminators (scales).

    >>> hinge_generator([torch.tensor([[-5.0, 1.0]])])
    tensor(2.)
    """
    return torch.stack([-logits.float().mean() for logits in fake_logits]).mean()


def hinge_discriminator(logits: list[torch.Tensor], real: bool) -> torch.Tensor:
    """SPADE's discriminator hinge: ``mean relu(1 - D(real))`` or ``mean relu(1 + D(fake))``, averaged
    over the discriminators (scales); 0 beyond the margin (D >= 1 on real, D <= -1 on fake).

    >>> hinge_discriminator([torch.tensor([2.0, 0.0])], real=True)
    tensor(0.5000)
    >>> hinge_discriminator([torch.tensor([-3.0])], real=False)
    tensor(0.)
    """
    sign = -1.0 if real else 1.0
    return torch.stack([F.relu(1.0 + sign * x.float()).mean() for x in logits]).mean()


def feature_matching(
    fake_feats: list[list[torch.Tensor]], real_feats: list[list[torch.Tensor]]
) -> torch.Tensor:
    """Eq. 5's ``1 / N_D * sum_i sum_j L_feat^(i,j)`` with L1 distances; real features are constants."""
    total = fake_feats[0][0].new_zeros(())
    for fake_d, real_d in zip(fake_feats, real_feats, strict=True):
        for f, r in zip(fake_d, real_d, strict=True):
            total = total + F.l1_loss(f, r.detach())
    return total / len(fake_feats)


def with_total(
    terms: dict[str, torch.Tensor], weights: Mapping[str, float] | None = None
) -> dict[str, torch.Tensor]:
    """``terms`` with ``"total"`` added: their sum in order, each times its weight in ``weights``
    (unweighted where it has none).

    >>> with_total({"a": torch.tensor(1.0), "b": torch.tensor(2.0)}, {"b": 10.0})["total"]
    tensor(21.)
    """
    weights = weights or {}
    total = None
    for key, value in terms.items():
        term = value if key not in weights else weights[key] * value
        total = term if total is None else total + term
    terms["total"] = total
    return terms


class AnatoMaskLoss(nn.Module):
    """Generator and discriminator losses of AnatoMaskGAN.

    Args:
        lambda_feat, lambda_vgg, lambda_gtc: weights of Eq. 5.
        gtc: the G-TC loss (needed when ``lambda_gtc > 0``).
        vgg: the VGG19 loss (built from the local cache when ``lambda_vgg > 0`` and not given).
    """

    def __init__(
        self,
        lambda_feat: float = 10.0,
        lambda_vgg: float = 5.0,
        lambda_gtc: float = 10.0,
        gtc: GTCLoss | None = None,
        vgg: VGG19Loss | None = None,
    ) -> None:
        super().__init__()
        lambda_feat = check_positive_float("lambda_feat", lambda_feat, allow_zero=True)
        lambda_vgg = check_positive_float("lambda_vgg", lambda_vgg, allow_zero=True)
        lambda_gtc = check_positive_float("lambda_gtc", lambda_gtc, allow_zero=True)
        if lambda_gtc > 0 and gtc is None:
            raise ConfigError("lambda_gtc > 0 needs a G-TC loss (gtc=GTCLoss(GTCClassifier(num_classes)))")
        self.lambda_feat, self.lambda_vgg, self.lambda_gtc = lambda_feat, lambda_vgg, lambda_gtc
        self.gtc = gtc if lambda_gtc > 0 else None
        self.vgg = (vgg or VGG19Loss()) if lambda_vgg > 0 else None

    def generator(
        self,
        masks: torch.Tensor,
        fake: torch.Tensor,
        real: torch.Tensor,
        fake_d: DiscriminatorOutput,
        real_d: DiscriminatorOutput,
    ) -> dict[str, torch.Tensor]:
        """Eq. 5 terms and their weighted sum ``total``; ``fake_d`` / ``real_d`` are discriminator outputs."""
        terms = {"gan": hinge_generator(fake_d[0])}
        if self.lambda_feat > 0:
            terms["feat"] = feature_matching(fake_d[1], real_d[1])
        if self.vgg is not None:
            terms["vgg"] = self.vgg(fake.transpose(1, 2).flatten(0, 1), real.transpose(1, 2).flatten(0, 1))
        if self.gtc is not None:
            terms["gtc"] = self.gtc.generator(masks, fake, real)
        return with_total(terms, {"feat": self.lambda_feat, "vgg": self.lambda_vgg, "gtc": self.lambda_gtc})

    def discriminator(
        self,
        masks: torch.Tensor,
        fake: torch.Tensor,
        real: torch.Tensor,
        fake_d: DiscriminatorOutput,
        real_d: DiscriminatorOutput,
    ) -> dict[str, torch.Tensor]:
        """Hinge loss of the discriminator plus the G-TC classifier's real/fake loss."""
        terms = {
            "d_real": hinge_discriminator(real_d[0], real=True),
            "d_fake": hinge_discriminator(fake_d[0], real=False),
        }
        if self.gtc is not None:
            terms["gtc_classifier"] = self.gtc.classifier_loss(masks, fake, real)
        return with_total(terms)
