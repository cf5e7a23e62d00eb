"""Whether a network's depth fits the configured ``spatial_size``: the checks every network runs at
start-up, so that a size too small for its depth is a ``ConfigError`` naming the keys to change and a
size that works, instead of torch's "Expected more than 1 spatial element when training" at the
first step.

A network describes its path as :class:`ConvLayer` s (patch discriminators, :func:`patch_gan_layers`)
or as :class:`Depth` s (encoder-decoders: how far the lowest level is divided); :func:`smallest_size`
searches the smallest size that fits, so no minimum is written down per network.

Example:
    >>> check_depths_fit((32, 32), [Depth("channel_mults", 6, 32, "5 halvings")], multiple=32)
    ...                                    # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    anatosynth_components.errors.ConfigError: spatial_size [32, 32] is too small for channel_mults of 6
    entries (5 halvings: 1 x 1 at the lowest level), where instance norm needs more than one value: use
    spatial_size of at least [64, 64] (each side a multiple of 32) or at most 5 entries in channel_mults
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from anatosynth_components.errors import ConfigError

#: why a size too small for an instance norm fails (torch: "Expected more than 1 spatial element")
INSTANCE_NORM_NEEDS = "instance norm needs more than one value"


def format_size(size: Sequence[int]) -> str:
    """A spatial size as the messages write it.

    >>> format_size((16, 16, 8))
    '16 x 16 x 8'
    """
    return " x ".join(str(int(s)) for s in size)


class ConvLayer(NamedTuple):
    """One convolution (or pooling) of a network's path, the same along every spatial axis, and whether
    an instance norm follows it (torch's instance norm fails on a single value per channel)."""

    kernel: int
    stride: int = 1
    padding: int = 0
    instance_norm: bool = False

    def output_size(self, size: int) -> int:
        """Output length along one axis, torch's formula; < 1 where torch refuses the input.

        >>> ConvLayer(4, stride=2, padding=1).output_size(16), ConvLayer(4, 1, 1).output_size(1)
        (8, 0)
        """
        return (int(size) + 2 * self.padding - self.kernel) // self.stride + 1


def patch_gan_layers(
    num_layers: int, kernel_size: int = 4, padding: int = 1, instance_norm: bool = True
) -> list[ConvLayer]:
    """The convolutions of MONAI's ``PatchDiscriminator`` (``num_layers_d = num_layers``), in order: a
    stride-2 convolution without norm, ``num_layers - 1`` stride-2 and one stride-1 convolution, each
    followed by the norm, and a stride-1 output convolution without norm.

    >>> [(layer.stride, layer.instance_norm) for layer in patch_gan_layers(2)]
    [(2, False), (2, True), (1, True), (1, False)]
    """
    layers = [ConvLayer(kernel_size, 2, padding)]
    layers += [
        ConvLayer(kernel_size, 1 if i == num_layers - 1 else 2, padding, instance_norm)
        for i in range(num_layers)
    ]
    return layers + [ConvLayer(kernel_size, 1, (kernel_size - 1) // 2)]


#: the average pooling between the scales of a multi-scale patch discriminator (pix2pixHD, SPADE)
SCALE_POOL = ConvLayer(3, 2, 1)


def patch_gan_problem(
    size: Sequence[int], num_layers: int, what: str, instance_norm: bool = True, num_scales: int = 1
) -> str | None:
    """What breaks when a MONAI ``PatchDiscriminator`` of ``num_layers`` layers (at ``num_scales`` scales,
    each :data:`SCALE_POOL`-ed from the previous) judges inputs of ``size``, or None; ``what`` names
    the layer count in the message.

    >>> print(patch_gan_problem((32, 32), 3, "the discriminator's disc_layers", num_scales=2))
    ...                                    # doctest: +NORMALIZE_WHITESPACE
    the discriminator's disc_layers 3 at scale 2 of 2 (16 x 16 input): layer 4 of 5 gives 1 x 1 features
    (instance norm needs more than one value)
    """
    current = tuple(int(s) for s in size)
    for i in range(num_scales):
        if i:
            current = tuple(SCALE_POOL.output_size(s) for s in current)
        problem = conv_path_problem(current, patch_gan_layers(num_layers, instance_norm=instance_norm))
        if problem:
            at = f" at scale {i + 1} of {num_scales} ({format_size(current)} input)" if num_scales > 1 else ""
            return f"{what} {num_layers}{at}: {problem}"
    return None


def check_patch_gan_size(
    spatial_size: Sequence[int],
    num_layers: int,
    owner: str,
    key: str,
    instance_norm: bool = True,
    num_scales: int = 1,
    multiple: int = 1,
) -> None:
    """``ConfigError`` unless inputs of ``spatial_size`` fit a MONAI ``PatchDiscriminator`` of
    ``num_layers`` layers (:func:`patch_gan_problem`); the message names the configuration ``key`` of
    the layer count (``owner``'s), the smallest spatial_size (each side a multiple of ``multiple``) and
    the most layers that fit.

    >>> check_patch_gan_size((16, 16), 3, "the pseudo-mask critic", "critic_layers", instance_norm=False)
    ...                                    # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    anatosynth_components.errors.ConfigError: spatial_size [16, 16] is too small for the pseudo-mask
    critic's critic_layers 3: layer 5 of 5 gets 1 x 1 features, less than its 4 x 4 kernel with padding 1:
    use spatial_size of at least [24, 24] or critic_layers 2
    """
    what = f"{owner}'s {key}"

    def problem(size: Sequence[int], layers: int = num_layers) -> str | None:
        return patch_gan_problem(size, layers, what, instance_norm, num_scales)

    fewer = [n for n in range(num_layers - 1, 0, -1) if problem(spatial_size, n) is None]
    name = key.split()[0]  # "disc_layers (num_layers_d)" -> "disc_layers"
    check_size_fits(spatial_size, problem, multiple, f"{name} {fewer[0]}" if fewer else None)


def conv_path_problem(size: Sequence[int], layers: Sequence[ConvLayer]) -> str | None:
    """What breaks when ``layers`` run one after the other on an input of ``size``, or None.

    >>> conv_path_problem((16, 16), patch_gan_layers(3))
    'layer 4 of 5 gives 1 x 1 features (instance norm needs more than one value)'
    >>> conv_path_problem((16, 16), patch_gan_layers(3, instance_norm=False))
    'layer 5 of 5 gets 1 x 1 features, less than its 4 x 4 kernel with padding 1'
    >>> conv_path_problem((24, 24), patch_gan_layers(3)) is None
    True
    """
    current = tuple(int(s) for s in size)
    for i, layer in enumerate(layers, 1):
        out = tuple(layer.output_size(s) for s in current)
        if min(out) < 1:
            kernel = format_size([layer.kernel] * len(current))
            return (
                f"layer {i} of {len(layers)} gets {format_size(current)} features, less than its {kernel} "
                f"kernel with padding {layer.padding}"
            )
        if layer.instance_norm and math.prod(out) < 2:
            return f"layer {i} of {len(layers)} gives {format_size(out)} features ({INSTANCE_NORM_NEEDS})"
        current = out
    return None


class Depth(NamedTuple):
    """How deep a network goes: configuration ``key`` (``entries`` long) makes its lowest level
    ``spatial_size / factor`` (``how``: what divides, e.g. "5 halvings"), where an instance norm works."""

    key: str
    entries: int
    factor: int
    how: str


def plural(count: int, word: str) -> str:
    """``1 halving``, ``2 halvings``."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def join_words(words: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``.

    >>> join_words(["pm_channels", "annotation_channels", "image_channels"])
    'pm_channels, annotation_channels and image_channels'
    """
    return " and ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words)


def lowest_level_problem(size: Sequence[int], depths: Sequence[Depth]) -> str | None:
    """Which of ``depths`` leave a single value at the lowest level of slices of ``size`` (where an
    instance norm fails), or None.

    >>> print(lowest_level_problem((32, 64), [Depth("channel_mults", 6, 32, "5 halvings")]))
    None
    >>> print(lowest_level_problem((32, 32), [Depth("channel_mults", 6, 32, "5 halvings")]))
    ...                                    # doctest: +NORMALIZE_WHITESPACE
    channel_mults of 6 entries (5 halvings: 1 x 1 at the lowest level), where instance norm needs more
    than one value
    """
    bad = []
    for depth in depths:
        lowest = [int(s) // depth.factor for s in size]
        if math.prod(lowest) < 2:
            where = f"{format_size(lowest)} at the lowest level"
            bad.append(f"{depth.key} of {depth.entries} entries ({depth.how}: {where})")
    return f"{join_words(bad)}, where {INSTANCE_NORM_NEEDS}" if bad else None


def check_depths_fit(spatial_size: Sequence[int], depths: Sequence[Depth], multiple: int = 1) -> None:
    """``ConfigError`` unless every one of ``depths`` leaves more than one value at its lowest level (an
    instance norm works there); the message names the keys, the smallest spatial_size that fits (each
    side a multiple of ``multiple``) and, for networks that halve at every level, the most entries.

    >>> check_depths_fit((32, 32), [Depth("channel_mults", 6, 32, "5 halvings")], 32)
    ...                                    # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    anatosynth_components.errors.ConfigError: spatial_size [32, 32] is too small for channel_mults of 6
    entries (5 halvings: 1 x 1 at the lowest level), where instance norm needs more than one value: use
    spatial_size of at least [64, 64] (each side a multiple of 32) or at most 5 entries in channel_mults
    """
    bad = [d for d in depths if lowest_level_problem(spatial_size, [d])]
    alternative = None
    if bad and all(d.factor == 2 ** (d.entries - 1) for d in bad):  # one halving per entry
        alternative = (
            f"at most {max_halvings(spatial_size) + 1} entries in {join_words([d.key for d in bad])}"
        )
    check_size_fits(spatial_size, lambda size: lowest_level_problem(size, depths), multiple, alternative)


def max_halvings(size: Sequence[int], instance_norm: bool = True) -> int:
    """The most x2 down-samplings that divide every side of ``size`` and (with ``instance_norm``) leave
    more than one value at the lowest level.

    >>> max_halvings((32, 32)), max_halvings((32, 32), instance_norm=False), max_halvings((32, 64))
    (4, 5, 5)
    """
    k = 0
    while all(int(s) % 2 ** (k + 1) == 0 for s in size) and (
        not instance_norm or math.prod(int(s) // 2 ** (k + 1) for s in size) >= 2
    ):
        k += 1
    return k


def smallest_size(
    fits: Callable[[tuple[int, ...]], bool],
    spatial_size: Sequence[int],
    multiple: int = 1,
    limit: int = 1 << 15,
) -> tuple[int, ...] | None:
    """The smallest size that ``fits``: every side of ``spatial_size``, rounded up to a multiple of
    ``multiple``, raised to at least t = multiple, 2 multiple, ... up to ``limit``; None if none fits.

    >>> smallest_size(lambda s: min(s) >= 40, (32, 64), multiple=16)
    (48, 64)
    """
    base = [-(-int(s) // multiple) * multiple for s in spatial_size]
    for t in range(multiple, limit + 1, multiple):
        candidate = tuple(max(b, t) for b in base)
        if fits(candidate):
            return candidate
    return None


def check_size_fits(
    spatial_size: Sequence[int],
    problem: Callable[[tuple[int, ...]], str | None],
    multiple: int = 1,
    alternative: str | None = None,
    key: str = "spatial_size",
) -> None:
    """``ConfigError`` when ``problem(spatial_size)`` names a problem (what ``spatial_size`` is too small
    for), with the smallest size that has none (:func:`smallest_size`, sides multiples of ``multiple``)
    and ``alternative`` (another fix, such as a shallower network); ``key`` names the size in the message.

    >>> check_size_fits((16, 16), lambda s: None if min(s) >= 24 else "a 24-pixel kernel", 8, "a smaller one")
    ...                                    # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    anatosynth_components.errors.ConfigError: spatial_size [16, 16] is too small for a 24-pixel kernel:
    use spatial_size of at least [24, 24] (each side a multiple of 8) or a smaller one
    """
    size = tuple(int(s) for s in spatial_size)
    reason = problem(size)
    if reason is None:
        return
    smallest = smallest_size(lambda s: problem(s) is None, size, multiple)
    fixes = []
    if smallest is not None:
        each = f" (each side a multiple of {multiple})" if multiple > 1 else ""
        fixes.append(f"{key} of at least {list(smallest)}{each}")
    if alternative:
        fixes.append(alternative)
    raise ConfigError(f"{key} {list(size)} is too small for {reason}: use {' or '.join(fixes)}")


def has_instance_norm(module: torch.nn.Module) -> bool:
    """Whether ``module`` holds an instance norm (which needs more than one value per channel)."""
    return any(isinstance(m, torch.nn.modules.instancenorm._InstanceNorm) for m in module.modules())


def is_instance_norm(norm: str | tuple | None, spatial_dims: int) -> bool:
    """Whether the MONAI ``norm`` argument (``"instance"``, ``("instance", {...})``, ``Norm.INSTANCE``, ...)
    makes an instance norm.

    >>> is_instance_norm("INSTANCE", 3), is_instance_norm(("batch", {}), 2), is_instance_norm(None, 2)
    (True, False, False)
    """
    from monai.networks.layers.factories import Norm, split_args  # only the networks need MONAI here

    if norm is None:
        return False
    name, _ = split_args(norm)
    return issubclass(Norm[name, spatial_dims], torch.nn.modules.instancenorm._InstanceNorm)


def check_networks_fit(spatial_size: Sequence[int], *networks: object, multiple: int = 1) -> None:
    """Ask each of ``networks`` that has a ``check_size(spatial_size, multiple)`` method whether inputs of
    ``spatial_size`` fit it (a trainer does this at start-up for the networks, such as discriminators,
    that are not told the size); a ``ConfigError`` says which keys to change.  Wrappers (DDP) are looked
    through."""
    for network in networks:
        network = getattr(network, "module", network)
        check = getattr(network, "check_size", None)
        if callable(check):
            check(spatial_size, multiple)
