"""``AcisLabelInferer``: ACIS synthesis of an image for a given annotation (label volume).

ACIS samples pairs from noise (``z -> pseudo-mask -> annotation -> image``, paper Sec. 2.2); the paper
defines no inference from a given annotation.  MONAI Label hands a bundle one volume, and for these
bundles it is a label volume, so this inferer conditions the last stage of the chain on it: the
image generator receives ``cat[pseudo-mask, one-hot(labels)]`` exactly as in training, with the
user's labels as the annotation and a pseudo-mask built from them:

1. class statistics from the model itself: ``num_stat_samples`` pairs sampled from seeded noise give,
   for every class c, the mean and standard deviation of the generated pseudo-mask inside the
   generated annotation's class c (a class that never appears takes the statistics of all voxels),
   so no intensity prior is written by hand and the values are those the generators learned from
   the training CT;
2. Voronoi cells as in Sec. 2.1 (:func:`~anatosynth_components.acis.pseudomask.pseudo_mask`: Canny edges ->
   kernel density -> ``num_points`` weighted seeds -> cells, in physical space) of the image that gives
   every voxel its class mean; the seeds thus crowd at the organ boundaries;
3. every cell takes a value drawn from ``N(mean_c, std_c)`` of its seed's class, clipped to [0, 1]: a
   piecewise-constant pseudo-mask with the learned intensities, cells everywhere, like a real one.

The inferer is deterministic for a ``seed``.  3-D bundles take the label volume on the network grid
(B, 1, *spatial_size); 2-D bundles a volume of slices cut along ``axis`` (each slice on the network's
(H, W)), synthesized ``batch_size`` slices at a time.

Example::

    inferer = AcisLabelInferer(num_points=4096)
    image = inferer(labels, network)   # labels (1, 1, 192, 192, 160) ids -> image (1, 1, 192, 192, 160)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.data.utils import affine_to_spacing
from monai.inferers import Inferer
from monai.networks.utils import one_hot
from monai.utils import convert_to_tensor

from anatosynth_components.acis.pseudomask import DEFAULT_BANDWIDTH_MM, pseudo_mask
from anatosynth_components.checks import check_label_ids, check_positive_int, check_spatial_axis
from anatosynth_components.errors import DataError


def class_statistics(network: torch.nn.Module, num_samples: int = 2, seed: int = 0) -> np.ndarray:
    """(num_classes, 2) mean and std of the generated pseudo-mask inside each generated class.

    ``network`` is an :class:`~anatosynth_components.acis.AcisPairGenerator` (eager).
    """
    device = next(network.parameters()).device
    z = network.sample_latent(int(num_samples), seed=int(seed), device=device)
    with torch.no_grad():
        pm = network.pseudo_mask_generator(z)
        labels = network.annotation_generator(pm).argmax(dim=1, keepdim=True)
    pm, labels = pm.flatten().double().cpu(), labels.flatten().cpu()
    overall = (float(pm.mean()), float(pm.std()))
    stats = np.empty((int(network.num_classes), 2))
    for c in range(stats.shape[0]):
        inside = pm[labels == c]
        stats[c] = (float(inside.mean()), float(inside.std())) if inside.numel() > 1 else overall
    return stats


def label_pseudo_mask(
    labels: np.ndarray,
    stats: np.ndarray,
    num_points: int,
    spacing: np.ndarray,
    bandwidth_mm: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Pseudo-mask (float32, shape of ``labels``) for integer ``labels`` (H, W[, D]); steps 2-3 above."""
    means = stats[labels, 0].astype(np.float32)
    num = min(int(num_points), labels.size)
    pm = pseudo_mask(means, num, rng, spacing=spacing, bandwidth_mm=bandwidth_mm, name="label volume")
    seed_class = labels[tuple(pm.seeds.T)]
    values = stats[seed_class, 0] + stats[seed_class, 1] * rng.standard_normal(len(seed_class))
    return np.clip(values, 0.0, 1.0).astype(np.float32)[pm.cells]


