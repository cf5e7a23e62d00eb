"""Left-right flips that keep the labels anatomically right.

A left-right mirror of a label map moves each lateralised structure to the other side: the mirrored
left kidney lies where a right kidney belongs and has a right kidney's shape.  Flipping the arrays
alone would teach a network that "left kidney" looks like, and lies where, a right kidney does.
:class:`RandLateralFlipd` therefore mirrors RAS volumes along their left-right axis (spatial axis 0
after :class:`~anatosynth_components.data.orientation.OrientToRASd`) and swaps the ids of the label
set's left / right pairs (:class:`~anatosynth_components.data.label_tables.LateralPairs`) in the
label maps, in both directions.  Midline and unpaired structures keep their ids.

The flipped volume keeps its RAS affine: it is a new, mirrored subject in the same RAS frame (each
structure on the side its id names), not the same subject with its voxels re-indexed (which is what
MONAI's ``Flipd`` records by updating the affine).  A label set whose lateral structures have no
one-to-one counterparts (``lobes_heart``: two left lobes, three right lobes) cannot be mirrored:
:class:`RandLateralFlipd` refuses it, and :func:`anatomy_safe_flips` flips such data along the
other axes only.

Example::

    Compose([LoadVolumed(["image", "label"]), OrientToRASd(["image", "label"]),
             RandLateralFlipd(["image", "label"], "abdomenctct", prob=0.5, label_ids=range(1, 14))])
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, RandFlipd, RandomizableTransform, Transform
from monai.utils import ensure_tuple

from anatosynth_components.checks import check_fraction, check_spatial_axis
from anatosynth_components.data.label_tables import LateralPairs, get_lateral_pairs
from anatosynth_components.data.orientation import RequireRASd, require_ras
from anatosynth_components.errors import ConfigError

#: the left-right spatial axis of a RAS volume
LR_AXIS = 0


def swap_labels(label: torch.Tensor, swap: Mapping[int, int]) -> torch.Tensor:
    """``label`` with every id ``a`` of ``swap`` replaced by ``swap[a]`` at once (a lookup table: one
    pass, where MONAI's ``MapLabelValue`` makes one per id); dtype kept.

    Example::

        >>> swap_labels(torch.tensor([0, 2, 3, 5]), {2: 3, 3: 2}).tolist()
        [0, 3, 2, 5]
    """
    if not swap or label.numel() == 0:
        return label.clone()
    ids = label.long()
    size = max(int(ids.max()), *swap) + 1
    lut = torch.arange(size, dtype=torch.long, device=label.device)
    lut[torch.tensor(list(swap), device=label.device)] = torch.tensor(
        list(swap.values()), device=label.device
    )
    return lut[ids.clamp_min(0)].where(ids >= 0, ids).to(label.dtype)


class RandLateralFlipd(RandomizableTransform, MapTransform):
    """With probability ``prob``, mirror RAS volumes along the left-right axis (spatial axis 0) and
    swap the left / right ids of ``lateral_pairs`` in ``label_keys``.

    Every volume must be a RAS ``MetaTensor`` of known orientation (reorient right after loading,
    :class:`~anatosynth_components.data.orientation.OrientToRASd`): anything else is a ``DataError``
    naming the file and key, checked on every call, flipped or not.

    Args:
        keys: keys of all volumes to flip (images and label maps); same spatial shape.
        lateral_pairs: the left-right table: a label set name (``"oasis35"``, ``"abdomenctct"``), a
            :class:`~anatosynth_components.data.label_tables.LateralPairs`, or a mapping
            ``{"3": 2, "13": 12}`` (left id -> right id).  A label set that cannot be mirrored
            (``"lobes_heart"``) is a ``ConfigError`` naming ``lateral_pairs`` and why.
        label_keys: the keys among ``keys`` that hold label maps (ids swapped).
        prob: probability of the flip.
        label_ids: the label set's ids (e.g. ``range(1, num_classes)``): every id of the table must
            be one of them.

    Example::

        flip = RandLateralFlipd(["image", "label"], "abdomenctct", prob=1.0, label_ids=range(1, 14))
        out = flip({"image": ct, "label": organs})   # both mirrored; kidneys 2 <-> 3, adrenals 12 <-> 13
    """

    backend = [*RandFlipd.backend]

    def __init__(
        self,
        keys: KeysCollection,
        lateral_pairs: str | LateralPairs | Mapping,
        label_keys: KeysCollection = "label",
        prob: float = 0.5,
        label_ids: Iterable[int] | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, check_fraction("prob", prob))
        table = get_lateral_pairs(lateral_pairs, "lateral_pairs", label_ids)
        if table is None:
            raise ConfigError("lateral_pairs: RandLateralFlipd needs a table of left / right ids, got null")
        if not table.mirrorable:
            raise ConfigError(
                f"lateral_pairs: label set {table.name!r} cannot be mirrored left-right; no relabelling "
                f"gives a valid map: {table.refusal()}. Flip along the other axes only."
            )
        self.lateral_pairs = table
        self.swap = table.swap
        self.label_keys = tuple(ensure_tuple(label_keys))
        outside = [k for k in self.label_keys if k not in self.keys]
        if outside:
            raise ConfigError(
                f"label_keys {outside} of RandLateralFlipd must be among its keys {list(self.keys)}"
            )

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize(None)
        for key in self.key_iterator(d):
            require_ras(d[key], key, "RandLateralFlipd")
        if not self._do_transform:
            return d
        for key in self.key_iterator(d):
            x = d[key]
            flipped = torch.flip(x.as_tensor(), dims=(LR_AXIS + 1,))
            if key in self.label_keys:
                flipped = swap_labels(flipped, self.swap)
            d[key] = MetaTensor(flipped, meta=x.meta, applied_operations=list(x.applied_operations))
        return d


def anatomy_safe_flips(
    keys: KeysCollection,
    flip_axes: int | Sequence[int],
    lateral_pairs: str | LateralPairs | Mapping | None = None,
    prob: float = 0.5,
    label_keys: KeysCollection = "label",
    label_ids: Iterable[int] | None = None,
) -> list[Transform]:
    """Random flips of RAS volumes along ``flip_axes`` that keep lateralised labels right.

    Returns ``[RequireRASd(keys)]`` (axes 1 and 2 mean anterior and superior only on RAS volumes),
    then, when ``flip_axes`` holds the left-right axis 0, ``RandLateralFlipd(keys, lateral_pairs,
    label_keys, prob, label_ids)`` (a ``ConfigError`` when ``lateral_pairs`` is None or cannot be
    mirrored, e.g. ``"lobes_heart"``), then ``RandFlipd(keys, prob, spatial_axis=<the other axes>)``
    (one draw for those axes together; flips that keep left and right need no swap).

    Example::

        augment = Compose([*anatomy_safe_flips(["image", "label"], [1, 2], "lobes_heart",
                                               label_ids=range(1, 7)), RandRotated(...)])
    """
    axes = sorted({check_spatial_axis(a, "flip_axes") for a in ensure_tuple(flip_axes)})
    out: list[Transform] = [RequireRASd(keys)]
    if LR_AXIS in axes:
        if lateral_pairs is None:
            raise ConfigError(
                "flip_axes: holds the left-right axis 0 (of RAS volumes), but lateral_pairs is null: "
                "give the label set's left / right table, or leave axis 0 out"
            )
        out.append(RandLateralFlipd(keys, lateral_pairs, label_keys, prob, label_ids))
    rest = [a for a in axes if a != LR_AXIS]
    if rest:
        out.append(RandFlipd(keys, prob=prob, spatial_axis=rest))
    return out
