"""``LabelMapMetricHandler``: MONAI's ``IgniteMetricHandler`` that also hands the label map to the metric;
``baseline_metric_handlers``: the same metrics, scoring a baseline image instead of the model's.

The synthesis metrics score the slices whose label map holds foreground (the paper's protocol, see
:mod:`~anatosynth_components.metrics.slice_psnr`), so they need three volumes per subject: the
synthetic and real images and the label map they were synthesised from. MONAI's handler passes only
``(y_pred, y)`` (it refuses an output of any other length); this one also accepts
``(y_pred, y, label_map)`` and calls ``metric_fn(y_pred, y, label_map=label_map)``. Everything else
(``save_details``, ``engine.state.metric_details``, aggregation over ranks) is MONAI's.

In a bundle, with ``MaskToImageBatch`` (the label map is the network's input, ``"image"``)::

    "psnr_slice": {
        "_target_": "anatosynth_components.metrics.LabelMapMetricHandler",
        "metric_fn": "$anatosynth_components.metrics.SlicePSNRMetric(slice_axis=@slice_axis)",
        "output_transform": "$from_engine(['pred', 'label', 'image'])"
    }
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
from ignite.metrics.metric import reinit__is_reduced
from monai.handlers import IgniteMetricHandler, from_engine

from anatosynth_components.errors import DataError


class LabelMapMetricHandler(IgniteMetricHandler):
    """An ``IgniteMetricHandler`` whose ``output_transform`` may give ``(y_pred, y, label_map)``.

    ``y_pred``, ``y`` and ``label_map`` are batch-first tensors or lists of channel-first tensors
    (decollated engine output); lists are passed to the metric one item at a time, so each volume is
    scored with its own label map. A 2-tuple ``(y_pred, y)`` behaves as in MONAI.

    Args:
        metric_fn: a metric whose ``__call__`` accepts ``label_map=`` (``SlicePSNRMetric``,
            ``SliceSSIMMetric``, ``CoherenceMetric``, ``LPIPSMetric``, ``STLPIPSMetric``).
        output_transform: callable extracting ``(y_pred, y, label_map)`` from the engine output,
            e.g. ``from_engine(["pred", "label", "image"])``.
        save_details: keep the per-volume values in ``engine.state.metric_details[name]``.

    Example:
        >>> from anatosynth_components.metrics import SlicePSNRMetric
        >>> handler = LabelMapMetricHandler(SlicePSNRMetric(slice_axis=2),
        ...                                 output_transform=lambda x: x)
        >>> real, labels = torch.zeros(1, 1, 2, 2, 2), torch.ones(1, 1, 2, 2, 2)
        >>> handler.update((real + 0.1, real, labels))
        >>> round(float(handler.metric_fn.aggregate()), 4)
        20.0
    """

    def __init__(self, metric_fn, output_transform=lambda x: x, save_details: bool = True) -> None:
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)
        # Ignite unrolls only (y_pred, y) pairs of lists; this handler splits the lists itself
        self._skip_unrolling = True

    @reinit__is_reduced
    def update(self, output: Sequence[torch.Tensor]) -> None:
        if len(output) == 2:
            super().update(output)
            return
        if len(output) != 3:
            raise DataError(
                f"LabelMapMetricHandler: output_transform must give (y_pred, y) or (y_pred, y, label_map), "
                f"got {len(output)} items"
            )
        y_pred, y, label_map = output
        if isinstance(y_pred, torch.Tensor) and isinstance(y, torch.Tensor):
            self.metric_fn(y_pred, y, label_map=label_map)
            return
        if not (len(y_pred) == len(y) == len(label_map)):
            raise DataError(
                f"LabelMapMetricHandler: {len(y_pred)} predictions, {len(y)} targets and {len(label_map)} "
                "label maps; every volume needs its own"
            )
        for pred, target, labels in zip(y_pred, y, label_map, strict=True):
            self.metric_fn(pred[None], target[None], label_map=labels[None])


#: separates a baseline's name from the metric's in the handler names: ``"label_mean/psnr_slice"``
BASELINE_SEPARATOR = "/"


def baseline_metric_name(baseline: str, metric: str) -> str:
    """The handler name of ``metric`` scored on ``baseline``: ``"label_mean/psnr_slice"``."""
    return f"{baseline}{BASELINE_SEPARATOR}{metric}"


def baseline_metric_handlers(
    handlers: Mapping[str, IgniteMetricHandler | None],
    baseline: str,
    label_key: str = "label",
    label_map_key: str = "image",
) -> dict[str, IgniteMetricHandler]:
    """Copies of the model's metric handlers that score the engine output ``baseline`` instead of
    ``"pred"``, named ``"<baseline>/<metric>"``, with ``save_details=True``.

    Each copy gets a deep copy of the handler's metric (same class and settings, its own buffers), so
    the baseline is scored exactly as the model is. A :class:`LabelMapMetricHandler` is copied with
    ``from_engine([baseline, label_key, label_map_key])`` (foreground slices), any other
    ``IgniteMetricHandler`` with ``from_engine([baseline, label_key])``. ``None`` entries (disabled
    handlers) are skipped.

    Example (``evaluate.json``)::

        "validate#evaluator#additional_metrics": "$dict(@validate#additional_metrics,
            **anatosynth_components.metrics.baseline_metric_handlers(
                dict(@validate#key_metric, **@validate#additional_metrics), 'label_mean'))"
    """
    out: dict[str, IgniteMetricHandler] = {}
    for name, handler in handlers.items():
        if handler is None:
            continue
        metric = copy.deepcopy(handler.metric_fn)
        metric.reset()
        if isinstance(handler, LabelMapMetricHandler):
            out[baseline_metric_name(baseline, name)] = LabelMapMetricHandler(
                metric, output_transform=from_engine([baseline, label_key, label_map_key]), save_details=True
            )
        else:
            out[baseline_metric_name(baseline, name)] = IgniteMetricHandler(
                metric_fn=metric, output_transform=from_engine([baseline, label_key]), save_details=True
            )
    return out
