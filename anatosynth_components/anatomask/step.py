"""One AnatoMaskGAN training iteration: a discriminator step, then a generator step.

The Ignite trainer of the anatomask bundles (:class:`AnatoMaskTrainer`) calls this function; the
benchmark and the tests call it directly.  Batches are slice stacks: ``masks`` one-hot
(B, K, n, H, W), ``images`` (B, 1, n, H, W) in [0, 1] and ``z_index`` (B, n).

As in SPADE (``discriminate``), the discriminator judges the generated and the real stacks in one
forward pass on their concatenation along the batch: the same spectral-norm power iteration for
both, and one forward per backward, which ``DistributedDataParallel`` requires.  During the G step
the discriminator and the G-TC classifier are frozen (and, under DDP, outside gradient sync).
"""

from __future__ import annotations

import torch
from torch import nn

from anatosynth_components.anatomask.loss import AnatoMaskLoss, DiscriminatorOutput
from anatosynth_components.engines.modules import frozen
from anatosynth_components.engines.precision import FULL_PRECISION, Precision


def judge(
    discriminator: nn.Module, masks: torch.Tensor, fake: torch.Tensor, real: torch.Tensor
) -> tuple[DiscriminatorOutput, DiscriminatorOutput]:
    """Discriminator outputs for (masks, fake) and (masks, real), computed in one forward pass."""
    outputs, features = discriminator(torch.cat([masks, masks]), torch.cat([fake, real]))

    def half(x: torch.Tensor, i: int) -> torch.Tensor:
        return x.chunk(2)[i]

    return tuple(  # type: ignore[return-value]
        ([half(o, i) for o in outputs], [[half(f, i) for f in scale] for scale in features]) for i in (0, 1)
    )


def anatomask_train_step(
    masks: torch.Tensor,
    images: torch.Tensor,
    z_index: torch.Tensor,
    generator: nn.Module,
    discriminator: nn.Module,
    loss: AnatoMaskLoss,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    noise_seed: torch.Tensor | None = None,
    precision: Precision = FULL_PRECISION,
) -> tuple[dict[str, float], torch.Tensor]:
    """Update D (and the G-TC classifier, whose parameters ``opt_d`` must hold), then G.

    ``generator(masks, z_index, noise_seed)`` is an :class:`AnatoMaskGenerator` or an
    :class:`AnatoMaskNet` (possibly wrapped in DDP); without ``noise_seed`` one seed per stack is
    drawn from torch's generator and used by both steps.  ``precision`` (the trainer's
    :class:`~anatosynth_components.engines.precision.Precision`) runs the forward passes and loss terms
    under autocast and scales the backward passes for float16.

    Returns:
        every loss term as a float (``d_*`` from the D step, ``g_*`` the Eq. 5 terms from the G
        step), and the stacks generated in the G step (detached).
    """
    if noise_seed is None:
        noise_seed = torch.randint(0, 2**31 - 1, (masks.shape[0],)).to(masks.device)
    with torch.no_grad(), precision.autocast():
        fake = generator(masks, z_index, noise_seed)
    with precision.autocast():
        d_terms = loss.discriminator(masks, fake, images, *judge(discriminator, masks, fake, images))
    precision.minimize(d_terms["total"], opt_d)

    with frozen(discriminator, loss.gtc):  # the G step needs gradients through D, not D's own
        with precision.autocast():
            fake = generator(masks, z_index, noise_seed)
            g_terms = loss.generator(masks, fake, images, *judge(discriminator, masks, fake, images))
        precision.minimize(g_terms["total"], opt_g)
    precision.update()
    out = {f"g_{k}": float(v.detach()) for k, v in g_terms.items()}
    out.update({f"d_{k}" if not k.startswith("d_") else k: float(v.detach()) for k, v in d_terms.items()})
    return out, fake.detach().float()
