"""``AppearanceUncertainty``: ACIS Eq. 3, for images and for annotations.

Paper Sec. 2.3, Eq. 3::

    Sigma_app^2 = 1/T sum_t ( (x o phi_t - x_hat)^2 + (x_hat o varphi_t - x)^2 )

with phi_t the t-th stochastic field registering the real x to the synthetic x_hat, varphi_t the one
registering x_hat to x.  "We encourage for the deformed annotation y o phi to likewise approximate
y_hat": the same expression with the one-hot annotations, each warped by the *image* fields of the
same pass (``y o phi_t`` vs ``y_hat``, ``y_hat o varphi_t`` vs ``y``).

Readings:

- The stochastic passes are MC-dropout passes of the registration network (:func:`mc_dropout`, see
  :mod:`.registration`); x -> x_hat and x_hat -> x of one pass run as one batch of 2B pairs.
- An annotation is a vector per voxel (one-hot over ``C`` classes, background included); its squared
  difference is the squared Euclidean distance over classes (0 where the warped label agrees, up to 2
  where it disagrees, soft at bilinearly interpolated borders).
- Maps (B, 1, *S) are Eq. 3 per voxel; the per-sample values (B,) are their means over voxels.
- Everything runs under ``torch.no_grad()`` with the registration network frozen (parameters with
  ``requires_grad=False``, eval mode except dropout): memory stays at inference level and no gradient
  reaches the network, as the paper requires (the uncertainty is a *reward*, Sec. 2.3).
- Warping: MONAI ``Warp``, bilinear, ``border`` padding.  ``registration(moving, fixed)`` must return
  ``(warped, ddf)`` as MONAI ``VoxelMorph`` does; only the ddf is used.

Example::

    >>> from anatosynth_components.acis.refinement.registration import DiffeomorphicRegistration
    >>> reg = DiffeomorphicRegistration(2, channels=(8, 8, 8, 8), final_conv_channels=(8,))
    >>> u = AppearanceUncertainty(reg, num_passes=4)
    >>> x = torch.rand(2, 1, 16, 16); y = torch.zeros(2, 3, 16, 16); y[:, 0] = 1
    >>> out = u(x, x, y, y)
    >>> tuple(out.image.shape), tuple(out.image_map.shape), out.image.requires_grad
    ((2,), (2, 1, 16, 16), False)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from monai.networks.blocks import Warp
from torch import nn

from anatosynth_components.acis.refinement.registration import mc_dropout
from anatosynth_components.errors import ConfigError


@dataclass
class Uncertainty:
    """Eq. 3 per sample (B,) and per voxel (B, 1, *S), for the image and for the annotation."""

    image: torch.Tensor
    annotation: torch.Tensor
    image_map: torch.Tensor
    annotation_map: torch.Tensor


class AppearanceUncertainty:
    """Eq. 3 over ``num_passes`` MC-dropout passes of a frozen registration network.

    Args:
        registration: ``(moving, fixed) -> (warped, ddf)`` (MONAI ``VoxelMorph`` contract), e.g.
            :class:`DiffeomorphicRegistration`; frozen here (``requires_grad_(False)``).
        num_passes: T, the stochastic passes (TransMorph-Bayes uses 25; ACIS gives no value).
    """

    def __init__(self, registration: nn.Module, num_passes: int = 10) -> None:
        if isinstance(num_passes, bool) or int(num_passes) < 1:
            raise ConfigError(f"num_passes (T of Eq. 3) must be >= 1, got {num_passes!r}")
        self.registration = registration.requires_grad_(False)
        self.num_passes = int(num_passes)
        self.warp = Warp(mode="bilinear", padding_mode="border")

    def __call__(
        self, image: torch.Tensor, synthetic: torch.Tensor, label: torch.Tensor, synthetic_label: torch.Tensor
    ) -> Uncertainty:
        """image x, synthetic x_hat (B, 1, *S); label y, synthetic_label y_hat one-hot (B, C, *S)."""
        if image.shape != synthetic.shape:
            raise ValueError(
                f"real {tuple(image.shape)} and synthetic {tuple(synthetic.shape)} images differ"
            )
        if label.shape != synthetic_label.shape or label.shape[2:] != image.shape[2:]:
            raise ValueError(
                f"annotations {tuple(label.shape)} / {tuple(synthetic_label.shape)} do not match the images "
                f"{tuple(image.shape)}"
            )
        batch = image.shape[0]
        image_map = torch.zeros_like(image[:, :1])
        annotation_map = torch.zeros_like(image[:, :1])
        with mc_dropout(self.registration):
            moving, fixed = torch.cat([image, synthetic]), torch.cat([synthetic, image])
            for _ in range(self.num_passes):
                phi, varphi = split_fields(self.registration(moving, fixed)[1], batch)
                image_map += self._term(image, synthetic, phi) + self._term(synthetic, image, varphi)
                annotation_map += self._term(label, synthetic_label, phi) + self._term(
                    synthetic_label, label, varphi
                )
        image_map /= self.num_passes
        annotation_map /= self.num_passes
        return Uncertainty(
            image=image_map.flatten(1).mean(1),
            annotation=annotation_map.flatten(1).mean(1),
            image_map=image_map,
            annotation_map=annotation_map,
        )

    def _term(self, moving: torch.Tensor, target: torch.Tensor, ddf: torch.Tensor) -> torch.Tensor:
        """(moving o ddf - target)^2 summed over channels: (B, 1, *S)."""
        return (self.warp(moving, ddf) - target).pow(2).sum(1, keepdim=True)


def split_fields(ddf: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(phi, varphi) of one pass from the fields of the 2B pairs ``(moving, fixed) = ([x, x_hat], [x_hat,
    x])``: phi (B, dims, *S) registers x to x_hat (``x o phi ~ x_hat``), varphi registers x_hat to x.

    With MONAI's ``Warp`` convention (``moving o ddf (p) = moving(p + ddf(p))``, ddf in voxels) the field
    of pair (moving, fixed) is the one with ``moving o ddf ~ fixed``; the first B pairs move x onto x_hat.
    ``tests/test_refinement_uncertainty.py`` checks the direction with a registration that computes the
    exact translation between shifted blobs (a swapped pairing gives a large Eq. 3 value).
    """
    return ddf[:batch], ddf[batch:]
