"""Markdown tables, and the notes under the downstream experiments' tables.

Example:
    >>> print(markdown_table(["model", "PSNR"], [["SPADE", "24.50"], ["ours", "26.50"]]))
    | model | PSNR |
    | --- | --- |
    | SPADE | 24.50 |
    | ours | 26.50 |
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from anatosynth_components.experiments.statistics import p_value_text


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; every row must have as many cells as the header."""
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row {list(row)} has {len(row)} cells, the header {len(header)}")
    lines = [
        "| " + " | ".join(_cell(h) for h in header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def p_value_lines(
    stats: Mapping[str, Mapping[str, Any]], keys: Sequence[str], titles: Sequence[str], caption: str
) -> list[str]:
    """``["", caption, "", table]`` of the cells of ``stats`` that hold the comparisons ``keys`` (each
    an entry of :func:`~anatosynth_components.experiments.statistics.compare_arms`: the p-value
    against the baseline and against the best other arm), one column per key titled by ``titles``;
    ``[]`` when no cell has them.

    >>> test = {"p": 0.0123, "note": None}
    >>> stats = {"n4-acis": {"p_dice": {"vs_baseline": test, "vs_best_other": {**test, "arm": "augment"}}},
    ...          "n4-baseline": {}}
    >>> print("\\n".join(p_value_lines(stats, ["p_dice"], ["p (DCS greater)"], "p-values:")))
    <BLANKLINE>
    p-values:
    <BLANKLINE>
    | cell | p (DCS greater) |
    | --- | --- |
    | n4-acis | p = 0.0123 vs baseline; p = 0.0123 vs augment |
    """
    rows = [[k, *(p_value_text(v[key]) for key in keys)] for k, v in stats.items() if keys[0] in v]
    return ["", caption, "", markdown_table(["cell", *titles], rows)] if rows else []


def demo_data_lines(config: Mapping[str, Any], phantoms: str, paper_data: str) -> list[str]:
    """The note that the numbers come from the demo phantoms (``config["demo"]["kind"]``) when the
    experiment ran without a ``dataset_dir``; ``[]`` otherwise."""
    if config["dataset_dir"] is not None:
        return []
    kind = config["demo"]["kind"]
    return [
        "",
        f"Data: procedural {phantoms} (`anatosynth demo-data --kind {kind}`); a pipeline check, not the "
        f"paper's {paper_data} figures.",
    ]
