"""The streaming 2-D slice data path of the reconstruction experiment: an index of (scan, slice)
references, slices read lazily on demand through a byte-bounded LRU cache, and per-slice seeded
degradations, so that memory does not grow with the number of scans.

- :class:`SliceRef`: one 2-D image, ``(scan, image address, z)``; ``z`` is the slice index along
  the last axis of a 3-D volume, ``None`` for a 2-D image (or an (X, Y, 1) volume).
- :class:`SliceStore`: builds the references of items (:meth:`SliceStore.index`, from metadata
  only: the HDF5 shape of a PENet study, the NIfTI header) and reads a slice when asked
  (:meth:`SliceStore.get`): a PENet study one slice at a time from its HDF5 file
  (:class:`~anatosynth_components.data.penet.PENetSlices`), any other file (NIfTI, 2-D slices or
  3-D volumes) whole, through ``LoadVolumed``, keeping every indexed slice of it.  Every slice is
  scaled to [0, 1] (``intensity`` "chest": HU window [-1000, 600]; "unit": checked) and resized
  in-plane to ``spatial_size`` (MONAI ``Resized``, bilinear with anti-aliasing), one 2-D slice at a
  time; a volume resized whole (``ResizeSlicesd``, trilinear with the slice axis kept) gives the
  same values up to float rounding (a few 1e-8).  Resized slices are kept in an LRU cache of at
  most ``cache_bytes`` bytes.
- :class:`SliceDataset`: a map-style dataset over references, ``{"image": (1, H, W) float32}``
  after an optional MONAI transform (random crop, augmentation).
- :func:`slice_seed`, :func:`degrade_slices`: the degraded test input of one slice is made from its
  own generator, seeded from (seed, task, scan, slice), so every network and arm gets the same
  input without storing it, and different slices get different noise.

Example::

    store = SliceStore((256, 256), cache_bytes=1 << 30)
    refs = store.index([{"image": "/data/penet/data.hdf5::12", "subject": "12"}], stride=1)
    batch = torch.stack([store.get(r) for r in refs[:16]])   # (16, 1, 256, 256), in [0, 1]
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from monai.transforms import Resized
from monai.utils import convert_to_tensor
from torch.utils.data import Dataset

from anatosynth_components.data import LoadVolumed
from anatosynth_components.data.degradations import Task, degrade
from anatosynth_components.data.penet import PENetSlices
from anatosynth_components.errors import DataError
from anatosynth_components.experiments.datasets import to_unit_range


@dataclass(frozen=True)
class SliceRef:
    """One 2-D image: slice ``z`` of the volume ``image`` of ``scan`` (``z`` None: a 2-D image)."""

    scan: str
    image: str
    z: int | None


def _plain(image: Any) -> torch.Tensor:
    """A contiguous float32 tensor without MONAI metadata."""
    return convert_to_tensor(image, dtype=torch.float32, track_meta=False).contiguous()


def nifti_depth(path: str) -> tuple[bool, int | None]:
    """``(known, depth)`` from a NIfTI header: depth None for a 2-D image or an (X, Y, 1) volume;
    ``known`` False when the file is not NIfTI (or has more than 3 axes) and must be loaded."""
    name = str(path).lower()
    if not (name.endswith(".nii") or name.endswith(".nii.gz")):
        return False, None
    import nibabel as nib

    try:
        shape = nib.load(str(path)).shape
    except Exception:  # noqa: BLE001 - loading it whole then raises the readable DataError
        return False, None
    if len(shape) == 2 or (len(shape) == 3 and shape[2] == 1):
        return True, None
    if len(shape) == 3:
        return True, int(shape[2])
    return False, None


class SliceStore:
    """Lazy reader of the 2-D slices of items, at ``spatial_size``, in [0, 1], with an LRU cache of at
    most ``cache_bytes`` bytes of resized slices (0: no cache).

    Counters (:meth:`stats`): ``slice_reads`` (PENet slices read from HDF5), ``file_loads`` (other
    files loaded whole), ``hits`` and ``misses`` of the cache, ``cached_bytes``.
    """

    def __init__(self, spatial_size: Sequence[int], cache_bytes: int) -> None:
        self.size = tuple(int(s) for s in spatial_size)
        self.cache_bytes = int(cache_bytes)
        self._cache: OrderedDict[tuple[str, int | None], torch.Tensor] = OrderedDict()
        self._bytes = 0
        self._resize = Resized("image", self.size, mode="bilinear", anti_aliasing=True)
        self._penet = PENetSlices()
        self._intensity: dict[str, str] = {}
        self._kept: dict[str, list[int | None]] = {}
        self._depth: dict[str, int | None] = {}
        self._checked: set[str] = set()
        self.counts = {"slice_reads": 0, "file_loads": 0, "hits": 0, "misses": 0}

    # --- the index ----------------------------------------------------------------------------

    def depth(self, image: str) -> int | None:
        """Slices of the volume ``image`` along its last axis (None: a 2-D image), from metadata
        where the format allows (PENet HDF5 shape, NIfTI header), else by loading the file once."""
        if image not in self._depth:
            if self._penet.accepts(image):
                depth: int | None = self._penet.depth(image)
            else:
                known, depth = nifti_depth(image)
                if not known:
                    depth = self._slices_of(self._load(image, "chest", check=False))[1]
            self._depth[image] = depth
        return self._depth[image]

    def index(
        self, items: Sequence[dict[str, Any]], stride: int = 1, intensity: str = "chest"
    ) -> list[SliceRef]:
        """The references of every ``stride``-th slice of each item's ``image`` (a 2-D image: itself),
        in item order; ``intensity`` ("chest" or "unit") says how its values map to [0, 1].

        Raises:
            DataError: an image indexed twice with different intensities or strides.
        """
        refs = []
        for item in items:
            image = str(item["image"])
            depth = self.depth(image)
            kept: list[int | None] = [None] if depth is None else list(range(0, depth, stride))
            if (
                self._intensity.setdefault(image, intensity) != intensity
                or self._kept.setdefault(image, kept) != kept
            ):
                raise DataError(f"{image}: indexed twice with different intensities or slice strides")
            refs += [SliceRef(str(item.get("subject", image)), image, z) for z in kept]
        return refs

    # --- reading ------------------------------------------------------------------------------

    def get(self, ref: SliceRef) -> torch.Tensor:
        """The slice (1, H, W), float32 in [0, 1] (shared with the cache: do not modify in place)."""
        key = (ref.image, ref.z)
        hit = self._cache.get(key)
        if hit is not None:
            self.counts["hits"] += 1
            self._cache.move_to_end(key)
            return hit
        self.counts["misses"] += 1
        if ref.image not in self._intensity:
            raise DataError(f"{ref.image}: not indexed (call SliceStore.index first)")
        if self._penet.accepts(ref.image):
            return self._put(key, self._read_penet(ref))
        return self._load_all(ref)

    def _read_penet(self, ref: SliceRef) -> torch.Tensor:
        self.counts["slice_reads"] += 1
        hu = torch.from_numpy(self._penet.read(ref.image, int(ref.z)))[None]
        unit = to_unit_range(self._intensity[ref.image])({"image": hu})["image"]
        return self._resized(unit)

    def _resized(self, image: torch.Tensor) -> torch.Tensor:
        return _plain(self._resize({"image": image})["image"])

    def _load(self, image: str, intensity: str, check: bool = True) -> Any:
        self.counts["file_loads"] += 1
        volume = LoadVolumed("image")({"image": image})["image"]
        return to_unit_range(intensity)({"image": volume})["image"] if check else volume

    @staticmethod
    def _slices_of(volume: Any) -> tuple[Any, int | None]:
        """(the volume as (1, X, Y[, Z]), its depth or None) of a loaded image."""
        if volume.ndim == 4 and volume.shape[-1] == 1:
            volume = volume[..., 0]
        if volume.ndim == 3:
            return volume, None
        if volume.ndim == 4:
            return volume, int(volume.shape[-1])
        name = getattr(volume, "meta", {}).get("filename_or_obj", "image")
        raise DataError(f"{name}: expected a 2-D slice or a 3-D volume, got shape {tuple(volume.shape)}")

    def _load_all(self, ref: SliceRef) -> torch.Tensor:
        """Load a whole file (NIfTI, ...): resize and cache each of its indexed slices; return ``ref``'s."""
        volume, _ = self._slices_of(self._load(ref.image, self._intensity[ref.image]))
        wanted = None
        for z in self._kept[ref.image]:
            key = (ref.image, z)
            sliced = self._resized(volume if z is None else volume[..., z])
            if z == ref.z:
                wanted = sliced
            if key not in self._cache:
                self._put(key, sliced)
        if wanted is None:
            raise DataError(f"{ref.image}: slice {ref.z} is not an indexed slice of the file")
        return wanted

    def check_all(self, refs: Sequence[SliceRef]) -> None:
        """Read every file of ``refs`` once (their intensity checks run; slices enter the cache); files
        checked before are not read again."""
        for ref in refs:
            if ref.image not in self._checked:
                if self._penet.accepts(ref.image):  # every indexed slice, one at a time
                    for z in self._kept[ref.image]:
                        self._read_penet(SliceRef(ref.scan, ref.image, z))
                else:
                    self._load_all(ref)
                self._checked.add(ref.image)

    def _put(self, key: tuple[str, int | None], tensor: torch.Tensor) -> torch.Tensor:
        size = tensor.numel() * tensor.element_size()
        if size <= self.cache_bytes:
            self._cache[key] = tensor
            self._bytes += size
            while self._bytes > self.cache_bytes:
                _, old = self._cache.popitem(last=False)
                self._bytes -= old.numel() * old.element_size()
        return tensor

    def stats(self) -> dict[str, int]:
        return {**self.counts, "cached_slices": len(self._cache), "cached_bytes": self._bytes}

    def close(self) -> None:
        self._penet.close()
        self._cache.clear()
        self._bytes = 0