class AcisLabelInferer(Inferer):
    """Label ids -> synthesized image with the ACIS image generator (see the module docstring).

    Args:
        num_points: Voronoi seeds per volume (3-D) or slice (2-D), as in training (``num_points``).
        bandwidth_mm: kernel density bandwidth in mm (``bandwidth_mm``).
        num_stat_samples: pairs sampled for the class statistics.
        seed: seed of the statistics' noise, the Voronoi seeds and the cell values.
        batch_size: slices per image-generator call (2-D bundles).
        axis: spatial axis of the volume along which a 2-D bundle's slices are cut (0, 1 or 2).

    Shapes:
        ``inferer(labels, network)``: labels (B, 1, *spatial_size) for a 3-D network, (B, 1, X, Y, Z)
        with the network's (H, W) on the axes other than ``axis`` for a 2-D one; returns the image
        (same shape) in [0, 1], a ``MetaTensor`` with the input's metadata when the input is one.
        The voxel spacing comes from the input's affine (1 mm without one).
    """

    def __init__(
        self,
        num_points: int,
        bandwidth_mm: float = DEFAULT_BANDWIDTH_MM,
        num_stat_samples: int = 2,
        seed: int = 0,
        batch_size: int = 8,
        axis: int = 2,
    ) -> None:
        super().__init__()
        self.num_points = check_positive_int("num_points", num_points)
        self.num_stat_samples = check_positive_int("num_stat_samples", num_stat_samples)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.bandwidth_mm, self.seed = float(bandwidth_mm), int(seed)
        self.axis = check_spatial_axis(axis)

    def __call__(
        self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        net = getattr(network, "module", network)  # DataParallel / DDP
        dims, classes = int(net.spatial_dims), int(net.num_classes)
        if inputs.ndim != 5 or inputs.shape[1] != 1:
            raise DataError(f"expected label ids (B, 1, X, Y, Z), got shape {tuple(inputs.shape)}")
        ids = convert_to_tensor(inputs, track_meta=False).round().long()
        if dims == 2:
            ids = torch.movedim(ids, self.axis + 2, -1)  # slices last: (B, 1, H, W, D)
        check_label_ids(ids, classes, "label volume")
        expected = tuple(net.spatial_size) if dims == 3 else tuple(net.spatial_size) + (ids.shape[-1],)
        if tuple(ids.shape[2:]) != expected:
            raise DataError(
                f"label volume of shape {tuple(ids.shape[2:])} is not on the network grid {expected}: "
                "resize it first (the bundle's preprocessing)"
            )
        spacing = self.spacing(inputs, dims, self.axis)
        stats = class_statistics(net, self.num_stat_samples, self.seed)
        rng = np.random.default_rng(self.seed)
        out = torch.empty(ids.shape, dtype=torch.float32, device=ids.device)
        for b in range(ids.shape[0]):
            volume = ids[b, 0].cpu().numpy()
            if dims == 3:
                out[b, 0] = self.generate(net, volume[None], stats, spacing, rng, classes)[0]
                continue
            for s in range(0, volume.shape[-1], self.batch_size):
                chunk = np.moveaxis(volume[..., s : s + self.batch_size], -1, 0)  # (k, H, W)
                out[b, 0, ..., s : s + self.batch_size] = self.generate(
                    net, chunk, stats, spacing, rng, classes
                ).permute(1, 2, 0)
        if dims == 2:
            out = torch.movedim(out, -1, self.axis + 2)
        return MetaTensor(out).copy_meta_from(inputs) if isinstance(inputs, MetaTensor) else out

    @staticmethod
    def spacing(inputs: torch.Tensor, dims: int, axis: int = 2) -> np.ndarray:
        """Voxel size in mm of the network's spatial axes (in-plane for 2-D), from the affine."""
        affine = getattr(inputs, "affine", None)
        if affine is None:
            return np.ones(dims)
        affine = np.asarray(affine.cpu() if torch.is_tensor(affine) else affine, dtype=np.float64)
        spacing = np.asarray(affine_to_spacing(affine.reshape(-1, 4, 4)[0], r=3), dtype=np.float64)
        return spacing if dims == 3 else np.delete(spacing, axis)

    def generate(
        self,
        net: torch.nn.Module,
        labels: np.ndarray,
        stats: np.ndarray,
        spacing: np.ndarray,
        rng: np.random.Generator,
        classes: int,
    ) -> torch.Tensor:
        """(k, *S) integer labels -> (k, *S) images from the image generator."""
        device = next(net.parameters()).device
        pms = np.stack(
            [label_pseudo_mask(x, stats, self.num_points, spacing, self.bandwidth_mm, rng) for x in labels]
        )
        annotation = one_hot(torch.as_tensor(labels, device=device).unsqueeze(1), classes, dim=1)
        pm = torch.as_tensor(pms, device=device).unsqueeze(1)
        with torch.no_grad():
            return net.image_generator(torch.cat([pm, annotation], dim=1))[:, 0].float()
