"""``anatosynth package BUNDLE --out DIR``: a zoo-ready bundle folder and zip, and the pinned wheel.

Example::

    anatosynth package bundles/anatomask_oasis --out dist \\
        --large-file-url models/model.pt=https://example.org/anatomask_oasis/model.pt

The metadata is always validated against the model zoo's schema: the copy shipped in the package
(``anatosynth_components/packaging/schemas/``), or the file given with ``--schema``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from anatosynth_components.errors import ConfigError
from anatosynth_components.packaging.conformance import META_SCHEMA

HELP = "write a zoo-ready bundle folder and zip (bundle files only) and the anatosynth-components wheel"


def _url(text: str) -> tuple[str, str]:
    path, sep, url = text.partition("=")
    if not sep or not path or not url:
        raise argparse.ArgumentTypeError(
            f"expected PATH=URL (e.g. models/model.pt=https://...), got {text!r}"
        )
    return path, url


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path, help="the bundle folder (configs/metadata.json inside)")
    parser.add_argument("--out", type=Path, required=True, help="where the folder, zip and wheels/ go")
    parser.add_argument(
        "--schema",
        type=Path,
        default=META_SCHEMA,
        help=f"the zoo's metadata schema file (default: the copy shipped in the package, {META_SCHEMA.name})",
    )
    parser.add_argument(
        "--large-file-url",
        type=_url,
        action="append",
        default=[],
        metavar="PATH=URL",
        help="where a published file over 25 MB (e.g. models/model.pt) is uploaded; repeatable",
    )
    parser.add_argument(
        "--export",
        choices=("torchscript", "onnx"),
        action="append",
        default=[],
        help="also export models/model.pt to models/model.ts / model.onnx, checked against the eager network",
    )
    parser.add_argument(
        "--no-wheel", action="store_true", help="do not build the anatosynth-components wheel"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier package in --out")


def run(args: argparse.Namespace) -> int:
    from anatosynth_components.packaging import package_bundle

    if not args.schema.is_file():
        raise ConfigError(f"--schema {args.schema}: file not found")
    result = package_bundle(
        args.bundle,
        args.out,
        schema=args.schema,
        large_file_urls=dict(args.large_file_url),
        wheel=not args.no_wheel,
        overwrite=args.overwrite,
        exports=args.export,
    )
    print(f"bundle folder: {result.folder}")
    print(f"zip:           {result.zip_path} ({len(result.files) - len(result.large_files)} files)")
    for entry in result.large_files:
        print(f"large file:    {entry['path']} -> {entry['url']} (sha256 {entry['hash_val'][:12]}...)")
    if result.wheel is not None:
        print(f"wheel:         {result.wheel}")
    return 0
