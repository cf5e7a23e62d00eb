"""One AnatoMaskGAN training iteration: a discriminator step, then a generator step.

The Ignite trainer of the anatomask bundles calls this function; the benchmark and the tests call
it directly.  Batches are slice stacks: ``masks`` one-hot (B, K, n, H, W), ``images`` (B, 1, n, H, W)
in [0, 1] and ``z_index`` (B, n).
"""

from __future__ import annotations

import torch
from torch import nn

from anatosynth_components.losses.anatomask_loss import AnatoMaskLoss


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
) -> dict[str, float]:
    """Update D (and the G-TC classifier, whose parameters ``opt_d`` must hold), then G.

    Returns:
        every loss term as a float (``d_*`` from the D step, the Eq. 5 terms from the G step).
    """
    with torch.no_grad():
        fake = generator(masks, z_index, noise_seed)
    d_terms = loss.discriminator(
        masks, fake, images, discriminator(masks, fake), discriminator(masks, images)
    )
    opt_d.zero_grad(set_to_none=True)
    d_terms["total"].backward()
    opt_d.step()

    frozen = [discriminator, *([loss.gtc] if loss.gtc is not None else [])]
    for module in frozen:  # the G step needs gradients through D, not D's own weight gradients
        module.requires_grad_(False)
    try:
        fake = generator(masks, z_index, noise_seed)
        with torch.no_grad():
            real_d = discriminator(masks, images)
        g_terms = loss.generator(masks, fake, images, discriminator(masks, fake), real_d)
        opt_g.zero_grad(set_to_none=True)
        g_terms["total"].backward()
        opt_g.step()
    finally:
        for module in frozen:
            module.requires_grad_(True)
    out = {f"g_{k}": float(v.detach()) for k, v in g_terms.items()}
    out.update({f"d_{k}" if not k.startswith("d_") else k: float(v.detach()) for k, v in d_terms.items()})
    return out
