"""``anatosynth benchmark NAME``: timing scripts that compare against a baseline in the same run.

Each benchmark is a module ``anatosynth_components.benchmarks.<name>`` (dashes become
underscores) with ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``; it prints its
measurements and the ratios to its baseline.  Timing belongs here, never in the tests.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil

import anatosynth_components.benchmarks as benchmarks


def available() -> list[str]:
    """Names of the benchmarks shipped in :mod:`anatosynth_components.benchmarks`."""
    return sorted(m.name.replace("_", "-") for m in pkgutil.iter_modules(benchmarks.__path__))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", metavar="NAME", required=True)
    for name in available():
        module = importlib.import_module(f"{benchmarks.__name__}.{name.replace('-', '_')}")
        module.add_arguments(sub.add_parser(name, help=module.HELP, description=module.HELP))


def run(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"{benchmarks.__name__}.{args.benchmark.replace('-', '_')}")
    return int(module.run(args) or 0)
