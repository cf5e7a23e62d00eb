"""``GeneratorPolicy``: the three ACIS generators read as one stochastic policy (paper Sec. 2.3).

ACIS refines "the entire network" with a policy gradient [25] whose reward is minus the appearance
uncertainty.  A policy gradient needs the generators to *sample* their outputs with a known density;
the paper does not say how, so this is the reading (one action per generator, chained as in Sec. 2.2)::

    pm    ~ N(G_pm(z), sigma_pm^2 I)                       pseudo-mask, a Gaussian around the generator
    y_hat ~ Categorical(softmax(G_ann(clip(pm))))           annotation, one class per voxel
    x_hat ~ N(G_img(cat[clip(pm), onehot(y_hat)]), sigma_x^2 I)   image

with z ~ N(0, I) the (parameter-free) latent noise and ``clip`` to [0, 1] the deterministic map from
an action to what the next generator and the reward see (a transformation of the action does not
change its density's gradient).  ``log pi(a) = log N(pm) + log Cat(y_hat) + log N(x_hat)``, each summed
over voxels; every generator receives the score of its own action (the inputs of the later generators
are detached samples).  sigma_pm and sigma_x are the exploration noise: the variance of the estimator
grows like 1 / sigma^2, a smaller sigma explores less.

Example::

    >>> import torch
    >>> from torch import nn
    >>> class PM(nn.Module):
    ...     def __init__(self): super().__init__(); self.up = nn.Upsample(scale_factor=4)
    ...     def latent_shape(self, b): return (b, 1, 4, 4)
    ...     def forward(self, z): return torch.sigmoid(self.up(z))
    >>> policy = GeneratorPolicy(PM(), nn.Conv2d(1, 3, 1), nn.Sequential(nn.Conv2d(4, 1, 1), nn.Sigmoid()))
    >>> s = policy.sample(torch.randn(2, 1, 4, 4))
    >>> tuple(s.image.shape), tuple(s.annotation.shape), tuple(s.log_prob.shape), s.num_voxels
    ((2, 1, 16, 16), (2, 1, 16, 16), (2,), 256)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from monai.networks.utils import one_hot
from torch import nn
from torch.distributions import Categorical, Normal

from anatosynth_components.checks import check_positive_float


@dataclass
class PolicySample:
    """One draw of the policy for a batch.

    pseudo_mask, image: (B, 1, *S) in [0, 1] (clipped actions); annotation: class ids (B, 1, *S);
    annotation_onehot: (B, C, *S); log_prob: (B,) with the graph to the generators; log_probs: the
    three terms (B,) by generator; num_voxels: prod(S), the voxels of one image.
    """

    pseudo_mask: torch.Tensor
    annotation: torch.Tensor
    annotation_onehot: torch.Tensor
    image: torch.Tensor
    log_prob: torch.Tensor
    log_probs: dict[str, torch.Tensor]
    num_voxels: int


class GeneratorPolicy(nn.Module):
    """The chain pseudo-mask -> annotation -> image as a stochastic policy with a tractable log-density.

    Args:
        pm_generator: ``z -> (B, 1, *S)`` in [0, 1], with ``latent_shape(batch_size)``.
        annotation_generator: ``pm -> logits (B, num_classes, *S)``.
        image_generator: ``cat([pm, onehot], 1) -> (B, 1, *S)`` in [0, 1].
        pm_sigma: sigma_pm, standard deviation of the pseudo-mask action.
        image_sigma: sigma_x, standard deviation of the image action.
    """

    def __init__(
        self,
        pm_generator: nn.Module,
        annotation_generator: nn.Module,
        image_generator: nn.Module,
        pm_sigma: float = 0.05,
        image_sigma: float = 0.05,
    ) -> None:
        super().__init__()
        self.pm_generator, self.annotation_generator = pm_generator, annotation_generator
        self.image_generator = image_generator
        self.pm_sigma = check_positive_float("pm_sigma", pm_sigma)
        self.image_sigma = check_positive_float("image_sigma", image_sigma)

    def latent_shape(self, batch_size: int) -> tuple[int, ...]:
        """The shape of z for ``batch_size`` samples (the pseudo-mask generator's)."""
        generator = getattr(self.pm_generator, "module", self.pm_generator)  # DDP-wrapped or not
        return tuple(generator.latent_shape(int(batch_size)))

    def synthesize(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """The deterministic chain sampling uses (``AcisPairGenerator.synthesize``, ``inference.json``):
        the policy's mean pseudo-mask and image and its most likely annotation, no exploration noise.

        Returns ``pseudo_mask``, ``image`` (B, 1, *S) float32 in [0, 1]; ``annotation`` ids (B, 1, *S);
        ``annotation_onehot`` (B, C, *S).  Call it under ``torch.no_grad()`` and eval mode for the
        generators as sampling runs them (the refinement report does).
        """
        pm = self.pm_generator(z).float().clamp(0.0, 1.0)
        logits = self.annotation_generator(pm).float()
        ids = logits.argmax(dim=1, keepdim=True)
        onehot = one_hot(ids, logits.shape[1], dtype=pm.dtype, dim=1)
        image = self.image_generator(torch.cat([pm, onehot], dim=1)).float().clamp(0.0, 1.0)
        return {"pseudo_mask": pm, "annotation": ids, "annotation_onehot": onehot, "image": image}

    def sample(self, z: torch.Tensor) -> PolicySample:
        """Draw pm, y_hat, x_hat for latent ``z``; ``log_prob`` keeps the graph to the generators."""
        # float32 distributions even under autocast: log pi sums over every voxel, and REINFORCE needs
        # the small differences between samples (the generators' outputs are cast, their layers are not)
        pm_dist = Normal(self.pm_generator(z).float(), self.pm_sigma)
        pm_action = pm_dist.sample()
        pm = pm_action.clamp(0.0, 1.0)
        logits = self.annotation_generator(pm).float()
        ann_dist = Categorical(logits=logits.movedim(1, -1))
        ids = ann_dist.sample()  # (B, *S)
        onehot = one_hot(ids.unsqueeze(1), logits.shape[1], dtype=pm.dtype, dim=1)
        image_dist = Normal(self.image_generator(torch.cat([pm, onehot], dim=1)).float(), self.image_sigma)
        image_action = image_dist.sample()
        log_probs = {
            "pseudo_mask": pm_dist.log_prob(pm_action).flatten(1).sum(1),
            "annotation": ann_dist.log_prob(ids).flatten(1).sum(1),
            "image": image_dist.log_prob(image_action).flatten(1).sum(1),
        }
        return PolicySample(
            pseudo_mask=pm,
            annotation=ids.unsqueeze(1),
            annotation_onehot=onehot,
            image=image_action.clamp(0.0, 1.0),
            log_prob=log_probs["pseudo_mask"] + log_probs["annotation"] + log_probs["image"],
            log_probs=log_probs,
            num_voxels=int(ids[0].numel()),
        )
