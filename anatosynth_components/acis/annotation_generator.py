"""``AnnotationGenerator``: pseudo-mask -> multi-label annotation logits (ACIS paper Sec. 2.2).

The paper "implement[s] an annotation generator to synthesize the multilabel segmentation
annotations [9]" from the pseudo-mask, without giving its architecture.  It is a segmentation
network of the pseudo-mask, so this is MONAI's ``UNet`` (residual units, instance norm) with one input
channel and ``num_classes`` output logits (background 0 included); a subclass only to fix the channels
and keep the class count on the module.  :class:`ClassUNet` is what it shares with the image
generator: a MONAI ``UNet`` whose input and output channels follow from ``num_classes``.

Example::

    >>> import torch
    >>> net = AnnotationGenerator(2, num_classes=4, channels=(8, 16, 32), strides=(2, 2))
    >>> tuple(net(torch.rand(2, 1, 32, 32)).shape)
    (2, 4, 32, 32)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from monai.networks.layers import Norm
from monai.networks.nets import UNet

from anatosynth_components.checks import check_channels, check_spatial_dims
from anatosynth_components.errors import ConfigError
from anatosynth_components.network_size import Depth, check_depths_fit, has_instance_norm, plural


def default_strides(channels: Sequence[int], strides: Sequence[int] | None) -> tuple[int, ...]:
    """Stride 2 between every pair of levels unless ``strides`` says otherwise."""
    out = tuple(int(s) for s in strides) if strides is not None else (2,) * (len(channels) - 1)
    if len(out) != len(channels) - 1:
        raise ConfigError(f"strides {list(out)} must have len(channels) - 1 = {len(channels) - 1} entries")
    return out


class ClassUNet(UNet):
    """A MONAI ``UNet`` whose channels in and out follow from ``num_classes`` (:meth:`io_channels`);
    the checks and defaults the ACIS generators share.  Subclasses set :attr:`name` (for the error
    messages), :attr:`default_channels` and :meth:`io_channels`.

    Args:
        spatial_dims: 2 or 3.
        num_classes: classes including background 0.
        channels: U-Net channels per level (``None``: :attr:`default_channels`).
        strides, num_res_units, norm, dropout: as MONAI ``UNet`` (stride 2 between levels by default);
            ``S`` must be divisible by the product of ``strides``.
    """

    name = "U-Net"
    channels_key = "channels"  # the bundles' configuration key of ``channels``, for the messages
    default_channels: tuple[int, ...] = ()

    def __init__(
        self,
        spatial_dims: int,
        num_classes: int,
        channels: Sequence[int] | None = None,
        strides: Sequence[int] | None = None,
        num_res_units: int = 2,
        norm: str | tuple = Norm.INSTANCE,
        dropout: float = 0.0,
    ) -> None:
        if int(num_classes) < 2:
            raise ConfigError(f"num_classes must be >= 2 (background and one label), got {num_classes}")
        channels = check_channels(
            self.default_channels if channels is None else channels, f"{self.name} channels"
        )
        in_channels, out_channels = self.io_channels(int(num_classes))
        super().__init__(
            spatial_dims=check_spatial_dims(spatial_dims),
            in_channels=in_channels,
            out_channels=out_channels,
            channels=channels,
            strides=default_strides(channels, strides),
            num_res_units=int(num_res_units),
            norm=norm,
            dropout=float(dropout),
        )
        self.num_classes = int(num_classes)

    @staticmethod
    def io_channels(num_classes: int) -> tuple[int, int]:
        """(input, output) channels for ``num_classes``."""
        raise NotImplementedError

    def depth(self) -> Depth:
        """The bottom of the U-Net, ``spatial_size / prod(strides)``, is its lowest level."""
        return unet_depth(self.channels_key, self.channels, self.strides)

    def check_size(self, spatial_size: Sequence[int], multiple: int = 1) -> None:
        """``ConfigError`` when the bottom level of ``spatial_size`` inputs holds a single value, where
        the instance norm fails; the message names :attr:`channels_key` and the smallest spatial_size.

        >>> AnnotationGenerator(2, 3, channels=(4, 4, 4)).check_size((4, 4))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        anatosynth_components.errors.ConfigError: spatial_size [4, 4] is too small for annotation_channels ...
        """
        if has_instance_norm(self):
            depth = self.depth()
            check_depths_fit(spatial_size, [depth], math.lcm(depth.factor, multiple))


def unet_depth(key: str, channels: Sequence[int], strides: Sequence[int]) -> Depth:
    """The :class:`~anatosynth_components.network_size.Depth` of a MONAI ``UNet``: its bottom level is
    ``spatial_size / prod(strides)``.

    >>> unet_depth("image_channels", (8, 16, 32), (2, 2))
    Depth(key='image_channels', entries=3, factor=4, how='2 halvings')
    """
    factor = math.prod(int(s) for s in strides)
    how = plural(len(strides), "halving") if set(strides) <= {2} else f"strides {list(strides)}"
    return Depth(key, len(channels), factor, how)


class AnnotationGenerator(ClassUNet):
    """Pseudo-mask (B, 1, *S) -> annotation logits (B, num_classes, *S).

    Args:
        spatial_dims: 2 or 3.
        num_classes: classes including background 0 (TLobes: 7 = background, 5 lobes, heart).
        channels: default ``(32, 64, 128, 256, 512)``.
        strides, num_res_units, norm, dropout: as MONAI ``UNet``; ``S`` must be divisible by the
            product of ``strides``.
    """

    name = "annotation generator"
    channels_key = "annotation_channels"
    default_channels = (32, 64, 128, 256, 512)

    @staticmethod
    def io_channels(num_classes: int) -> tuple[int, int]:
        return 1, num_classes
