"""``anatosynth floor``: an evaluation's model against its label-mean floor (the main job's target).

Reads ``eval/metrics.json`` (written by a bundle's ``evaluate.json``) and prints ``psnr_slice`` and
``st_lpips`` of the model and of the label-mean baseline, and whether the target holds: PSNR within
1 dB of the baseline or above it, *and* ST-LPIPS below it (README, "Evaluation").  Exit status 0
either way (``--strict``: 1 when the target is not met), 2 for an unreadable report.

Example::

    anatosynth floor runs/quickstart/anatomask_oasis/eval/metrics.json
"""

from __future__ import annotations

import argparse

from anatosynth_components.metrics.floor import format_floor, read_floor_comparison

HELP = "compare an evaluation's model with its label-mean baseline (psnr_slice and st_lpips)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("metrics", help="metrics.json of an evaluation (evaluate.json)")
    parser.add_argument(
        "--tolerance-db", type=float, default=1.0, help="PSNR margin below the baseline (1 dB)"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when the target is not met")


def run(args: argparse.Namespace) -> int:
    result = read_floor_comparison(args.metrics, args.tolerance_db)
    print(format_floor(result))
    return 1 if args.strict and not result["met"] else 0
