"""WGAN-GP: the Wasserstein critic loss with gradient penalty (Gulrajani et al. 2017, ACIS ref. [20]).

ACIS trains its pseudo-mask generator "with a discriminator [20]"; [20] is "Improved Training of
Wasserstein GANs".  Its Algorithm 1 / Eq. 3, for a critic ``D``, real samples ``x`` and generated
``x~``::

    L_D = E[D(x~)] - E[D(x)] + lambda * E[(||grad_x^ D(x^)||_2 - 1) ** 2],   x^ = eps x + (1 - eps) x~
    L_G = -E[D(x~)]

with ``eps ~ U[0, 1]`` drawn per sample and ``lambda = 10``.  MONAI has no gradient penalty, hence this
module.  The critic is called **once** on ``cat([x, x~, x^])`` (one forward per backward, which
``DistributedDataParallel`` needs); a critic must therefore treat samples independently (no batch norm,
as the paper prescribes).

Example::

    >>> critic = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 1), torch.nn.Flatten(0))
    >>> real, fake = torch.rand(3, 1, 2, 2), torch.rand(3, 1, 2, 2)
    >>> terms = WGANGPLoss(lambda_gp=10.0).critic_loss(critic, real, fake)
    >>> sorted(terms)
    ['fake_score', 'gradient_penalty', 'real_score', 'total', 'wasserstein']
"""

from __future__ import annotations

import torch
from torch import nn

from anatosynth_components.errors import ConfigError

DEFAULT_LAMBDA_GP = 10.0


def interpolate(real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
    """``x^ = eps x + (1 - eps) x~`` with one ``eps ~ U[0, 1]`` per sample (shape (B,) or broadcastable);
    returned detached from ``real`` / ``fake`` and requiring grad."""
    if real.shape != fake.shape:
        raise ValueError(f"real {tuple(real.shape)} and fake {tuple(fake.shape)} samples differ in shape")
    if eps is None:
        eps = torch.rand(real.shape[0], device=real.device, dtype=real.dtype)
    eps = eps.to(real).reshape(-1, *([1] * (real.ndim - 1)))
    return (eps * real.detach() + (1.0 - eps) * fake.detach()).requires_grad_(True)


def penalty_of(
    scores: torch.Tensor, points: torch.Tensor, lambda_gp: float = DEFAULT_LAMBDA_GP, grad_scale: float = 1.0
) -> torch.Tensor:
    """``lambda * mean_b (||d scores_b / d points_b||_2 - 1) ** 2`` for critic ``scores`` (B,) of ``points``
    (B, ...) that require grad; differentiable (``create_graph``) so the critic can be trained on it.

    ``grad_scale``: under float16 autocast, the loss scale of the ``GradScaler``: the gradient is taken
    of the scaled scores and divided by the scale (PyTorch's AMP recipe for gradient penalties), so
    small float16 gradients do not underflow; the value is the same."""
    (grad,) = torch.autograd.grad(scores.sum() * grad_scale, points, create_graph=True)
    norms = (grad.float() / grad_scale).flatten(1).norm(2, dim=1)
    return lambda_gp * ((norms - 1.0) ** 2).mean()


def gradient_penalty(
    critic: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    lambda_gp: float = DEFAULT_LAMBDA_GP,
    eps: torch.Tensor | None = None,
) -> torch.Tensor:
    """The penalty term of Eq. 3 alone: ``penalty_of(critic(x^), x^)`` at the interpolates of ``eps``."""
    points = interpolate(real, fake, eps)
    return penalty_of(critic(points), points, lambda_gp)


class WGANGPLoss:
    """Critic and generator losses of WGAN-GP.

    Args:
        lambda_gp: penalty weight lambda (10 in the paper, for every experiment).
    """

    def __init__(self, lambda_gp: float = DEFAULT_LAMBDA_GP) -> None:
        if not float(lambda_gp) >= 0:
            raise ConfigError(f"lambda_gp must be >= 0, got {lambda_gp}")
        self.lambda_gp = float(lambda_gp)

    def critic_loss(
        self,
        critic: nn.Module,
        real: torch.Tensor,
        fake: torch.Tensor,
        eps: torch.Tensor | None = None,
        grad_scale: float = 1.0,
    ) -> dict[str, torch.Tensor]:
        """``L_D`` for real (B, ...) and generated (B, ...) samples (``fake`` is detached here);
        ``grad_scale`` as in :func:`penalty_of`.

        Returns:
            ``total`` (to minimise), ``wasserstein`` (``E[D(x)] - E[D(x~)]``, the critic's estimate of
            the distance, logged), ``gradient_penalty``, ``real_score``, ``fake_score``.
        """
        points = interpolate(real, fake, eps)
        scores = critic(torch.cat([real.detach(), fake.detach(), points]))
        real_s, fake_s, point_s = scores.float().split(real.shape[0])
        gp = penalty_of(point_s, points, self.lambda_gp, grad_scale)
        distance = real_s.mean() - fake_s.mean()
        return {
            "total": -distance + gp,
            "wasserstein": distance.detach(),
            "gradient_penalty": gp.detach(),
            "real_score": real_s.mean().detach(),
            "fake_score": fake_s.mean().detach(),
        }

    def generator_loss(self, critic: nn.Module, fake: torch.Tensor) -> torch.Tensor:
        """``L_G = -E[D(x~)]`` (gradients flow into ``fake``)."""
        return -critic(fake).mean()
