"""REINFORCE with a baseline (Williams 1992; PolicyGAN, ACIS ref. [25]): the score-function estimator.

For a policy pi_theta and a reward r(a) that does not depend on theta::

    grad_theta E_a[r(a)] = E_a[(r(a) - b) grad_theta log pi_theta(a)]

for any baseline b independent of the action a (E[grad log pi] = 0).  :func:`reinforce_loss` is the
surrogate whose gradient is minus that estimate averaged over a batch, so an optimizer *minimising* it
ascends the expected reward, with no gradient through the reward (in ACIS the registration network).

:class:`EmaBaseline` is the baseline: an exponential moving average of past batch-mean rewards.  It
only uses rewards of earlier steps, so it is independent of the current actions and the estimate stays
unbiased.  Before any history exists (the first step), sample i's baseline is the mean reward of the
*other* samples of its batch (leave-one-out, still independent of a_i, so still unbiased); with a
batch of one it is 0.

Example::

    >>> mu = torch.zeros(1, requires_grad=True)
    >>> a = mu.detach() + torch.randn(4096, generator=torch.Generator().manual_seed(0))   # a ~ N(mu, 1)
    >>> log_prob = -0.5 * (a - mu) ** 2
    >>> reward = -(a - 1.0) ** 2                                                    # best at a = 1
    >>> reinforce_loss(log_prob, reward, EmaBaseline()(reward)).backward()
    >>> abs(-mu.grad.item() - 2.0) < 0.2   # true d/dmu E[r] = -2 (mu - 1) = 2; standard error 0.07
    True
"""

from __future__ import annotations

from typing import Any

import torch

from anatosynth_components.checks import check_fraction


def reinforce_loss(
    log_prob: torch.Tensor, reward: torch.Tensor, baseline: torch.Tensor | float | None = None
) -> torch.Tensor:
    """``-mean((reward - baseline).detach() * log_prob)``.

    Args:
        log_prob: log pi(a_i) of each sampled action (B,), with the graph to the policy's parameters.
        reward: r(a_i) (B,); detached here.
        baseline: b_i (B,) or a scalar, independent of a_i; ``None`` is 0.
    """
    if log_prob.shape != reward.shape:
        raise ValueError(f"log_prob {tuple(log_prob.shape)} and reward {tuple(reward.shape)} differ in shape")
    advantage = reward.detach() - (0.0 if baseline is None else torch.as_tensor(baseline).detach())
    return -(advantage * log_prob).mean()


class EmaBaseline:
    """b_k = m * b_{k-1} + (1 - m) * mean(r_{k-1}): EMA of past batch-mean rewards.

    Args:
        momentum: m in [0, 1); 0 makes the baseline the previous batch's mean reward.

    ``baseline(reward)`` returns the (B,) baselines for the current step (never using ``reward`` of its
    own sample); ``baseline.update(reward)`` then folds this step's rewards in.  ``state_dict`` /
    ``load_state_dict`` let checkpoints (and MONAI's ``CheckpointLoader``) keep it.
    """

    def __init__(self, momentum: float = 0.9) -> None:
        self.momentum = check_fraction("baseline momentum", momentum, upper_open=True)
        self.value: float | None = None

    def __call__(self, reward: torch.Tensor) -> torch.Tensor:
        reward = reward.detach()
        if self.value is not None:
            return torch.full_like(reward, self.value)
        count = reward.numel()
        if count < 2:
            return torch.zeros_like(reward)
        return (reward.sum() - reward) / (count - 1)  # leave-one-out mean

    def update(self, reward: torch.Tensor) -> None:
        mean = float(reward.detach().mean())
        self.value = mean if self.value is None else self.momentum * self.value + (1 - self.momentum) * mean

    def state_dict(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "value": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.momentum, self.value = float(state["momentum"]), state["value"]
