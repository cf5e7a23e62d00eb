"""``anatosynth demo-data``: write a demo dataset in the layout of a real dataset."""

from __future__ import annotations

import argparse

from anatosynth_components.data.demo import DEMO_KINDS, generate_demo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", required=True, choices=sorted(DEMO_KINDS), help="which dataset to imitate")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--subjects", type=int, default=8, help="number of subjects (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--shape", type=int, nargs=3, metavar=("X", "Y", "Z"), help="volume shape")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")


def run(args: argparse.Namespace) -> int:
    shape = tuple(args.shape) if args.shape else None
    out = generate_demo(args.kind, args.out, args.subjects, args.seed, shape, overwrite=args.overwrite)
    spec = DEMO_KINDS[args.kind]
    print(f"demo {args.kind} dataset ({spec.layout} layout, {args.subjects} subjects): {out}")
    return 0
