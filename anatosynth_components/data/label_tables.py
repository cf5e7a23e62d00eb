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

Left-right counterparts of each label set (:class:`LateralPairs`, :data:`LATERAL_PAIRS`, resolved by
:func:`get_lateral_pairs`) tell a left-right flip which ids to swap
(:class:`~anatosynth_components.data.lateral_flip.RandLateralFlipd`):

- ``oasis35``: every ``Left-*`` structure and its ``Right-*`` twin (16 pairs; 3rd and 4th ventricle
  and brain stem are midline).  The brain is close to mirror-symmetric, so a flipped, relabelled
  brain is a plausible brain.
- ``abdomenctct``: left / right kidney (3 / 2) and left / right adrenal gland (13 / 12).  Every
  other organ is unpaired: a flipped abdomen has its liver on the left and its spleen on the right
  (situs inversus).  Image and labels still agree, and each kidney and adrenal carries the name of
  the side it now lies on, but the anatomy is the rare mirror form.
- ``lobes_heart``: *cannot be mirrored*.  The left lung has two lobes (upper, lower), the right lung
  three (upper, middle, lower); the lingula of the left upper lobe is the homologue of the right
  middle lobe.  A mirrored left lung would be a two-lobed right lung and a mirrored right lung a
  three-lobed left lung: no relabelling of ids 1, 3 and 4 gives a lobe map a real chest could have,
  and the heart would move to the right.  Only the lower lobes (2 / 5) correspond one to one.  The
  table records that, and a left-right flip refuses it (flip along other axes only).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from anatosynth_components.data.label_ids import id_ranges
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


