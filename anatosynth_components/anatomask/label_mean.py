"""The label-mean baseline: every voxel painted with the mean training intensity of its label.

A mask-to-image model that scores below this lookup table has learned less than the average grey
level of each structure, so the evaluation always reports it next to the model, scored with the
same metrics on the same test subjects (``baselines.label_mean`` in ``eval/metrics.json``).

The table is computed from the training subjects only, passed through the same volume transforms
as the evaluation (loading, label remapping, intensity normalisation to [0, 1], resizing to the
network's slice size), so it lives at the network's resolution and intensity scale:

    mean[c] = sum of the intensities of the training voxels labelled c / their number

for every label id c seen in training (background 0 included). An id never seen in training gets
the mean of all training voxels.

In ``evaluate.json`` (the evaluator's input ``"image"`` is the label map, see ``MaskToImageBatch``)::

    "label_mean": "$anatosynth_components.anatomask.label_mean.LabelMeans.from_items(
                       @split['training'], @volume_transforms)",
    "validate#evaluator#postprocessing": {
        "_target_": "anatosynth_components.anatomask.label_mean.LabelMeanImaged",
        "means": "@label_mean", "label_key": "image", "output_key": "label_mean"}

Example:
    >>> labels = torch.tensor([[[[0, 1], [1, 2]]]])
    >>> image = torch.tensor([[[[0.0, 0.4], [0.6, 0.9]]]])
    >>> means = LabelMeans.from_pairs([(image, labels)])
    >>> [round(m, 4) for m in means.means.tolist()]  # label 0, 1, 2
    [0.0, 0.5, 0.9]
    >>> means(torch.tensor([[[[2, 1], [0, 7]]]]))  # id 7 unseen: the mean of all voxels, 0.475
    tensor([[[[0.9000, 0.5000],
              [0.0000, 0.4750]]]])
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

import torch
from monai.data import DataLoader, Dataset, MetaTensor
from monai.transforms import Compose, Transform
from monai.utils import convert_to_tensor

from anatosynth_components.errors import DataError

logger = logging.getLogger(__name__)


def _plain(x: Any) -> torch.Tensor:
    return convert_to_tensor(x, track_meta=False)


class LabelMeans:
    """Mean intensity per label id, and the baseline image it paints from a label map.

    Args:
        sums: (K,) sum of the intensities of the voxels of each label id 0 .. K - 1.
        counts: (K,) number of voxels of each label id.

    Raises:
        DataError: no voxel at all.

    Attributes:
        means: (K,) float64, the mean intensity of each id; ids without voxels get :attr:`fallback`.
        counts: (K,) int64 voxel counts.
        fallback: the mean of all voxels, for ids never seen.
    """

    def __init__(self, sums: torch.Tensor, counts: torch.Tensor) -> None:
        sums, counts = torch.as_tensor(sums, dtype=torch.float64), torch.as_tensor(counts, dtype=torch.int64)
        total = int(counts.sum())
        if total == 0:
            raise DataError("label-mean baseline: no voxels to average (no training subjects?)")
        self.fallback = float(sums.sum() / total)
        self.counts = counts
        self.means = torch.where(counts > 0, sums / counts.clamp_min(1), torch.full_like(sums, self.fallback))

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> LabelMeans:
        """Accumulate ``(image, label_map)`` pairs of matching shape (any layout, label ids >= 0)."""
        sums = torch.zeros(0, dtype=torch.float64)
        counts = torch.zeros(0, dtype=torch.int64)
        for image, label_map in pairs:
            image, label_map = _plain(image), _plain(label_map)
            if image.shape != label_map.shape:
                raise DataError(
                    f"label-mean baseline: image {tuple(image.shape)} and label map {tuple(label_map.shape)} "
                    "differ in shape"
                )
            ids = label_map.detach().cpu().round().long().reshape(-1)
            if ids.numel() and int(ids.min()) < 0:
                raise DataError(f"label-mean baseline: negative label id {int(ids.min())}")
            values = image.detach().cpu().double().reshape(-1)
            size = max(len(sums), int(ids.max()) + 1 if ids.numel() else 0)
            sums = torch.nn.functional.pad(sums, (0, size - len(sums)))
            counts = torch.nn.functional.pad(counts, (0, size - len(counts)))
            sums += torch.bincount(ids, weights=values, minlength=size)
            counts += torch.bincount(ids, minlength=size)
        return cls(sums, counts)

    @classmethod
    def from_items(
        cls,
        items: Sequence[Mapping[str, Any]],
        transform: Callable | Sequence[Callable],
        image_key: str = "image",
        label_key: str = "label",
        num_workers: int = 0,
    ) -> LabelMeans:
        """The table of the training subjects ``items`` (datalist entries), each passed through
        ``transform`` (a callable or a list of transforms, e.g. the bundle's ``volume_transforms``) so
        the intensities are those the network is trained on, at its resolution.

        Args:
            items: datalist entries with ``image_key`` (the real image) and ``label_key`` (its label map).
            transform: the volume transforms of the evaluation.
            image_key, label_key: keys of the real image and the label map after ``transform``.
            num_workers: data loader workers.

        Raises:
            DataError: no items, or a transformed item lacks a key.
        """
        items = list(items)
        if not items:
            raise DataError("label-mean baseline: no training subjects to compute the label means from")
        if not callable(transform):
            transform = Compose(list(transform))
        loader = DataLoader(Dataset(items, transform), batch_size=1, shuffle=False, num_workers=num_workers)

        def pairs():
            for batch in loader:
                missing = [k for k in (image_key, label_key) if k not in batch]
                if missing:
                    raise DataError(f"label-mean baseline: a transformed training item lacks {missing}")
                yield batch[image_key], batch[label_key]

        means = cls.from_pairs(pairs())
        logger.info(
            "label-mean baseline: means of %d label ids from %d training subjects (%d voxels)",
            int((means.counts > 0).sum()),
            len(items),
            int(means.counts.sum()),
        )
        return means

    def __call__(self, label_map: torch.Tensor) -> torch.Tensor:
        """The baseline image (float32, the label map's shape and device): each voxel the mean of its id."""
        ids = _plain(label_map).round().long()
        table = self.means.to(device=ids.device, dtype=torch.float32)
        known = (ids >= 0) & (ids < len(table))
        out = table[ids.clamp(0, len(table) - 1)]
        return torch.where(known, out, torch.full_like(out, self.fallback))

    def to_dict(self) -> dict[str, Any]:
        """``{"means": {id: mean}, "counts": {id: voxels}, "fallback": mean}`` for ids seen in training."""
        seen = [i for i in range(len(self.counts)) if self.counts[i] > 0]
        return {
            "means": {str(i): float(self.means[i]) for i in seen},
            "counts": {str(i): int(self.counts[i]) for i in seen},
            "fallback": self.fallback,
        }


class LabelMeanImaged(Transform):
    """Dictionary transform: ``d[output_key]`` = the label-mean image of the label map ``d[label_key]``.

    Use it as the evaluator's ``postprocessing`` (it runs on each decollated output item, before the
    metric handlers), so the baseline is scored with the same metrics as the model's ``"pred"``. The
    result keeps the label map's metadata (affine) when it is a ``MetaTensor``.

    Args:
        means: the table (:meth:`LabelMeans.from_items`).
        label_key: key of the label map (``"image"`` in the evaluators' output).
        output_key: key for the baseline image.
    """

    def __init__(self, means: LabelMeans, label_key: str = "image", output_key: str = "label_mean") -> None:
        if not isinstance(means, LabelMeans):
            raise DataError(f"LabelMeanImaged: means must be a LabelMeans table, got {type(means).__name__}")
        self.means, self.label_key, self.output_key = means, label_key, output_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if self.label_key not in d:
            raise DataError(f"LabelMeanImaged: no {self.label_key!r} (label map) in {sorted(map(str, d))}")
        label_map = d[self.label_key]
        image = self.means(label_map)
        d[self.output_key] = (
            MetaTensor(image, meta=dict(label_map.meta)) if isinstance(label_map, MetaTensor) else image
        )
        return d
