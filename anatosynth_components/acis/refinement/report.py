"""``RefinementReport``: diversity and Eq. 3 uncertainty of a fixed set of samples, before and after the
ACIS refinement, written to ``models/refinement_report.json`` and logged.

The refinement rewards each sample for registering well to a real item (Eq. 3), never for differing
from the other samples, so it can trade diversity for registrability (see the collapse note of
:mod:`~anatosynth_components.acis.refinement.refiner`).  This handler makes that visible: when the
refiner starts (``Events.STARTED``) and when it has finished (``Events.COMPLETED``) it

1. synthesises ``num_samples`` pairs from the latents of seeds ``seed, ..., seed + K - 1`` (the same
   latents both times, drawn as ``inference.json`` draws them, so they are the pairs sampling writes for
   those seeds) with the deterministic chain (:meth:`GeneratorPolicy.synthesize`: generators in eval
   mode, no exploration noise);
2. scores their diversity, the mean pairwise MS-SSIM of the K images
   (:func:`~anatosynth_components.metrics.diversity.mean_pairwise_ms_ssim`; 1 = all identical, lower =
   more diverse);
3. measures Eq. 3 of sample k against real item k with the refiner's frozen registration network
   (``U_image``, ``U_annotation``, means over the K pairs).  The K real items are the first K of the
   refinement data (``data``, default the refiner's loader), drawn once at the start and kept for the
   end; the draw and the MC-dropout passes run under a private torch random state seeded with ``seed``,
   so before and after see the same items and the same dropout masks, and torch's random stream of the
   training is untouched (the data transforms' own random states do advance by the draw).

The report (atomically written; ``after`` is ``null`` until the refinement ends)::

    {"samples": 8, "seeds": [0, ..., 7], "num_passes": 10,
     "ms_ssim": {"kernel_size": 11, "levels": 5, "weights": [...]},
     "before": {"iteration": 0, "diversity_ms_ssim": 0.41, "uncertainty_image": 0.021,
                "uncertainty_annotation": 0.38},
     "after": {"iteration": 2000, ...}, "change": {"diversity_ms_ssim": 0.02, ...},
     "collapse_warning_rise": 0.1, "possible_collapse": false}

and the log line ``refinement: diversity (mean pairwise MS-SSIM, lower = more diverse) 0.41 -> 0.43;
U_image 0.021 -> 0.015; U_annotation 0.38 -> 0.3``.  When the MS-SSIM rose by more than
``collapse_warning_rise`` (default 0.1 on the 0..1 scale: independent samples of a trained generator sit
well below 1, so a rise of 0.1 is a visible share of their dissimilarity lost) a WARNING names the
possible collapse.  On ``resume`` the ``before`` of an existing report with the same settings is kept
(the draw is seeded and, in a fresh bundle process, MONAI's ``DataLoader`` seeds the transforms from
the global seed, so it saw the same real items); otherwise ``before`` is measured at the resumed
iteration, which its ``iteration`` says.

Example (refine.json)::

    {"_target_": "anatosynth_components.acis.refinement.RefinementReport",
     "report_file": "$@ckpt_dir + '/refinement_report.json'", "num_samples": "@report_samples",
     "seed": "@seed", "collapse_warning_rise": "@collapse_warning_rise"}
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from monai.networks.utils import eval_mode

from anatosynth_components.acis.one_hot import label_one_hot
from anatosynth_components.acis.pseudomask_generator import sample_latent
from anatosynth_components.acis.refinement.policy import GeneratorPolicy
from anatosynth_components.acis.refinement.real_batch import real_batch
from anatosynth_components.atomic import write_json
from anatosynth_components.checks import check_positive_float, check_positive_int
from anatosynth_components.engines.modules import unwrap
from anatosynth_components.errors import ConfigError, DataError
from anatosynth_components.metrics.diversity import (
    mean_pairwise_ms_ssim,
    ms_ssim_levels,
    ms_ssim_weights,
)

#: the measured quantities, in the order of the log line
QUANTITIES = ("diversity_ms_ssim", "uncertainty_image", "uncertainty_annotation")
_LABELS = {
    "diversity_ms_ssim": "diversity (mean pairwise MS-SSIM, lower = more diverse)",
    "uncertainty_image": "U_image",
    "uncertainty_annotation": "U_annotation",
}


@contextmanager
def seeded(device: torch.device | str, seed: int) -> Iterator[None]:
    """Run the block with torch's random state seeded with ``seed`` (CPU, and ``device`` when it is a
    GPU), restoring the previous state afterwards."""
    device = torch.device(device)
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        yield


class RefinementReport:
    """Diversity and Eq. 3 uncertainty of ``num_samples`` fixed samples before and after refinement.

    Args:
        report_file: where the JSON report goes (``models/refinement_report.json``).
        num_samples: K >= 2, the samples (and real items) measured; in the bundles ``report_samples``.
        seed: the first latent seed (sample k uses ``seed + k``) and the seed of the real-item draw and
            of the dropout masks.
        collapse_warning_rise: the rise of the mean pairwise MS-SSIM above which a WARNING names a
            possible collapse.
        kernel_size: the MS-SSIM window (:func:`~anatosynth_components.metrics.diversity.ms_ssim_levels`
            chooses the number of scales the image size allows).
        batch_size: pairs synthesised and registered at once; ``None``: the size of the first real
            batch (the refinement's, which fits in memory).
        data: batches ``{"image", "label"}`` to draw the real items from; ``None``: the refiner's loader.

    Attach to an :class:`~anatosynth_components.acis.refinement.AcisRefiner` (``train_handlers`` or
    ``report.attach(refiner)``); it uses the refiner's generators, registration network, ``num_passes``
    and precision.  ``report.before`` / ``report.after`` hold the measurements.

    Raises:
        ConfigError: ``num_samples`` < 2, or images too small for one MS-SSIM window (at start).

    Example::

        report = RefinementReport("models/refinement_report.json", num_samples=8, seed=0)
        refiner = AcisRefiner("cuda", 20, loader, ..., train_handlers=[report])
        refiner.run()
        report.before["diversity_ms_ssim"], report.after["diversity_ms_ssim"]   # e.g. 0.41, 0.43
    """

    def __init__(
        self,
        report_file: str | os.PathLike,
        num_samples: int = 8,
        seed: int = 0,
        collapse_warning_rise: float = 0.1,
        kernel_size: int = 11,
        batch_size: int | None = None,
        data: Iterable | None = None,
    ) -> None:
        self.report_file = Path(report_file)
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 2:
            raise ConfigError(
                "report_samples must be an integer >= 2 (the samples are compared in pairs), or 0 in a "
                f"bundle to switch the refinement report off; got {num_samples!r}"
            )
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.collapse_warning_rise = check_positive_float(
            "collapse_warning_rise", collapse_warning_rise, allow_zero=True
        )
        self.kernel_size = check_positive_int("kernel_size", kernel_size)
        self.batch_size = None if batch_size is None else check_positive_int("batch_size", batch_size)
        self.data = data
        self.before: dict[str, Any] | None = None
        self.after: dict[str, Any] | None = None
        self._reals: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def seeds(self) -> list[int]:
        return [self.seed + k for k in range(self.num_samples)]

    def attach(self, engine: Engine) -> None:
        from anatosynth_components.acis.refinement.refiner import AcisRefiner

        if not isinstance(engine, AcisRefiner):
            raise ConfigError(f"RefinementReport attaches to an AcisRefiner, not a {type(engine).__name__}")
        engine.add_event_handler(Events.STARTED, self.started)
        engine.add_event_handler(Events.COMPLETED, self.completed)

    # --- events ------------------------------------------------------------------------------------------

    def started(self, engine: Engine) -> None:
        self._reals = self._draw_reals(engine)
        kept = self._kept_before(engine) if engine.state.iteration > 0 else None
        if kept is not None:
            engine.logger.info(
                f"refinement report: resuming, keeping the 'before' of {self.report_file} "
                f"(iteration {kept['iteration']})"
            )
        self.before = kept or self.measure(engine)
        self.after = None
        self._write(engine)

    def completed(self, engine: Engine) -> None:
        if self._reals is None:  # completed without a start (nothing to train after a resume)
            return
        self.after = self.measure(engine)
        report = self._write(engine)
        engine.logger.info(
            "refinement: "
            + "; ".join(f"{_LABELS[q]} {self.before[q]:.3g} -> {self.after[q]:.3g}" for q in QUANTITIES)
            + f" ({self.num_samples} samples of seeds {self.seeds[0]}..{self.seeds[-1]}; {self.report_file})"
        )
        if report["possible_collapse"]:
            engine.logger.warning(
                f"refinement: possible collapse: the mean pairwise MS-SSIM of the samples rose by "
                f"{report['change']['diversity_ms_ssim']:.3g} ({self.before['diversity_ms_ssim']:.3g} -> "
                f"{self.after['diversity_ms_ssim']:.3g}), more than collapse_warning_rise "
                f"{self.collapse_warning_rise:g}: the generators may be collapsing onto outputs that "
                "register easily (Eq. 3 rewards each sample alone, never diversity); look at the samples, "
                "and consider a lower lr_refine or refine_iterations"
            )

    # --- measurement -------------------------------------------------------------------------------------

    def measure(self, engine: Engine) -> dict[str, Any]:
        """``{"iteration", "diversity_ms_ssim", "uncertainty_image", "uncertainty_annotation"}`` now."""
        if self._reals is None:
            self._reals = self._draw_reals(engine)
        real_images, real_labels = self._reals
        device = engine.state.device
        policy = engine.policy
        local = GeneratorPolicy(
            unwrap(policy.pm_generator),
            unwrap(policy.annotation_generator),
            unwrap(policy.image_generator),
            policy.pm_sigma,
            policy.image_sigma,
        )
        latent = policy.latent_shape(1)
        step = self.batch_size or self._first_batch_size
        images, u_image, u_annotation = [], [], []
        with (
            eval_mode(local.pm_generator, local.annotation_generator, local.image_generator),
            torch.no_grad(),
            seeded(device, self.seed),
        ):
            for start in range(0, self.num_samples, step):
                seeds = self.seeds[start : start + step]
                z = torch.cat([sample_latent(latent, seed) for seed in seeds]).to(device)
                with engine.precision.autocast():
                    pairs = local.synthesize(z)
                image, onehot = pairs["image"].float(), pairs["annotation_onehot"].float()
                if image.shape[1:] != real_images.shape[1:]:
                    raise DataError(
                        f"refinement report: the generators make {tuple(image.shape[1:])} samples but the "
                        f"real items are {tuple(real_images.shape[1:])}: spatial_size and the data must agree"
                    )
                x = real_images[start : start + step].to(device)
                y = label_one_hot(
                    real_labels[start : start + step].to(device).long(), onehot.shape[1], "batch 'label'"
                )
                with engine.precision.autocast():
                    u = engine.uncertainty(x, image, y, onehot)
                images.append(image.cpu())
                u_image.append(u.image.float().cpu())
                u_annotation.append(u.annotation.float().cpu())
            # pairs scored ``step`` at a time: the memory of a refinement batch (3-D volumes are large)
            diversity = mean_pairwise_ms_ssim(torch.cat(images).to(device), self.kernel_size, pair_batch=step)
        return {
            "iteration": int(engine.state.iteration),
            "diversity_ms_ssim": diversity,
            "uncertainty_image": float(torch.cat(u_image).mean()),
            "uncertainty_annotation": float(torch.cat(u_annotation).mean()),
        }

    def _draw_reals(self, engine: Engine) -> tuple[torch.Tensor, torch.Tensor]:
        """The first K real items of ``data`` (cycled when it holds fewer), on the CPU."""
        data = engine.data_loader if self.data is None else self.data
        images, labels, count = [], [], 0
        with seeded("cpu", self.seed):
            for batch in data:
                image, label = real_batch(batch, "cpu")
                if not images:
                    self._first_batch_size = image.shape[0]
                images.append(image)
                labels.append(label.to(torch.int16))
                count += image.shape[0]
                if count >= self.num_samples:
                    break
        if not images:
            raise DataError("refinement report: the refinement data yields no batch to draw real items from")
        image, label = torch.cat(images), torch.cat(labels)
        try:
            ms_ssim_levels(image.shape[2:], self.kernel_size)
        except DataError as err:
            raise ConfigError(f"{err}; set report_samples to 0 to switch the refinement report off") from None
        index = torch.arange(self.num_samples) % image.shape[0]
        return image[index], label[index]

    # --- the file ----------------------------------------------------------------------------------------

    def settings(self, engine: Engine) -> dict[str, Any]:
        levels = ms_ssim_levels(self._reals[0].shape[2:], self.kernel_size)
        return {
            "samples": self.num_samples,
            "seeds": self.seeds,
            "num_passes": engine.uncertainty.num_passes,
            "ms_ssim": {
                "kernel_size": self.kernel_size,
                "levels": levels,
                "weights": list(ms_ssim_weights(levels)),
            },
        }

    def _kept_before(self, engine: Engine) -> dict[str, Any] | None:
        """On resume: the ``before`` of an existing report written with the same settings."""
        try:
            old = json.loads(self.report_file.read_text())
        except (OSError, ValueError):
            return None
        same = all(old.get(k) == v for k, v in self.settings(engine).items())
        before = old.get("before")
        if same and isinstance(before, dict) and all(q in before for q in (*QUANTITIES, "iteration")):
            return before
        return None

    def _write(self, engine: Engine) -> dict[str, Any]:
        report: dict[str, Any] = {
            "what": (
                "ACIS refinement: mean pairwise MS-SSIM of K fixed samples (lower = more diverse) and mean "
                "Eq. 3 uncertainty of sample k against real item k, before and after refinement"
            ),
            **self.settings(engine),
            "before": self.before,
            "after": self.after,
            "change": None,
            "collapse_warning_rise": self.collapse_warning_rise,
            "possible_collapse": None,
        }
        if self.before is not None and self.after is not None:
            change = {q: self.after[q] - self.before[q] for q in QUANTITIES}
            report["change"] = change
            report["possible_collapse"] = change["diversity_ms_ssim"] > self.collapse_warning_rise
        write_json(self.report_file, report)
        return report
