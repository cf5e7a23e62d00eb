"""How sets of label ids are written in error messages: exact, and short however many there are.

A T1 image given as a label map holds a thousand or more distinct "ids"; a message listing them all
buries the problem.  :func:`id_sample` shows the first few and the count, :func:`id_ranges` writes a
set exactly as runs of consecutive ids.

>>> id_ranges({0, 1, 2, 3, 5, 7, 8})
'0..3, 5, 7..8'
>>> id_sample([36, 37, 38])
'[36, 37, 38]'
>>> id_sample(range(36, 1325))
'[36, 37, 38, 39, 40, 41, 42, 43, 44, 45] and 1279 more (1289 ids)'
"""

from __future__ import annotations

from collections.abc import Iterable

#: how many ids a message shows before it gives only the count
MAX_SHOWN = 10


def id_ranges(ids: Iterable[int]) -> str:
    """``ids`` as sorted runs of consecutive ids, ``"a..b"`` for a run of two or more; ``"none"``
    for an empty set."""
    values = sorted({int(i) for i in ids})
    if not values:
        return "none"
    runs: list[list[int]] = [[values[0], values[0]]]
    for v in values[1:]:
        if v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in runs)


def id_sample(ids: Iterable[int], limit: int = MAX_SHOWN) -> str:
    """The first ``limit`` of the sorted ``ids`` in brackets, then how many more and the total when
    there are more than ``limit``."""
    values = sorted({int(i) for i in ids})
    shown = "[" + ", ".join(map(str, values[:limit])) + "]"
    if len(values) <= limit:
        return shown
    return f"{shown} and {len(values) - limit} more ({len(values)} ids)"
