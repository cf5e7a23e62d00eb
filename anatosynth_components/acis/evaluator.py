"""``AcisEvaluator``: phase-1 reconstruction and annotation quality of the ACIS generators on real data.

For each real (image ``x``, annotation ``y``, pseudo-mask ``pm``) it computes the annotation generator's
labelling of the real pseudo-mask, ``argmax G_ann(pm)``, and the image generator's reconstruction from
the real pair, ``G_img(pm, onehot(y))`` (the pairing phase 1 trains on), so that MONAI metric handlers
can score image PSNR / SSIM against ``x`` and annotation Dice against ``y``.  MONAI's
``SupervisedEvaluator`` runs one network on one input; this one calls two parts of an
:class:`AcisPairGenerator` on different inputs, hence a small ``Evaluator`` subclass.

``engine.state.output`` (decollated per item by MONAI): ``image`` (real), ``label`` (real ids),
``pseudo_mask``, ``pred`` (reconstruction in [0, 1]), ``pred_label`` (ids), ``pred_onehot`` and
``label_onehot`` (C, *S) for ``DiceMetric``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from ignite.engine import Engine
from monai.engines import Evaluator
from monai.networks.utils import eval_mode
from monai.utils import convert_to_tensor

from anatosynth_components.acis.one_hot import hard_one_hot, label_one_hot
from anatosynth_components.acis.pair_generator import AcisPairGenerator
from anatosynth_components.engines.modules import unwrap


class AcisEvaluator(Evaluator):
    """Evaluate an :class:`AcisPairGenerator` on batches ``{"image", "label", "pseudo_mask"}``.

    Args:
        device, val_data_loader: as MONAI's ``Evaluator``.
        network: the pair generator (or a DDP wrapper of it).
        kwargs: the other arguments of MONAI's ``Evaluator`` (``key_val_metric``,
            ``additional_metrics``, ``val_handlers``, ``postprocessing``, ``epoch_length``, ...).

    Example::

        evaluator = AcisEvaluator("cpu", loader, net, key_val_metric={"val_psnr": IgniteMetricHandler(
            PSNRMetric(1.0), output_transform=from_engine(["pred", "image"]))})
        evaluator.run()
    """

    def __init__(
        self, device: torch.device | str, val_data_loader: Iterable, network: AcisPairGenerator, **kwargs: Any
    ) -> None:
        super().__init__(device=device, val_data_loader=val_data_loader, **kwargs)
        self.network = network

    def _iteration(self, engine: Engine, batchdata: dict[str, Any]) -> dict[str, Any]:
        move = {"device": engine.state.device, "non_blocking": engine.non_blocking}
        image, labels, pm = (
            convert_to_tensor(batchdata[key], track_meta=False).to(dtype=dtype, **move)
            for key, dtype in (
                ("image", torch.float32),
                ("label", torch.long),
                ("pseudo_mask", torch.float32),
            )
        )
        net = unwrap(self.network)
        with eval_mode(net), torch.no_grad():
            logits = net.annotation_generator(pm)
            onehot = label_one_hot(labels, net.num_classes)
            pred = net.image_generator(torch.cat([pm, onehot], dim=1))
        return {
            "image": image,
            "label": labels.float(),
            "pseudo_mask": pm,
            "pred": pred,
            "pred_label": logits.argmax(dim=1, keepdim=True).float(),
            "pred_onehot": hard_one_hot(logits),
            "label_onehot": onehot,
        }
