"""``RewardNormaliser``: the two terms of the ACIS reward (Eq. 3 for images and annotations) on one scale.

The refinement reward is ``r = -(w_img * U_image + w_ann * U_annotation)`` (paper Sec. 2.3, Eq. 3 for
x / x_hat and for y / y_hat).  The raw terms live on different scales: ``U_image`` is a squared
intensity difference of images in [0, 1], while ``U_annotation`` is the squared Euclidean distance of
one-hot vectors (0 or 2 per direction, so 0..4 per voxel).  Measured per voxel: 0.41 vs 2.9 on the
barely trained penet demo (32 x 32), 0.19-0.24 vs 2.4-2.7 on real CT slices with untrained generators
(``tests/test_refinement_refiner.py``), so 7-13x apart; for a well trained generator the image term
is expected nearer 0.01-0.05 and the gap wider.  At weights 1 : 1 the annotation term then decides the
reward nearly alone.

**Normalisation "ema"** (the default): each term is divided by a running mean of that term,
``s_k = m * s_k + (1 - m) * mean_batch(U_k)`` over the *past* batches (the same momentum ``m`` as the
reward baseline), so both terms are about 1 on average and ``w_img``, ``w_ann`` weigh *relative*
changes: a 10 % lower ``U_image`` earns as much as a 10 % lower ``U_annotation``::

    r_i = -(w_img * U_image_i / s_image + w_ann * U_annotation_i / s_annotation)

Because ``s_k`` only uses earlier batches it does not depend on the current actions: within a step it is
a positive constant, so the REINFORCE estimate of ``grad E[r]`` stays unbiased and its direction within
one term is unchanged (dividing by a constant keeps the ordering of samples).  Before any history (the
first step) sample i's scale is the mean of the *other* samples of its batch (leave-one-out, still
independent of a_i); with a batch of one it is its own value (the first reward is then a constant,
which moves nothing in expectation).  Scales are floored at ``eps`` (1e-6 per voxel, far below the
terms' working range): a term at rounding-noise level (annotations that agree everywhere, ~1e-9) is not
blown up to order 1, and a term that is exactly 0 stays 0.
The scales are state: they are saved in the refiner's checkpoint and restored on resume.

Alternative readings considered: normalising by the unrefined model's mean measured once at the start
keeps the scale of the start (terms that improve fast then count for less and less); a per-batch
standardisation uses the current samples (biased).  ``"none"`` keeps the raw Eq. 3 reward.

Example:
    >>> norm = RewardNormaliser("ema", momentum=0.9)
    >>> terms = {"image": torch.tensor([0.02, 0.04]), "annotation": torch.tensor([1.0, 3.0])}
    >>> {k: [round(x, 4) for x in v.tolist()] for k, v in norm(terms).items()}  # first step: leave-one-out
    {'image': [0.04, 0.02], 'annotation': [3.0, 1.0]}
    >>> norm.update(terms)
    >>> {k: round(v, 4) for k, v in norm.values.items()}  # later steps: past batch means
    {'image': 0.03, 'annotation': 2.0}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from anatosynth_components.checks import check_fraction
from anatosynth_components.errors import ConfigError

#: the values of ``reward_normalisation``
REWARD_NORMALISATIONS = ("ema", "none")


class RewardNormaliser:
    """Per-term scales ``s_k`` (B,) for the reward; ``"none"`` gives ones.

    Args:
        mode: ``"ema"`` (divide each term by the EMA of its past batch means) or ``"none"``.
        momentum: m in [0, 1) of the EMA.
        eps: floor of a scale (per-voxel units of Eq. 3).

    ``normaliser(terms)`` -> ``{name: (B,) scales}`` for the current step (never using the current
    sample's own value once there is history); ``normaliser.update(terms)`` folds this step's batch means
    in; ``state_dict`` / ``load_state_dict`` for checkpoints.
    """

    def __init__(self, mode: str = "ema", momentum: float = 0.9, eps: float = 1e-6) -> None:
        if mode not in REWARD_NORMALISATIONS:
            raise ConfigError(
                f"reward_normalisation must be one of {list(REWARD_NORMALISATIONS)}, got {mode!r}"
            )
        self.mode = mode
        self.momentum = check_fraction("reward normalisation momentum", momentum, upper_open=True)
        self.eps = float(eps)
        self.values: dict[str, float] = {}

    def __call__(self, terms: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        scales = {}
        for name, term in terms.items():
            term = term.detach()
            if self.mode == "none":
                scale = torch.ones_like(term)
            elif name in self.values:
                scale = torch.full_like(term, self.values[name])
            elif term.numel() < 2:
                scale = term.clone()  # no history and no other sample: the first reward is a constant
            else:
                scale = (term.sum() - term) / (term.numel() - 1)  # leave-one-out mean
            scales[name] = scale.clamp_min(self.eps)
        return scales

    def update(self, terms: Mapping[str, torch.Tensor]) -> None:
        """Fold this step's batch means in (after the step used :meth:`__call__`)."""
        if self.mode == "none":
            return
        for name, term in terms.items():
            mean = float(term.detach().float().mean())
            old = self.values.get(name)
            self.values[name] = mean if old is None else self.momentum * old + (1 - self.momentum) * mean

    def state_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "momentum": self.momentum, "values": dict(self.values)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state["mode"] != self.mode:
            raise ConfigError(
                f"the checkpoint's reward_normalisation is {state['mode']!r}, the config's {self.mode!r}: "
                "resume with the same setting, or start the refinement afresh"
            )
        self.values = {str(k): float(v) for k, v in state["values"].items()}


def normalised_reward(
    terms: Mapping[str, torch.Tensor], weights: Mapping[str, float], scales: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    """``-sum_k weights[k] * terms[k] / scales[k]`` (B,): the reward of each sample.

    >>> t = {"image": torch.tensor([0.02]), "annotation": torch.tensor([1.0])}
    >>> normalised_reward(t, {"image": 1.0, "annotation": 1.0}, {"image": torch.tensor([0.04]),
    ...                                                          "annotation": torch.tensor([2.0])})
    tensor([-1.])
    """
    return -sum(weights[name] * terms[name].detach() / scales[name] for name in terms)