class SliceDataset(Dataset):
    """Map-style dataset of the slices ``refs``: ``{"image": (1, H, W) float32}`` (after ``transform``,
    a MONAI dictionary transform such as a random crop, when given)."""

    def __init__(
        self, refs: Sequence[SliceRef], store: SliceStore, transform: Callable[[dict], dict] | None = None
    ) -> None:
        self.refs, self.store, self.transform = list(refs), store, transform

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        data = {"image": self.store.get(self.refs[index])}
        if self.transform is not None:
            data = self.transform(data)
        return {"image": _plain(data["image"])}


def slice_seed(seed: int, task: str, scan: str, z: int | None) -> int:
    """The seed of one test slice's degradation: a 63-bit hash of (seed, task, scan, slice), stable
    across processes and runs (unlike Python's ``hash``).

    >>> slice_seed(0, "noise0.1", "12", 3) == slice_seed(0, "noise0.1", "12", 3)
    True
    >>> slice_seed(0, "noise0.1", "12", 3) != slice_seed(0, "noise0.1", "12", 4)
    True
    """
    text = f"{int(seed)}\x1f{task}\x1f{scan}\x1f{'-' if z is None else int(z)}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & ((1 << 63) - 1)


def degrade_slices(clean: torch.Tensor, task: Task, seeds: Sequence[int]) -> torch.Tensor:
    """``degrade`` of a batch (B, 1, H, W) where slice i draws its noise from its own generator,
    seeded ``seeds[i]`` (super-resolution and blur are deterministic and run batched)."""
    if len(seeds) != len(clean):
        raise DataError(f"degrade_slices: {len(seeds)} seeds for {len(clean)} slices")
    if task.kind != "noise":
        return degrade(clean, task)
    return torch.cat(
        [
            degrade(clean[i : i + 1], task, generator=torch.Generator().manual_seed(s))
            for i, s in enumerate(seeds)
        ]
    )


def batches(refs: Sequence[SliceRef], size: int) -> Iterator[list[SliceRef]]:
    """``refs`` in consecutive chunks of at most ``size``."""
    for start in range(0, len(refs), size):
        yield list(refs[start : start + size])


def degraded_batches(
    store: SliceStore, refs: Sequence[SliceRef], task: Task, seed: int, size: int
) -> Iterator[tuple[list[SliceRef], torch.Tensor, torch.Tensor]]:
    """(references, clean (B, 1, H, W), degraded) of the test slices, ``size`` at a time, degraded on the
    fly with :func:`slice_seed` generators: the same inputs on every call."""
    for chunk in batches(refs, size):
        clean = torch.stack([store.get(r) for r in chunk])
        seeds = [slice_seed(seed, task.name, r.scan, r.z) for r in chunk]
        yield chunk, clean, degrade_slices(clean, task, seeds)
