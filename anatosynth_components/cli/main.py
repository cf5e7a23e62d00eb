"""The ``anatosynth`` command line.

Each subcommand lives in ``anatosynth_components.cli.<name>`` and provides ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; modules are imported only when their
subcommand runs, so ``anatosynth --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from anatosynth_components import __version__
from anatosynth_components.errors import AnatoSynthError, find_cause

#: subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo-data": ("demo_data", "write a demo dataset of phantoms in a real dataset's layout"),
    "inspect": ("inspect", "read a dataset with the real loaders, summarise it and draw a montage"),
    "pseudomask": ("pseudomask", "ACIS pseudo-mask of a volume: density-weighted seeds and Voronoi cells"),
    "benchmark": ("benchmark", "timing scripts that compare against a baseline in the same run"),
    "floor": ("floor", "an evaluation's model against its label-mean baseline (the main job's target)"),
    "tables": ("tables", "reproduce the papers' tables (ablation, segmentation, reconstruction), resumable"),
    "package": ("package", "zoo-ready bundle folder and zip (bundle files only) and the pinned wheel"),
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="anatosynth", description="AnatoSynth tools.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name in argv:  # only the chosen subcommand's module is imported
            importlib.import_module(f"anatosynth_components.cli.{module}").add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``anatosynth``; returns the exit status (2 for bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    module = importlib.import_module(f"anatosynth_components.cli.{COMMANDS[args.command][0]}")
    try:
        return int(module.run(args) or 0)
    except Exception as err:
        cause = find_cause(err, AnatoSynthError) or find_cause(err, FileExistsError)
        if cause is None:
            raise
        print(f"anatosynth {args.command}: error: {cause}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
