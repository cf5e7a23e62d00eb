"""Image degradations of the ACIS reconstruction experiments (paper Sec. 3.1, "Reconstruction"):
bilinear downsampling for super-resolution, Gaussian blur for deblurring, additive Gaussian noise
for denoising.

All act on batches of images (B, C, *spatial) in [0, 1] (``spatial_dims`` 2 or 3), in pixel units:

- :func:`downsample`: bilinear (trilinear in 3-D) interpolation to ``size // factor``, with
  half-pixel centres (``align_corners=False``) and no anti-aliasing pre-filter, as
  ``torch.nn.functional.interpolate`` does; "downsampled images obtained by bilinear
  interpolation [35]".  For factor s, output pixel i samples the input at s * i + (s - 1) / 2, so
  a linear ramp is reproduced exactly.  Sizes must be multiples of the factor.
- :func:`gaussian_blur`: convolution with a sampled, normalised Gaussian of standard deviation
  ``sigma`` pixels, truncated at 4 sigma (``scipy.ndimage.gaussian_filter``'s convention), built
  from MONAI's ``gaussian_1d`` and applied separably with MONAI's ``separable_filtering``; borders
  are mirrored (torch's ``reflect`` padding, so every side must exceed the kernel radius
  4 sigma) so the image keeps its mean near the edges.  sigma in {1, 2, 5} in the paper's
  text (its Table 2 prints sigma = 2, 3, 5 for the deblurring rows; the text is followed here and
  any sigma can be configured).
- :func:`add_gaussian_noise`: x + N(0, sigma^2) per pixel, sigma in {0.1, 0.2, 0.5} on the [0, 1]
  scale, mu = 0 as the paper says.  The result is not clipped, so the noise has exactly the stated
  distribution.

:func:`degrade` applies one task by name (``sr2``, ``sr4``, ``blur1``, ``blur2``, ``blur5``,
``noise0.1``, ...; see :func:`parse_task`).

Example:
    >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> downsample(x, 2)[0, 0]  # the 2 x 2 block means, which is what bilinear gives for a ramp
    tensor([[ 2.5000,  4.5000],
            [10.5000, 12.5000]])
    >>> y = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    >>> degrade(y, "sr4").shape, degrade(y, "blur2").shape
    (torch.Size([2, 1, 8, 8]), torch.Size([2, 1, 32, 32]))
    >>> noisy = degrade(y, "noise0.1", generator=torch.Generator().manual_seed(0))
    >>> round(float((noisy - y).std()), 2)
    0.1
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from monai.networks.layers.convutils import gaussian_1d
from monai.networks.layers.simplelayers import separable_filtering

from anatosynth_components.checks import check_positive_float, check_positive_int
from anatosynth_components.errors import ConfigError, DataError

#: the paper's reconstruction tasks (Sec. 3.1).
PAPER_TASKS = ("sr2", "sr4", "blur1", "blur2", "blur5", "noise0.1", "noise0.2", "noise0.5")
_TASK = re.compile(r"^(sr|blur|noise)(\d+(?:\.\d+)?)$")
_MODES = {2: "bilinear", 3: "trilinear"}


@dataclass(frozen=True)
class Task:
    """A degradation: ``kind`` (``sr``, ``blur``, ``noise``) and its ``level`` (factor or sigma)."""

    name: str
    kind: str
    level: float

    @property
    def scale(self) -> int:
        """The super-resolution factor (1 for blur and noise)."""
        return int(self.level) if self.kind == "sr" else 1


def parse_task(name: str) -> Task:
    """``"sr4"`` -> Task(kind="sr", level=4); ``"blur2"``; ``"noise0.2"``.

    Raises:
        ConfigError: an unknown name, a non-integer SR factor below 2, or a sigma that is not positive.
    """
    match = _TASK.match(str(name))
    if match is None:
        raise ConfigError(
            f"unknown degradation task {name!r}; use sr<factor>, blur<sigma> or noise<sigma>, "
            f"e.g. {', '.join(PAPER_TASKS)}"
        )
    kind, level = match.group(1), float(match.group(2))
    if kind == "sr" and (level != int(level) or level < 2):
        raise ConfigError(f"task {name!r}: the super-resolution factor must be an integer >= 2")
    if level <= 0:
        raise ConfigError(f"task {name!r}: sigma must be positive")
    return Task(str(name), kind, level)


def _check(x: torch.Tensor, what: str) -> int:
    if not isinstance(x, torch.Tensor) or x.ndim not in (4, 5):
        raise DataError(
            f"{what}: expected a batch (B, C, H, W) or (B, C, D, H, W), got {getattr(x, 'shape', x)}"
        )
    return x.ndim - 2


def downsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Bilinear (trilinear) downsampling by an integer ``factor``: (B, C, *S) -> (B, C, *S / factor)."""
    dims = _check(x, "downsample")
    check_positive_int("downsample: factor", factor)
    if any(s % factor for s in x.shape[2:]):
        raise DataError(
            f"downsample: spatial size {tuple(x.shape[2:])} is not a multiple of the factor {factor}"
        )
    size = [s // factor for s in x.shape[2:]]
    return F.interpolate(x, size=size, mode=_MODES[dims], align_corners=False, antialias=False)


def upsample(x: torch.Tensor, size: tuple[int, ...] | list[int]) -> torch.Tensor:
    """Bilinear (trilinear) interpolation to ``size``: the pre-upsampling of networks without upsampler."""
    dims = _check(x, "upsample")
    return F.interpolate(x, size=list(size), mode=_MODES[dims], align_corners=False)


def gaussian_kernel(sigma: float, truncated: float = 4.0) -> torch.Tensor:
    """The sampled, normalised 1-D Gaussian of ``sigma`` pixels, ``2 * ceil(truncated * sigma) + 1`` taps."""
    return gaussian_1d(torch.tensor(float(sigma)), truncated=truncated, approx="sampled", normalize=True)


def gaussian_blur(x: torch.Tensor, sigma: float, truncated: float = 4.0) -> torch.Tensor:
    """Separable Gaussian blur of every spatial axis with ``sigma`` pixels, reflected borders."""
    _check(x, "gaussian_blur")
    check_positive_float("gaussian_blur: sigma", sigma)
    kernel = gaussian_kernel(sigma, truncated).to(x)
    if any(s <= len(kernel) // 2 for s in x.shape[2:]):
        raise DataError(
            f"gaussian_blur: image {tuple(x.shape[2:])} is too small for sigma {sigma} "
            f"(kernel radius {len(kernel) // 2} pixels needs every side > the radius)"
        )
    return separable_filtering(x, [kernel] * (x.ndim - 2), mode="reflect")


def add_gaussian_noise(
    x: torch.Tensor, sigma: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``x`` + zero-mean Gaussian noise of standard deviation ``sigma`` (not clipped)."""
    _check(x, "add_gaussian_noise")
    check_positive_float("add_gaussian_noise: sigma", sigma)
    noise = torch.randn(
        x.shape, generator=generator, dtype=x.dtype, device=generator.device if generator else x.device
    )
    return x + sigma * noise.to(x.device)


def degrade(x: torch.Tensor, task: str | Task, generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply a task's degradation to a batch (see the module docstring)."""
    task = task if isinstance(task, Task) else parse_task(task)
    if task.kind == "sr":
        return downsample(x, task.scale)
    if task.kind == "blur":
        return gaussian_blur(x, task.level)
    return add_gaussian_noise(x, task.level, generator)
