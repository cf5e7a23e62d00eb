"""ACIS training iterations (paper Sec. 2.2): the pseudo-mask WGAN-GP step and the synthesis step.

:class:`~anatosynth_components.acis.trainer.AcisTrainer` calls these; tests and the
refinement call them directly.  Tensors: images, pseudo-masks (B, 1, *S) in [0, 1]; label ids
(B, 1, *S); one-hot annotations (B, C, *S).  ``S`` is (H, W) or (X, Y, Z).

Every module is called once per backward (DDP-safe): the discriminator judges real and fake triples
in one forward on their batch concatenation, the generators run once on the concatenation of their
inputs.  During a generator update the critic / discriminator is frozen (:func:`frozen`).

**What the image discriminator sees** (:func:`judge`).  Phase 1 judges ``(x, pm, y)`` against
``(G_img(pm, y), pm, y)``: the same real pseudo-mask on both sides, so conditioning on it only asks
for consistency.  Phase 2 would judge ``(x, pm_voronoi(x), y)`` against ``(x^, G_pm(z), y^)``: the
two pseudo-mask channels come from different sources (Voronoi tessellations of real CT against the
frozen pseudo-mask generator), so D could tell real from generated on that channel alone, which the
generators being trained (annotation, image) cannot change; their adversarial gradient would then say
nothing they can act on.  So in phase 2 D judges (image, annotation) pairs: its pseudo-mask input is
the same constant (zeros) for the real and the generated triples, in D's own update and in the
generators' adversarial terms (the generated triples', and the anchor's on the real pairs).  D keeps
its architecture and starts from phase 1's weights (the zero channel leaves the first convolution's
other input channels as trained).  The alternatives do not work: a real image has no ``G_pm``
pseudo-mask to pair with, and the Voronoi pseudo-mask of the generated image (``pm_voronoi(x^)``) is a
function of the image on both sides, as uninformative as zeros but a KDE and a tessellation per step.
The image's consistency with its pseudo-mask, which the paper also has D judge, is learnt in phase 1
and kept in phase 2 by the anchor (the phase-1 objective, reconstruction included, on real pairs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from anatosynth_components.acis.one_hot import label_one_hot, straight_through_one_hot
from anatosynth_components.acis.synthesis_loss import AcisSynthesisLoss
from anatosynth_components.acis.wgan_gp import WGANGPLoss
from anatosynth_components.engines.modules import frozen
from anatosynth_components.engines.precision import FULL_PRECISION, Precision


@dataclass
class AcisParts:
    """The modules a step calls; each may be a ``DistributedDataParallel`` wrapper."""

    pseudo_mask_generator: nn.Module
    annotation_generator: nn.Module
    image_generator: nn.Module
    critic: nn.Module
    discriminator: nn.Module


def _floats(prefix: str, terms: dict[str, torch.Tensor]) -> dict[str, float]:
    return {f"{prefix}{k}": float(v.detach()) for k, v in terms.items()}


def pseudo_mask_gan_step(
    real_pm: torch.Tensor,
    generator: nn.Module,
    critic: nn.Module,
    wgan: WGANGPLoss,
    opt_pm: torch.optim.Optimizer,
    opt_critic: torch.optim.Optimizer,
    latent: Callable[[int], torch.Tensor],
    update_generator: bool,
    precision: Precision = FULL_PRECISION,
) -> tuple[dict[str, float], torch.Tensor]:
    """One critic update of WGAN-GP on real pseudo-masks, and a generator update when
    ``update_generator`` (Gulrajani et al., Algorithm 1: ``n_critic`` critic updates per generator update).

    Args:
        real_pm: real pseudo-masks (B, 1, *S).
        generator: ``PseudoMaskGenerator`` (z -> pseudo-mask).
        latent: ``batch_size -> z`` (fresh noise for each of the two updates).
        precision: autocast and loss scaling of the trainer (the gradient penalty is computed on the
            scaled scores and unscaled, as PyTorch's AMP recipe for gradient penalties prescribes).

    Returns:
        ``pm_critic`` (critic loss), ``pm_wasserstein`` (critic's distance estimate), ``pm_gp``, and
        ``pm_generator`` when the generator was updated; the generated pseudo-masks (detached).
    """
    batch = real_pm.shape[0]
    with torch.no_grad(), precision.autocast():
        fake = generator(latent(batch)).float()
    with precision.autocast():
        terms = wgan.critic_loss(critic, real_pm, fake, grad_scale=precision.grad_scale)
    precision.minimize(terms["total"], opt_critic)
    out = {
        "pm_critic": float(terms["total"].detach()),
        "pm_wasserstein": float(terms["wasserstein"]),
        "pm_gp": float(terms["gradient_penalty"]),
    }
    if update_generator:
        with frozen(critic):
            with precision.autocast():
                fake = generator(latent(batch))
                g_loss = wgan.generator_loss(critic, fake)
            precision.minimize(g_loss, opt_pm)
        out["pm_generator"] = float(g_loss.detach())
    precision.update()
    return out, fake.detach().float()


def judge(
    discriminator: nn.Module,
    image: torch.Tensor,
    pm: torch.Tensor,
    annotation: torch.Tensor,
    phase2: bool,
) -> torch.Tensor:
    """The image discriminator's patch logits of triples as :func:`synthesis_step` shows them to it:
    phase 1 ``D(image, pm, annotation)``; phase 2 ``D(image, zeros, annotation)`` (the pseudo-mask
    replaced by the same constant for real and generated triples; see the module docstring).

    Args:
        image: (B, 1, *S); pm: (B, 1, *S); annotation: one-hot (B, C, *S).

    Returns:
        patch logits (B, 1, *P).
    """
    return discriminator(image, torch.zeros_like(pm) if phase2 else pm, annotation)


def synthesis_step(
    parts: AcisParts,
    loss: AcisSynthesisLoss,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    image: torch.Tensor,
    labels: torch.Tensor,
    pm: torch.Tensor,
    generated_pm: torch.Tensor | None = None,
    precision: Precision = FULL_PRECISION,
) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """One image-discriminator update, then one update of the annotation and image generators.

    Phase 1 (``generated_pm`` is None): the generators see the real pseudo-mask ``pm`` and the real
    annotation; D judges ``(x, pm, y)`` against ``(G_img(pm, y), pm, y)``; the generator objective is
    :meth:`AcisSynthesisLoss.phase1`.

    Phase 2 (``generated_pm = G_pm(z)``, detached): the annotation generator labels it,
    ``y^ = straight-through one-hot(G_ann(G_pm(z)))``, the image generator renders
    ``x^ = G_img(G_pm(z), y^)``; D judges real pairs ``(x, y)`` against generated ``(x^, y^)``,
    its pseudo-mask input zeros on both sides (:func:`judge`: the real ``pm`` and ``G_pm(z)`` differ
    by their source, which the generators updated here cannot change, so D must not see them); the
    generator objective is :meth:`AcisSynthesisLoss.phase2`, with the phase-1 objective on the real
    pairs as anchor when ``loss.phase2_anchor > 0`` (its adversarial term judged by D the same way,
    ``D(G_img(pm, y), zeros, y)``).

    Args:
        image: real images ``x`` (B, 1, *S); labels: their ids ``y`` (B, 1, *S); pm: their pseudo-masks
            (B, 1, *S); generated_pm: ``G_pm(z)`` (B, 1, *S) in phase 2, else None.

    Returns:
        loss terms as floats (``d_*``, ``g_*``), and detached outputs: ``pred`` (reconstruction of the
        real pairs, when computed), ``pred_label`` (argmax of ``G_ann(pm)``, when computed), and in
        phase 2 ``generated_label``, ``generated_image``.
    """
    num_classes = loss.num_classes
    batch = image.shape[0]
    onehot = label_one_hot(labels, num_classes)
    phase2 = generated_pm is not None
    with_real = not phase2 or loss.phase2_anchor > 0
    pms = [generated_pm] if phase2 else []
    pms += [pm] if with_real else []
    cond_pm = torch.cat(pms)
    with precision.autocast():
        logits = parts.annotation_generator(cond_pm).float()
        annotations = [straight_through_one_hot(logits[:batch])] if phase2 else []
        annotations += [onehot] if with_real else []
        cond_ann = torch.cat(annotations)
        images = parts.image_generator(torch.cat([cond_pm, cond_ann], dim=1)).float()

        # D: real triples against the fakes of this phase (reconstructions in phase 1, generated in
        # phase 2, both sides' pseudo-mask then zeros)
        fakes = slice(0, batch)
        d_logits = judge(
            parts.discriminator,
            torch.cat([image, images[fakes].detach()]),
            torch.cat([pm, cond_pm[fakes]]),
            torch.cat([onehot, cond_ann[fakes].detach()]),
            phase2,
        )
        real_logits, fake_logits = d_logits.float().split(batch)
        d_terms = loss.discriminator(real_logits, fake_logits)
    precision.minimize(d_terms["total"], opt_d)

    real_part = slice(batch if phase2 else 0, None)
    with frozen(parts.discriminator):
        with precision.autocast():
            judged = judge(parts.discriminator, images, cond_pm, cond_ann, phase2).float()
            anchor = (
                loss.phase1(images[real_part], image, logits[real_part], labels, judged[real_part])
                if with_real
                else None
            )
            g_terms = loss.phase2(judged[:batch], anchor) if phase2 else anchor
        precision.minimize(g_terms["total"], opt_g)
    precision.update()

    out = _floats("g_", g_terms) | _floats("d_", d_terms)
    outputs: dict[str, torch.Tensor] = {}
    if with_real:
        outputs["pred"] = images[real_part].detach()
        outputs["pred_label"] = logits[real_part].detach().argmax(dim=1, keepdim=True)
    if phase2:
        outputs["generated_label"] = logits[:batch].detach().argmax(dim=1, keepdim=True)
        outputs["generated_image"] = images[:batch].detach()
    return out, outputs