@dataclass(frozen=True)
class LateralPairs:
    """Left-right counterparts in one label set, for flips along the left-right axis.

    A left-right mirror of a label map moves every structure to the other side; a lateralised
    structure then lies where its counterpart belongs and must take the counterpart's id (the left
    kidney, mirrored, is where the right kidney is: it becomes id "right kidney").  Midline and
    unpaired structures keep their ids.

    Args:
        name: the label set (``oasis35``, ``abdomenctct``, ``lobes_heart``) or ``"config"``.
        pairs: left id -> right id.
        labels: names of the set's ids (for messages; may be empty).
        unpaired: lateralised ids with no one-to-one counterpart -> why.  A non-empty ``unpaired``
            means the label set cannot be mirrored (:attr:`mirrorable` is False).

    Example::

        >>> LATERAL_PAIRS["abdomenctct"].swap
        {3: 2, 13: 12, 2: 3, 12: 13}
        >>> LATERAL_PAIRS["lobes_heart"].mirrorable
        False
    """

    name: str
    pairs: Mapping[int, int]
    labels: Mapping[int, str] = field(default_factory=dict)
    unpaired: Mapping[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_lateral_pairs(self.pairs, f"lateral pair table {self.name!r}")
        both = set(self.swap) & set(self.unpaired)
        if both:
            raise ConfigError(
                f"lateral pair table {self.name!r}: ids {sorted(both)} are both paired and unpaired"
            )
        if self.labels:
            unknown = (set(self.swap) | set(self.unpaired)) - set(self.labels)
            if unknown:
                raise ConfigError(
                    f"lateral pair table {self.name!r}: ids {sorted(unknown)} are not in its label set"
                )

    @property
    def swap(self) -> dict[int, int]:
        """Both directions: left -> right and right -> left."""
        return {
            **{int(a): int(b) for a, b in self.pairs.items()},
            **{int(b): int(a) for a, b in self.pairs.items()},
        }

    @property
    def mirrorable(self) -> bool:
        """Whether a left-right mirror of a map in this label set can be relabelled into a valid map."""
        return not self.unpaired

    def name_of(self, label: int) -> str:
        return f"{label} ({self.labels[label]})" if label in self.labels else str(label)

    def refusal(self) -> str:
        """Why this label set cannot be mirrored ("" when it can)."""
        return "; ".join(f"{self.name_of(i)}: {why}" for i, why in sorted(self.unpaired.items()))


def check_lateral_pairs(
    pairs: Mapping[Any, Any], key: str = "lateral_pairs", label_ids: Iterable[int] | None = None
) -> dict[int, int]:
    """``pairs`` (id -> counterpart id; JSON keys may be strings; a pair may be listed in both
    directions) checked and normalised to one entry per pair, first-listed side as the key.

    A ``ConfigError`` naming ``key`` for: a non-integer or non-positive id, an id paired with
    itself, an id paired with two different ids, and (with ``label_ids``) an id outside the label set.

    Example::

        >>> check_lateral_pairs({"3": 2, "2": 3, "13": 12})
        {3: 2, 13: 12}
        >>> check_lateral_pairs({1: 20, 20: 2})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        anatosynth_components.errors.ConfigError: lateral_pairs: id 20 is paired with both 1 and 2 ...
    """
    if not isinstance(pairs, Mapping):
        raise ConfigError(
            f'{key} must map left ids to right ids, e.g. {{"3": 2}}; got {type(pairs).__name__}'
        )
    partner: dict[int, int] = {}
    out: dict[int, int] = {}
    for raw_a, raw_b in pairs.items():
        try:
            if isinstance(raw_a, bool) or isinstance(raw_b, bool):
                raise ValueError
            a, b = int(str(raw_a)), int(str(raw_b))
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: entries must be integer label ids, got {raw_a!r}: {raw_b!r}") from None
        if a < 1 or b < 1:
            raise ConfigError(f"{key}: {a}: {b}: ids must be >= 1 (0 is the background, which has no side)")
        if a == b:
            raise ConfigError(f"{key}: id {a} is paired with itself; midline structures need no entry")
        for x, y in ((a, b), (b, a)):
            if partner.get(x, y) != y:
                raise ConfigError(
                    f"{key}: id {x} is paired with both {partner[x]} and {y} (each id has one counterpart)"
                )
        if a not in partner:
            out[a] = b
        partner[a], partner[b] = b, a
    if label_ids is not None:
        known = {int(i) for i in label_ids}
        unknown = set(partner) - known
        if unknown:
            raise ConfigError(
                f"{key}: ids {sorted(unknown)} are not label ids of this label set ({id_ranges(known)})"
            )
    return out


#: Learn2Reg OASIS: every ``Left-*`` id -> its ``Right-*`` twin (3rd / 4th ventricle, brain stem: midline).
OASIS35_LATERAL = LateralPairs(
    name="oasis35",
    pairs={**{i: i + 19 for i in range(1, 11)}, **{i: i + 16 for i in range(14, 20)}},
    labels=OASIS35_LABELS,
)

#: Learn2Reg AbdomenCTCT: left / right kidney and adrenal gland; the other organs are unpaired.
ABDOMENCTCT_LATERAL = LateralPairs(name="abdomenctct", pairs={3: 2, 13: 12}, labels=ABDOMENCTCT_LABELS)

#: Lung lobes + heart: not mirrorable (two left lobes, three right lobes); only the lower lobes pair.
LOBES_HEART_LATERAL = LateralPairs(
    name="lobes_heart",
    pairs={2: 5},
    labels=LOBES_HEART_LABELS,
    unpaired={
        1: "holds the lingula, the homologue of the right middle lobe, so it matches the right upper "
        "and middle lobes together, not one lobe",
        3: "its left counterpart is only part of the left upper lobe (without the lingula)",
        4: "the left lung has no middle lobe (its homologue, the lingula, is part of the left upper lobe)",
    },
)

LATERAL_PAIRS: dict[str, LateralPairs] = {
    t.name: t for t in (OASIS35_LATERAL, ABDOMENCTCT_LATERAL, LOBES_HEART_LATERAL)
}


def get_lateral_pairs(
    spec: str | LateralPairs | Mapping | None,
    key: str = "lateral_pairs",
    label_ids: Iterable[int] | None = None,
) -> LateralPairs | None:
    """Resolve ``spec``: a label set name of :data:`LATERAL_PAIRS`, a :class:`LateralPairs`, a config
    mapping ``{"3": 2, "13": 12}`` (left -> right; both directions may be listed), or None (None).

    With ``label_ids`` (e.g. ``range(1, num_classes)``) every id of the table must be one of them:
    a table of another label set is a ``ConfigError`` naming ``key``.

    Example::

        get_lateral_pairs("abdomenctct", label_ids=range(1, 14)).swap   # {3: 2, 13: 12, 2: 3, 12: 13}
        get_lateral_pairs({"3": 2}).pairs                               # {3: 2}
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec not in LATERAL_PAIRS:
            raise ConfigError(
                f"{key}: unknown lateral pair table {spec!r}; built-in tables: {sorted(LATERAL_PAIRS)}"
            )
        table = LATERAL_PAIRS[spec]
    elif isinstance(spec, LateralPairs):
        table = spec
    elif isinstance(spec, Mapping):
        table = LateralPairs(name="config", pairs=check_lateral_pairs(spec, key, label_ids))
    else:
        raise ConfigError(f"{key} must be a table name, a mapping of ids or null, got {type(spec).__name__}")
    if label_ids is not None:
        known = {int(i) for i in label_ids}
        unknown = (set(table.swap) | set(table.unpaired)) - known
        if unknown:
            raise ConfigError(
                f"{key}: table {table.name!r} has ids {sorted(unknown)} that are not label ids of this "
                f"label set ({id_ranges(known)}); is it the table of another label set?"
            )
    return table
