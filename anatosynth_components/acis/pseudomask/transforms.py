"""MONAI dictionary transforms that make ACIS pseudo-masks on the fly (for bundle configs).

* :class:`RandPseudoMaskd` (``Randomizable``): draws new seeds on every call and writes the
  pseudo-mask (and optionally the seeds and the cell map) next to the image.
* :class:`PseudoMaskDensityd` (deterministic): edges + density of Eq. 1, so that a
  ``CacheDataset`` can keep it and :class:`RandPseudoMaskd` (``density_keys=...``) only samples
  and tessellates per epoch.

Images are channel-first with one channel, (1, H, W) or (1, H, W, D); the voxel spacing is read
from the ``MetaTensor`` affine (``monai.data.utils.affine_to_spacing``), or taken from ``spacing``
when given (plain arrays / tensors without an affine: 1 mm unless ``spacing`` says otherwise).

Config example (``train.json``)::

    {"_target_": "anatosynth_components.acis.pseudomask.RandPseudoMaskd",
     "keys": "image", "num_points": 4096, "bandwidth_mm": 10.0}

Example::

    >>> import numpy as np, torch
    >>> from monai.data import MetaTensor
    >>> img = MetaTensor(torch.rand(1, 24, 24, 16), affine=torch.diag(torch.tensor([2.0, 2.0, 3.0, 1.0])))
    >>> t = RandPseudoMaskd(keys="image", num_points=50, seeds_keys="seeds")
    >>> _ = t.set_random_state(seed=0)
    >>> out = t({"image": img})
    >>> tuple(out["pseudo_mask"].shape), tuple(out["seeds"].shape)
    ((1, 24, 24, 16), (50, 3))
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.data.utils import affine_to_spacing
from monai.transforms import MapTransform, Randomizable
from monai.utils import convert_to_dst_type, ensure_tuple

from anatosynth_components import checks
from anatosynth_components.acis.pseudomask.density import DEFAULT_BANDWIDTH_MM, DEFAULT_FLOOR, edge_density
from anatosynth_components.acis.pseudomask.edges import (
    DEFAULT_HIGH_THRESHOLD,
    DEFAULT_LOW_THRESHOLD,
    canny_edges,
    check_canny_args,
)
from anatosynth_components.acis.pseudomask.pseudomask import pseudo_mask, sample_and_fill
from anatosynth_components.errors import ConfigError, DataError


def _output_keys(keys: tuple[Hashable, ...], out: KeysCollection | None, what: str) -> tuple[Hashable, ...]:
    if out is None:
        return ()
    out_keys = ensure_tuple(out)
    if len(out_keys) != len(keys):
        raise ConfigError(f"{what} needs one key per input key ({len(keys)}), got {len(out_keys)}")
    return out_keys


def _image_name(data: Mapping[Hashable, Any], key: Hashable) -> str:
    img = data[key]
    source = img.meta.get("filename_or_obj") if isinstance(img, MetaTensor) else None
    return f"{source} ({key})" if source else str(key)


def _spatial(
    data: Mapping[Hashable, Any], key: Hashable, spacing: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """The image of ``data[key]`` without its channel as a NumPy array, and its spacing in mm."""
    img = data[key]
    name = _image_name(data, key)
    if isinstance(img, torch.Tensor):
        array = img.detach().cpu().numpy()
    else:
        array = np.asarray(img)
    if array.ndim not in (3, 4) or array.shape[0] != 1:
        raise DataError(
            f"{name}: expected a channel-first image with one channel, (1, H, W) or (1, H, W, D); "
            f"got shape {tuple(array.shape)}"
        )
    array = array[0]
    if spacing is None:
        if isinstance(img, MetaTensor):
            spacing = np.asarray(affine_to_spacing(img.affine, r=array.ndim), dtype=np.float64)
        else:
            spacing = np.ones(array.ndim)
    return array, checks.check_spacing(spacing, array.ndim)


def _like(value: np.ndarray, img: Any, dtype: Any = None) -> Any:
    """``value`` (spatial) with a channel axis, as ``img``'s type (``MetaTensor`` keeps the meta data)."""
    out, *_ = convert_to_dst_type(value[None], dst=img, dtype=dtype)
    return out


