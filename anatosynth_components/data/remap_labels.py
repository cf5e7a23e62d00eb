"""``RemapLabelsd``: translate label maps between conventions with a :class:`LabelTable`.

MONAI's ``MapLabelValued`` maps ids pair by pair; it neither reports ids missing from the
table nor fills ids that have no class of their own, both of which the label tables need.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform
from scipy import ndimage

from anatosynth_components.data.label_ids import id_ranges, id_sample
from anatosynth_components.data.label_tables import LabelTable, get_label_table
from anatosynth_components.data.validate_volume import source_name
from anatosynth_components.errors import DataError


def remap_labels(label: np.ndarray, table: LabelTable, name: str = "label") -> np.ndarray:
    """Apply ``table`` to an integer label array of any shape.

    Voxels whose id is in ``table.fill`` take the target label of the nearest donor voxel: one
    with an ordinary id whose target is among the fill entry's donor ids (any non-background
    target when that list is empty).  Distance is Euclidean in voxels; ties are broken by SciPy's
    distance transform order.

    Raises:
        DataError: the array holds non-integer values or ids that the table does not know.
    """
    values = np.unique(label)
    if not np.all(np.mod(values, 1) == 0):
        raise DataError(
            f"{name}: label map has non-integer values, e.g. {values[np.mod(values, 1) != 0][:5]}"
        )
    values = values.astype(np.int64)
    unknown = set(values.tolist()) - table.known
    if unknown:
        raise DataError(
            f"{name}: label ids {id_sample(unknown)} are not in label table {table.name!r} "
            f"(it knows {id_ranges(table.known)})"
        )
    lut_size = int(values.max()) + 1 if values.size else 1
    lut = np.zeros(lut_size, dtype=np.int64)
    for src, dst in table.mapping.items():
        if src < lut_size:
            lut[src] = dst
    ids = label.astype(np.int64)
    out = lut[ids]
    for donors_ids, sources in _fill_groups(table).items():
        to_fill = np.isin(ids, sources)
        if not to_fill.any():
            continue
        donors = (np.isin(out, donors_ids) if donors_ids else out > 0) & ~np.isin(ids, list(table.fill))
        if not donors.any():
            raise DataError(f"{name}: ids {sources} must be filled from labels {list(donors_ids) or 'any'}, "
                            "but no voxel has one")  # fmt: skip
        nearest = ndimage.distance_transform_edt(~donors, return_distances=False, return_indices=True)
        out = np.where(to_fill, out[tuple(nearest)], out)
    return out


def _fill_groups(table: LabelTable) -> dict[tuple[int, ...], list[int]]:
    """Fill ids grouped by their donor ids, so each group costs one distance transform."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for src, donors in table.fill.items():
        groups.setdefault(tuple(sorted(donors)), []).append(src)
    return groups


class RemapLabelsd(MapTransform):
    """Remap the label maps under ``keys`` with a label table.

    Args:
        keys: keys of the label maps (channel-first tensors or arrays).
        table: a built-in table name (``"aseg_to_oasis35"``, ``"totalseg_to_abdomenctct"``,
            ``"totalseg_to_lobes_heart"``), a :class:`LabelTable`, or a config mapping
            ``{"mapping": {"2": 1, ...}, "fill": [77]}``; ``None`` passes the labels through
            unchanged (for data already in the target label set).

    Example::

        RemapLabelsd("label", "aseg_to_oasis35")({"label": aseg})["label"]   # ids 0..35
    """

    def __init__(
        self,
        keys: KeysCollection,
        table: str | LabelTable | Mapping | None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.table = None if table is None else get_label_table(table)
        if self.table is not None:
            self.dtype = np.uint8 if max(self.table.mapping.values(), default=0) <= 255 else np.int16

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if self.table is None:
            return d
        for key in self.key_iterator(d):
            x = d[key]
            name = source_name(x, str(key))
            array = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
            out = remap_labels(array, self.table, name).astype(self.dtype)
            if isinstance(x, MetaTensor):
                d[key] = MetaTensor(
                    torch.from_numpy(out), meta=x.meta, applied_operations=x.applied_operations
                )
            elif isinstance(x, torch.Tensor):
                d[key] = torch.from_numpy(out)
            else:
                d[key] = out
        return d
