"""``AcisSynthesisLoss``: the objectives of the ACIS annotation and image generators (paper Sec. 2.2).

Paper: phase 1 ("real-world image-based initialization") optimises the generator and the image
discriminator "with an objective including a reconstruction consistency loss and the adversarial loss.
The reconstruction consistency loss is implemented by the mean square error"; phase 2 fine-tunes "on
synthesized pseudo-masks", the discriminator judging realism and the consistency of (image, pseudo-mask,
annotation).  No weights are given.  Readings and choices:

- **image generator, phase 1**: ``lambda_rec * MSE(G_img(pm, y), x) + lambda_adv * L_adv`` on the real
  (pseudo-mask, annotation) of the real image ``x``.  ``lambda_rec = 100`` is pix2pix's weight of its
  reconstruction term (ref. [21], there L1); ``lambda_adv = 1``.
- **adversarial loss**: MONAI's ``PatchAdversarialLoss``, ``bce`` by default (pix2pix's "vanilla" GAN
  loss on PatchGAN logits); ``least_squares`` and ``hinge`` are options.  The discriminator loss is
  halved, as in pix2pix, to slow D relative to G.
- **annotation generator**: the paper gives no loss.  In phase 1 real (pseudo-mask, annotation) pairs
  exist, so it is trained as a segmentation network of the pseudo-mask with MONAI's ``DiceCELoss``
  (softmax, one-hot targets, background included), ``lambda_ann = 1``: Dice for the small structures,
  cross-entropy for calibrated logits.  In phase 2 the adversarial loss of the triple also reaches it,
  through the straight-through one-hot of its logits (this is how the discriminator's "consistency
  between the synthesized image, pseudo-mask, and the synthesized annotation" trains it).
- **phase 2**: ``lambda_adv * L_adv(D(G_img(G_pm(z), y^), 0, y^))`` plus ``phase2_anchor`` times
  the phase-1 objective on the batch's real pairs (its adversarial term ``D(G_img(pm, y), 0, y)``).
  D's pseudo-mask input is zeros in phase 2, for real and generated triples alike
  (:func:`~anatosynth_components.acis.step.judge`): the real pseudo-masks and ``G_pm(z)`` come from
  different sources, a difference the generators trained in phase 2 cannot change.  The anchor
  (default 1) is our choice, not the paper's: with generated pseudo-masks there is no reconstruction
  target, and the anchor keeps the generators from drifting away from real anatomy (and the image
  consistent with its pseudo-mask, which D no longer sees) while they adapt to ``G_pm``; 0 gives the
  pure reading.

Example::

    >>> loss = AcisSynthesisLoss(num_classes=3)
    >>> logits_fake = torch.zeros(2, 1, 4, 4)
    >>> round(float(loss.adversarial_generator(logits_fake)), 4)  # BCE of sigmoid(0) = 0.5 against 1
    0.6931
"""

from __future__ import annotations

import torch
from monai.losses import DiceCELoss, PatchAdversarialLoss
from torch import nn

from anatosynth_components.checks import check_positive_float
from anatosynth_components.errors import ConfigError

ADV_CRITERIA = ("bce", "least_squares", "hinge")


class AcisSynthesisLoss(nn.Module):
    """Loss terms of the annotation generator, the image generator and the image discriminator.

    Args:
        num_classes: annotation classes including background.
        lambda_rec: weight of the MSE reconstruction term.
        lambda_adv: weight of the generators' adversarial term.
        lambda_ann: weight of the annotation generator's Dice + CE term.
        adv_criterion: ``bce``, ``least_squares`` or ``hinge`` (MONAI ``PatchAdversarialLoss``).
        phase2_anchor: weight of the phase-1 objective on real pairs during phase 2.
    """

    def __init__(
        self,
        num_classes: int,
        lambda_rec: float = 100.0,
        lambda_adv: float = 1.0,
        lambda_ann: float = 1.0,
        adv_criterion: str = "bce",
        phase2_anchor: float = 1.0,
    ) -> None:
        super().__init__()
        if adv_criterion not in ADV_CRITERIA:
            raise ConfigError(f"adv_criterion must be one of {ADV_CRITERIA}, got {adv_criterion!r}")
        self.num_classes = int(num_classes)
        self.lambda_rec = check_positive_float("lambda_rec", lambda_rec, allow_zero=True)
        self.lambda_adv = check_positive_float("lambda_adv", lambda_adv, allow_zero=True)
        self.lambda_ann = check_positive_float("lambda_ann", lambda_ann, allow_zero=True)
        self.phase2_anchor = check_positive_float("phase2_anchor", phase2_anchor, allow_zero=True)
        self.adversarial = PatchAdversarialLoss(criterion=adv_criterion, reduction="mean")
        self.annotation = DiceCELoss(to_onehot_y=True, softmax=True, include_background=True)
        self.reconstruction = nn.MSELoss()

    def discriminator(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """``0.5 * (L(D(real), real) + L(D(fake), fake))`` and its two halves."""
        real = self.adversarial(real_logits, target_is_real=True, for_discriminator=True)
        fake = self.adversarial(fake_logits, target_is_real=False, for_discriminator=True)
        return {"total": 0.5 * (real + fake), "real": real.detach(), "fake": fake.detach()}

    def adversarial_generator(self, fake_logits: torch.Tensor) -> torch.Tensor:
        """The generator's adversarial term (unweighted): fake patches judged real."""
        return self.adversarial(fake_logits, target_is_real=True, for_discriminator=False)

    def phase1(
        self,
        image: torch.Tensor,
        real_image: torch.Tensor,
        logits: torch.Tensor,
        labels: torch.Tensor,
        fake_logits: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Phase-1 generator objective on real pairs.

        Args:
            image: reconstruction ``G_img(pm, onehot(y))`` (B, 1, *S); real_image: ``x`` (B, 1, *S).
            logits: ``G_ann(pm)`` (B, C, *S); labels: real ids ``y`` (B, 1, *S).
            fake_logits: ``D(image, pm, onehot(y))`` patch logits.
        """
        rec = self.reconstruction(image, real_image)
        adv = self.adversarial_generator(fake_logits)
        ann = self.annotation(logits, labels.long())
        total = self.lambda_rec * rec + self.lambda_adv * adv + self.lambda_ann * ann
        return {"total": total, "mse": rec.detach(), "adv": adv.detach(), "dice_ce": ann.detach()}

    def phase2(
        self, fake_logits: torch.Tensor, anchor: dict[str, torch.Tensor] | None
    ) -> dict[str, torch.Tensor]:
        """Phase-2 generator objective: the adversarial term of generated triples plus the anchor
        (``phase1(...)`` on real pairs, or ``None`` when ``phase2_anchor`` is 0)."""
        adv = self.adversarial_generator(fake_logits)
        total = self.lambda_adv * adv
        out = {"adv_generated": adv.detach()}
        if anchor is not None:
            total = total + self.phase2_anchor * anchor["total"]
            out.update({f"anchor_{k}": v.detach() for k, v in anchor.items() if k != "total"})
        out["total"] = total
        return out
