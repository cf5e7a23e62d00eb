"""Label sets of the supported datasets and remapping tables between label conventions.

A :class:`LabelTable` maps source ids to target ids.  Ids listed in ``fill`` have no class of
their own in the target set but lie inside one (for example the corpus callosum inside the
cerebral white matter); :class:`~anatosynth_components.data.remap_labels.RemapLabelsd` gives
each such voxel the target label of its nearest "donor" voxel: a voxel with an ordinary id whose
target is one of the ids listed for it (any non-background target when the list is empty).  Ids in neither
``mapping`` nor ``fill`` are unknown and raise an error naming the file.

Built-in tables (see each constant for the exact ids):

- ``aseg_to_oasis35``: FreeSurfer aseg -> the 35 labels of Learn2Reg OASIS / neurite-oasis ``seg35``.
- ``totalseg_to_abdomenctct``: TotalSegmentator v2 ("total" task) -> the 13 organs of Learn2Reg AbdomenCTCT.
- ``totalseg_to_lobes_heart``: TotalSegmentator v2 -> 5 lung lobes + heart (the ACIS TLobes label set).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from anatosynth_components.errors import ConfigError

#: Learn2Reg OASIS / neurite-oasis ``seg35_labels.txt`` (FreeSurfer names).
OASIS35_LABELS: dict[int, str] = {
    1: "Left-Cerebral-White-Matter",
    2: "Left-Cerebral-Cortex",
    3: "Left-Lateral-Ventricle",
    4: "Left-Inf-Lat-Vent",
    5: "Left-Cerebellum-White-Matter",
    6: "Left-Cerebellum-Cortex",
    7: "Left-Thalamus",
    8: "Left-Caudate",
    9: "Left-Putamen",
    10: "Left-Pallidum",
    11: "3rd-Ventricle",
    12: "4th-Ventricle",
    13: "Brain-Stem",
    14: "Left-Hippocampus",
    15: "Left-Amygdala",
    16: "Left-Accumbens",
    17: "Left-VentralDC",
    18: "Left-vessel",
    19: "Left-choroid-plexus",
    20: "Right-Cerebral-White-Matter",
    21: "Right-Cerebral-Cortex",
    22: "Right-Lateral-Ventricle",
    23: "Right-Inf-Lat-Vent",
    24: "Right-Cerebellum-White-Matter",
    25: "Right-Cerebellum-Cortex",
    26: "Right-Thalamus",
    27: "Right-Caudate",
    28: "Right-Putamen",
    29: "Right-Pallidum",
    30: "Right-Hippocampus",
    31: "Right-Amygdala",
    32: "Right-Accumbens",
    33: "Right-VentralDC",
    34: "Right-vessel",
    35: "Right-choroid-plexus",
}

#: Learn2Reg AbdomenCTCT (the BTCV 13-organ order).
ABDOMENCTCT_LABELS: dict[int, str] = {
    1: "spleen",
    2: "right kidney",
    3: "left kidney",
    4: "gall bladder",
    5: "esophagus",
    6: "liver",
    7: "stomach",
    8: "aorta",
    9: "inferior vena cava",
    10: "portal and splenic vein",
    11: "pancreas",
    12: "right adrenal gland",
    13: "left adrenal gland",
}

#: ACIS TLobes label set: the five lung lobes and the heart.
LOBES_HEART_LABELS: dict[int, str] = {
    1: "left upper lobe",
    2: "left lower lobe",
    3: "right upper lobe",
    4: "right middle lobe",
    5: "right lower lobe",
    6: "heart",
}

LABEL_SETS: dict[str, dict[int, str]] = {
    "oasis35": OASIS35_LABELS,
    "abdomenctct": ABDOMENCTCT_LABELS,
    "lobes_heart": LOBES_HEART_LABELS,
}


@dataclass(frozen=True)
class LabelTable:
    """A remapping from one label convention to another.

    Args:
        name: table name.
        mapping: source id -> target id (0 = background).
        fill: source id -> allowed donor target ids (empty: any non-background target); such
            voxels take the target label of the nearest donor voxel.
        target: names of the target ids (without background).
    """

    name: str
    mapping: Mapping[int, int]
    fill: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    target: Mapping[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        both = set(self.mapping) & set(self.fill)
        if both:
            raise ConfigError(f"label table {self.name!r}: ids {sorted(both)} are both mapped and filled")
        bad = {int(t) for t in self.mapping.values()} - set(self.target) - {0}
        if self.target and bad:
            raise ConfigError(f"label table {self.name!r}: target ids {sorted(bad)} are not in its label set")

    @property
    def known(self) -> frozenset[int]:
        """Every source id the table accepts."""
        return frozenset(self.mapping) | frozenset(self.fill)


def _with_background(mapping: dict[int, int], max_id: int) -> dict[int, int]:
    """``mapping`` plus every other id in 0..max_id mapped to background."""
    return {i: mapping.get(i, 0) for i in range(max_id + 1)}


# FreeSurfer aseg -> OASIS-35.  Ids 9/48 (Thalamus, FreeSurfer < 6) join 10/49 (Thalamus-Proper);
# left / right WM hypointensities (78/79) join the cerebral white matter of their side.
# CSF (24), 5th ventricle (72) and optic chiasm (85) lie outside every OASIS-35 structure and
# become background.  The corpus callosum (251-255) and unlateralised WM hypointensities (77)
# lie inside the cerebral white matter: they take the left or right white matter, whichever is
# nearer.  Non-WM hypointensities (80-82) take their nearest labelled neighbour.
ASEG_TO_OASIS35 = LabelTable(
    name="aseg_to_oasis35",
    mapping={
        0: 0,
        2: 1,
        3: 2,
        4: 3,
        5: 4,
        7: 5,
        8: 6,
        9: 7,
        10: 7,
        11: 8,
        12: 9,
        13: 10,
        14: 11,
        15: 12,
        16: 13,
        17: 14,
        18: 15,
        26: 16,
        28: 17,
        30: 18,
        31: 19,
        41: 20,
        42: 21,
        43: 22,
        44: 23,
        46: 24,
        47: 25,
        48: 26,
        49: 26,
        50: 27,
        51: 28,
        52: 29,
        53: 30,
        54: 31,
        58: 32,
        60: 33,
        62: 34,
        63: 35,
        78: 1,
        79: 20,
        24: 0,
        72: 0,
        85: 0,
    },  # fmt: skip
    fill={**dict.fromkeys((77, 251, 252, 253, 254, 255), (1, 20)), **dict.fromkeys((80, 81, 82), ())},
    target=OASIS35_LABELS,
)

#: Highest class id of TotalSegmentator v2's "total" task (117, costal cartilages).
TOTALSEG_MAX_ID = 117

TOTALSEG_TO_ABDOMENCTCT = LabelTable(
    name="totalseg_to_abdomenctct",
    mapping=_with_background(
        {1: 1, 2: 2, 3: 3, 4: 4, 15: 5, 5: 6, 6: 7, 52: 8, 63: 9, 64: 10, 7: 11, 8: 12, 9: 13},
        TOTALSEG_MAX_ID,
    ),
    target=ABDOMENCTCT_LABELS,
)

TOTALSEG_TO_LOBES_HEART = LabelTable(
    name="totalseg_to_lobes_heart",
    mapping=_with_background({10: 1, 11: 2, 12: 3, 13: 4, 14: 5, 51: 6}, TOTALSEG_MAX_ID),
    target=LOBES_HEART_LABELS,
)

LABEL_TABLES: dict[str, LabelTable] = {
    t.name: t for t in (ASEG_TO_OASIS35, TOTALSEG_TO_ABDOMENCTCT, TOTALSEG_TO_LOBES_HEART)
}


def get_label_table(table: str | LabelTable | Mapping) -> LabelTable:
    """Resolve ``table``: a built-in name, a :class:`LabelTable`, or a config mapping.

    A config mapping is either ``{"1": 2, ...}`` (source -> target; JSON keys are strings) or
    ``{"mapping": {...}, "fill": [7, 8] or {"7": [1, 2]}, "name": "..."}``.
    """
    if isinstance(table, LabelTable):
        return table
    if isinstance(table, str):
        if table not in LABEL_TABLES:
            raise ConfigError(f"unknown label table {table!r}; built-in tables: {sorted(LABEL_TABLES)}")
        return LABEL_TABLES[table]
    if not isinstance(table, Mapping):
        raise ConfigError(f"label table must be a name or a mapping, got {type(table).__name__}")
    spec = table if "mapping" in table else {"mapping": table}
    try:
        mapping = {int(k): int(v) for k, v in spec["mapping"].items()}
        raw_fill = spec.get("fill", ())
        if isinstance(raw_fill, Mapping):
            fill = {int(k): tuple(int(t) for t in v) for k, v in raw_fill.items()}
        else:
            fill = {int(k): () for k in raw_fill}
    except (TypeError, ValueError) as err:
        raise ConfigError(f"label table entries must be integer ids: {err}") from err
    return LabelTable(name=str(spec.get("name", "config")), mapping=mapping, fill=fill)
