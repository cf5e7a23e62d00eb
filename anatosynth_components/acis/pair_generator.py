"""``AcisPairGenerator``: latent noise -> (image, annotation), the ACIS synthesis chain in one module.

Paper Sec. 2.2, "in sequence synthesizing the pseudo-mask, annotation, and associated image":
``pm = G_pm(z)``, ``y = argmax G_ann(pm)``, ``x = G_img(cat[pm, onehot(y)])``.  It holds the three
generators (:attr:`pseudo_mask_generator`, :attr:`annotation_generator`, :attr:`image_generator`),
which the trainers and the refinement update, and its ``state_dict`` is the bundles' ``models/model.pt``.

``forward`` is the bundle's ``network_def``: one tensor in (``z``), one tensor out, (B, 2, *S) with
channel 0 the image in [0, 1] and channel 1 the annotation's label ids as float; it is TorchScript-able
(``torch.jit.script``).  :meth:`synthesize` returns every intermediate (pseudo-mask, logits, one-hot),
optionally with a straight-through one-hot so that gradients reach the annotation generator.

Example::

    >>> net = AcisPairGenerator(2, (32, 32), num_classes=3, latent_channels=4, pm_channels=(8, 4),
    ...                         annotation_channels=(4, 8), image_channels=(4, 8))
    >>> z = net.sample_latent(2, seed=0)
    >>> tuple(z.shape), tuple(net(z).shape)
    ((2, 4, 16, 16), (2, 2, 32, 32))
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from monai.networks.layers import Norm
from torch import nn

from anatosynth_components.acis.annotation_generator import AnnotationGenerator, default_strides, unet_depth
from anatosynth_components.acis.image_generator import ImageGenerator
from anatosynth_components.acis.one_hot import hard_one_hot, straight_through_one_hot
from anatosynth_components.acis.pseudomask_generator import PseudoMaskGenerator, sample_latent
from anatosynth_components.checks import check_channels, check_spatial_dims, check_spatial_size
from anatosynth_components.network_size import (
    Depth,
    check_depths_fit,
    is_instance_norm,
    lowest_level_problem,
    plural,
)


class AcisPairGenerator(nn.Module):
    """The three ACIS generators chained: z (B, latent_channels, *latent_size) -> (B, 2, *spatial_size).

    Args:
        spatial_dims: 2 or 3.
        spatial_size: size of the synthesized image; divisible by ``2 ** levels`` of every generator.
        num_classes: annotation classes including background 0.
        latent_channels: channels of ``z``.
        pm_channels: :class:`PseudoMaskGenerator` channels (latent resolution -> full resolution).
        annotation_channels, annotation_strides: :class:`AnnotationGenerator` U-Net.
        image_channels, image_strides: :class:`ImageGenerator` U-Net.
        num_res_units: residual units per U-Net level.
        norm: MONAI normalisation of all three generators.
        image_dropout: dropout of the image generator (pix2pix's noise; 0 by default, see
            :class:`ImageGenerator`).
    """

    __jit_unused_properties__ = ["latent_channels", "latent_size"]

    def __init__(
        self,
        spatial_dims: int,
        spatial_size: Sequence[int],
        num_classes: int,
        latent_channels: int = 16,
        pm_channels: Sequence[int] = (256, 128, 64, 32, 16),
        annotation_channels: Sequence[int] = (32, 64, 128, 256, 512),
        annotation_strides: Sequence[int] | None = None,
        image_channels: Sequence[int] = (64, 128, 256, 512, 512),
        image_strides: Sequence[int] | None = None,
        num_res_units: int = 2,
        norm: str | tuple = Norm.INSTANCE,
        image_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        ann_channels = check_channels(annotation_channels, "annotation_channels")
        img_channels = check_channels(image_channels, "image_channels")
        ann_strides = default_strides(ann_channels, annotation_strides)
        img_strides = default_strides(img_channels, image_strides)
        pm_levels = len(check_channels(pm_channels, "pm_channels")) - 1
        depths = [  # the lowest level of each generator is spatial_size / factor
            Depth("pm_channels", pm_levels + 1, 2**pm_levels, plural(pm_levels, "x2 upsampling")),
            unet_depth("annotation_channels", ann_channels, ann_strides),
            unet_depth("image_channels", img_channels, img_strides),
        ]
        multiple = math.lcm(*(d.factor for d in depths))
        self.size_multiple = multiple  # spatial_size must be a multiple of it (for the trainers' checks)
        reason = "; ".join(f"{d.key}: {d.how}" for d in depths)
        normed = depths if is_instance_norm(norm, self.spatial_dims) else []  # all three normalise it
        self.spatial_size = check_spatial_size(
            spatial_size,
            self.spatial_dims,
            multiple,
            reason,
            "fewer levels in these keys",
            lambda size: lowest_level_problem(size, normed) is None,
        )
        check_depths_fit(self.spatial_size, normed, multiple)
        self.num_classes = int(num_classes)
        self.pseudo_mask_generator = PseudoMaskGenerator(
            self.spatial_dims, self.spatial_size, latent_channels, pm_channels, norm=norm
        )
        self.annotation_generator = AnnotationGenerator(
            self.spatial_dims, self.num_classes, annotation_channels, ann_strides, num_res_units, norm
        )
        self.image_generator = ImageGenerator(
            self.spatial_dims,
            self.num_classes,
            image_channels,
            img_strides,
            num_res_units,
            norm,
            image_dropout,
        )

    @property
    def latent_channels(self) -> int:
        return self.pseudo_mask_generator.latent_channels

    @property
    def latent_size(self) -> tuple[int, ...]:
        return self.pseudo_mask_generator.latent_size

    @torch.jit.ignore
    def latent_shape(self, batch_size: int) -> tuple[int, ...]:
        """Shape of ``z`` for ``batch_size`` samples."""
        return self.pseudo_mask_generator.latent_shape(batch_size)

    @torch.jit.ignore
    def sample_latent(
        self, batch_size: int, seed: int | None = None, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """``z ~ N(0, 1)`` of :meth:`latent_shape` (seeded draws are device-independent)."""
        return sample_latent(self.latent_shape(batch_size), seed, device)

    @torch.jit.ignore
    def synthesize(self, z: torch.Tensor, straight_through: bool = False) -> dict[str, torch.Tensor]:
        """Every stage of the chain for ``z``.

        Returns:
            ``pseudo_mask`` (B, 1, *S) in [0, 1]; ``logits`` (B, C, *S) of the annotation generator;
            ``annotation`` (B, C, *S) one-hot of their argmax (straight-through: softmax gradient, when
            ``straight_through``); ``labels`` (B, 1, *S) int64 ids; ``image`` (B, 1, *S) in [0, 1].
        """
        pm = self.pseudo_mask_generator(z)
        logits = self.annotation_generator(pm)
        annotation = straight_through_one_hot(logits) if straight_through else hard_one_hot(logits)
        image = self.image_generator(torch.cat([pm, annotation], dim=1))
        labels = logits.argmax(dim=1, keepdim=True)
        return {
            "pseudo_mask": pm,
            "logits": logits,
            "annotation": annotation,
            "labels": labels,
            "image": image,
        }

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z -> (B, 2, *S): channel 0 the image in [0, 1], channel 1 the annotation ids as float."""
        pm = self.pseudo_mask_generator(z)
        logits = self.annotation_generator(pm)
        labels = logits.argmax(dim=1, keepdim=True)
        # the exported graph: a plain scatter (MONAI's one_hot branches on the shape, a trace warning)
        annotation = torch.zeros_like(logits).scatter_(1, labels, 1.0)
        image = self.image_generator(torch.cat([pm, annotation], dim=1))
        return torch.cat([image, labels.to(image.dtype)], dim=1)
