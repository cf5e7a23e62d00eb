"""Plots of experiment results, drawn with matplotlib's Agg backend (no display needed), written
atomically as PNG."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from anatosynth_components.atomic import atomic_path  # noqa: E402


def _save(fig: plt.Figure, path: str | os.PathLike) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def _means_stds(values: Sequence[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) pairs -> float arrays of the means and of the stds (a NaN std drawn as 0)."""
    means = np.array([v[0] for v in values], dtype=float)
    return means, np.nan_to_num(np.array([v[1] for v in values], dtype=float))


def _set_ylim(ax: plt.Axes, low: float, high: float, margin: float) -> None:
    """Y range ``[low, high]`` widened by ``margin`` of its height (or of ``high`` when flat)."""
    pad = margin * (high - low) if high > low else 0.1 * max(abs(high), 1e-3)
    ax.set_ylim(low - pad, high + pad)


def _finish(fig: plt.Figure, title: str, path: str | os.PathLike) -> None:
    if title:
        fig.suptitle(title, fontsize=11)
    _save(fig, path)


def bar_panels(
    path: str | os.PathLike,
    groups: Sequence[str],
    panels: Mapping[str, Sequence[tuple[float, float]]],
    title: str = "",
) -> None:
    """One bar chart per panel (metric): a bar per group with its mean and a std error bar.

    Args:
        path: output PNG.
        groups: bar labels (e.g. ablation variants), shared by every panel.
        panels: panel title -> one (mean, std) per group; NaN means leave the bar out.
        title: figure title.
    """
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(3.2 * max(1, len(panels)), 3.6), squeeze=False)
    x = np.arange(len(groups))
    colors = plt.get_cmap("viridis")(np.linspace(0.15, 0.85, max(1, len(groups))))
    for ax, (name, values) in zip(axes[0], panels.items(), strict=False):
        means, stds = _means_stds(values)
        ok = np.isfinite(means)
        ax.bar(x[ok], means[ok], yerr=stds[ok], color=colors[ok], capsize=3)
        ax.set_xticks(x, groups, rotation=30, ha="right", fontsize=8)
        ax.set_title(name, fontsize=10)
        if ok.any():
            _set_ylim(ax, np.nanmin(means[ok] - stds[ok]), np.nanmax(means[ok] + stds[ok]), 0.15)
    _finish(fig, title, path)


def line_panels(
    path: str | os.PathLike,
    x_values: Sequence[float],
    panels: Mapping[str, Mapping[str, Sequence[tuple[float, float]]]],
    x_label: str,
    title: str = "",
) -> None:
    """One line chart per panel: a line (mean with a std band) per series over ``x_values``.

    Args:
        panels: panel title -> series name -> one (mean, std) per x value (NaN: no point).
    """
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(3.8 * max(1, len(panels)), 3.4), squeeze=False)
    x = np.asarray(x_values, dtype=float)
    for ax, (name, series) in zip(axes[0], panels.items(), strict=False):
        for label, values in series.items():
            means, stds = _means_stds(values)
            ax.plot(x, means, marker="o", label=label)
            ax.fill_between(x, means - stds, means + stds, alpha=0.15)
        ax.set_xscale("log", base=2) if len(x) > 1 and np.all(x > 0) else None
        ax.set_xticks(x, [f"{v:g}" for v in x])
        ax.set_xlabel(x_label)
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=7)
    _finish(fig, title, path)


def grouped_bar_panels(
    path: str | os.PathLike,
    groups: Sequence[str],
    panels: Mapping[str, Mapping[str, Sequence[tuple[float, float]]]],
    title: str = "",
) -> None:
    """One grouped bar chart per panel: for every group a bar per series (mean, std error bar).

    Args:
        panels: panel title -> series name (e.g. an arm) -> one (mean, std) per group (NaN: no bar).
    """
    n_panels = max(1, len(panels))
    fig, axes = plt.subplots(
        n_panels, 1, figsize=(max(6.0, 0.7 * len(groups) + 2), 3.0 * n_panels), squeeze=False
    )
    x = np.arange(len(groups))
    for ax, (name, series) in zip(axes[:, 0], panels.items(), strict=False):
        width = 0.8 / max(1, len(series))
        lows, highs = [], []
        for k, (label, values) in enumerate(series.items()):
            means, stds = _means_stds(values)
            ok = np.isfinite(means)
            ax.bar(
                x[ok] + (k - (len(series) - 1) / 2) * width,
                means[ok],
                width,
                yerr=stds[ok],
                capsize=2,
                label=label,
            )
            if ok.any():
                lows.append(np.min(means[ok] - stds[ok]))
                highs.append(np.max(means[ok] + stds[ok]))
        ax.set_xticks(x, groups, rotation=30, ha="right", fontsize=8)
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=7)
        if lows:
            _set_ylim(ax, min(lows), max(highs), 0.1)
    _finish(fig, title, path)