class PseudoMaskDensityd(MapTransform):
    """Canny edges and the density ``f`` of Eq. 1 (all edge points) as a (1, *S) float32 image.

    Args:
        keys: image keys.
        density_keys: where to write each density (one per key).
        bandwidth_mm, spacing, canny_sigma, low_threshold, high_threshold, use_quantiles,
        edge_method: as in :func:`~anatosynth_components.acis.pseudomask.pseudo_mask`.
    """

    def __init__(
        self,
        keys: KeysCollection,
        density_keys: KeysCollection = "pseudo_mask_density",
        bandwidth_mm: float = DEFAULT_BANDWIDTH_MM,
        spacing: float | Sequence[float] | None = None,
        canny_sigma: float = 1.0,
        low_threshold: float = DEFAULT_LOW_THRESHOLD,
        high_threshold: float = DEFAULT_HIGH_THRESHOLD,
        use_quantiles: bool = True,
        edge_method: str = "auto",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.density_keys = _output_keys(self.keys, density_keys, "density_keys")
        self.bandwidth_mm = checks.check_positive_float("bandwidth_mm", bandwidth_mm)
        self.spacing = None if spacing is None else np.atleast_1d(np.asarray(spacing, dtype=np.float64))
        check_canny_args(canny_sigma, low_threshold, high_threshold, use_quantiles, edge_method)
        self.canny = (canny_sigma, low_threshold, high_threshold, use_quantiles, edge_method)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key, density_key in self.key_iterator(d, self.density_keys):
            array, spacing = _spatial(d, key, self.spacing)
            array = checks.check_image(array, _image_name(d, key))
            edges = canny_edges(array, *self.canny)
            density = edge_density(edges, self.bandwidth_mm, spacing)
            d[density_key] = _like(density, d[key], dtype=torch.float32)
        return d


class RandPseudoMaskd(Randomizable, MapTransform):
    """ACIS pseudo-mask of ``data[key]`` with new random seeds on every call.

    Args:
        keys: image keys, each (1, H, W) or (1, H, W, D).
        num_points: ``N`` seeds (Voronoi cells) per image.
        output_keys: where to write each pseudo-mask: (1, *S), the image's type, dtype and meta data.
        bandwidth_mm, floor, num_edge_points, spacing, canny_sigma, low_threshold, high_threshold,
        use_quantiles, edge_method: as in :func:`~anatosynth_components.acis.pseudomask.pseudo_mask`.
        density_keys: optional keys of densities from :class:`PseudoMaskDensityd`; when present in
            the data, edges and density are not recomputed (not allowed with ``num_edge_points``,
            whose random subset must be drawn anew each time).
        seeds_keys: optional keys for the seeds, int64 tensors (N, ndim) of voxel indices.
        cells_keys: optional keys for the cell maps, int32 (1, *S) of the image's type.

    ``set_random_state(seed)`` makes the sequence of pseudo-masks reproducible.
    """

    def __init__(
        self,
        keys: KeysCollection,
        num_points: int,
        output_keys: KeysCollection = "pseudo_mask",
        bandwidth_mm: float = DEFAULT_BANDWIDTH_MM,
        floor: float = DEFAULT_FLOOR,
        num_edge_points: int | None = None,
        spacing: float | Sequence[float] | None = None,
        canny_sigma: float = 1.0,
        low_threshold: float = DEFAULT_LOW_THRESHOLD,
        high_threshold: float = DEFAULT_HIGH_THRESHOLD,
        use_quantiles: bool = True,
        edge_method: str = "auto",
        density_keys: KeysCollection | None = None,
        seeds_keys: KeysCollection | None = None,
        cells_keys: KeysCollection | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.num_points = checks.check_positive_int("num_points", num_points)
        self.output_keys = _output_keys(self.keys, output_keys, "output_keys")
        self.density_keys = _output_keys(self.keys, density_keys, "density_keys")
        self.seeds_keys = _output_keys(self.keys, seeds_keys, "seeds_keys")
        self.cells_keys = _output_keys(self.keys, cells_keys, "cells_keys")
        if num_edge_points is not None:
            checks.check_positive_int("num_edge_points", num_edge_points)
            if self.density_keys:
                raise ConfigError("density_keys cannot be used with num_edge_points (the subset is random)")
        self.settings = {
            "bandwidth_mm": checks.check_positive_float("bandwidth_mm", bandwidth_mm),
            "floor": checks.check_fraction("floor", floor),
            "num_edge_points": num_edge_points,
            "canny_sigma": canny_sigma,
            "low_threshold": low_threshold,
            "high_threshold": high_threshold,
            "use_quantiles": use_quantiles,
            "edge_method": edge_method,
        }
        check_canny_args(canny_sigma, low_threshold, high_threshold, use_quantiles, edge_method)
        self.spacing = None if spacing is None else np.atleast_1d(np.asarray(spacing, dtype=np.float64))
        self._entropy: int = 0

    def randomize(self, data: Any = None) -> None:
        """Draw the entropy of this call's ``numpy.random.Generator`` from ``self.R``."""
        self._entropy = int(self.R.randint(0, 2**31 - 1, dtype=np.int64))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize()
        generator = np.random.default_rng(self._entropy)
        for key in self.key_iterator(d):
            index = self.keys.index(key)
            img = d[key]
            name = _image_name(d, key)
            array, spacing = _spatial(d, key, self.spacing)
            density_key = self.density_keys[index] if self.density_keys else None
            if density_key is not None and density_key in d:
                array = checks.check_image(array, name)
                density, _ = _spatial(d, density_key, spacing)
                mask, cells, seeds = sample_and_fill(
                    array, density, self.num_points, generator, spacing, self.settings["floor"], name
                )
            else:
                result = pseudo_mask(
                    array, self.num_points, generator, spacing=spacing, name=name, **self.settings
                )
                mask, cells, seeds = result.mask, result.cells, result.seeds
            d[self.output_keys[index]] = _like(mask, img)
            if self.seeds_keys:
                d[self.seeds_keys[index]] = torch.as_tensor(seeds, dtype=torch.int64)
            if self.cells_keys:
                d[self.cells_keys[index]] = _like(cells, img, dtype=torch.int32)
        return d
