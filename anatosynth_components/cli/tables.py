"""``anatosynth tables EXPERIMENT``: reproduce the papers' tables at demo or paper scale.

- ``ablation``: AnatoMaskGAN Tables I-II (SPADE and the three cumulative additions);
- ``segmentation``: ACIS Table 1 (few-shot 3D UNet / MedNeXt: baseline, augmentation, + ACIS-, + ACIS);
- ``reconstruction``: ACIS Table 2 (SR, deblurring, denoising with ResNet, RED-CNN, ESRT);
- ``combine``: pool finished segmentation / reconstruction runs made with different ``--set seed=S``
  (:mod:`~anatosynth_components.experiments.seed_pool`): mean ± std across seeds, Wilcoxon tests
  paired by (seed, test case), synthetic-pair diagnostics and refinement reports.

Each writes its results folder (``--out``, default ``runs/tables/<experiment>-<scale>``): the
exact configuration, one file per finished cell (a rerun skips them), ``table.md``, plots and
``results.json``.  ``--set KEY=VALUE`` changes any configuration key (JSON values); a folder made
with another configuration is an error unless ``--overwrite``.

``--scale paper`` needs real data: without ``--dataset-dir`` (or ``--set dataset_dir=...``) it is refused
with the command that gives one, rather than training the paper-size models on demo phantoms.  A demo
scale run on generated phantoms says so in a WARNING banner.

``--bundle`` and ``--acis-bundle`` (and the configuration's ``bundle`` / ``synthetic.acis_bundle``)
take a bundle folder's path; a bare name such as ``anatomask_oasis`` works only where the package
runs from a repository checkout that holds ``bundles/<name>`` (see
:func:`~anatosynth_components.experiments.bundle_runner.resolve_bundle`).

Example::

    anatosynth tables ablation --scale demo
    anatosynth tables segmentation --synthetic-datalist acis=refined/datalist.json \
        --synthetic-datalist acis_minus=unrefined/datalist.json --set iterations=100
    anatosynth tables combine runs/seg/seed-0 runs/seg/seed-1 runs/seg/seed-2 --out runs/seg/pooled
"""

from __future__ import annotations

import argparse
import copy
import importlib
from pathlib import Path

from anatosynth_components.errors import ConfigError
from anatosynth_components.experiments.bundle_runner import resolve_bundle
from anatosynth_components.experiments.overrides import apply_overrides

EXPERIMENTS = {
    "ablation": "AnatoMaskGAN ablation, paper Tables I-II (bundle train + evaluate per variant)",
    "segmentation": "ACIS few-shot segmentation, paper Table 1 (UNet, MedNeXt; real vs + synthetic)",
    "reconstruction": "ACIS reconstruction, paper Table 2 (SR, deblurring, denoising; ResNet, RED, ESRT)",
}
ACIS = ("segmentation", "reconstruction")
#: the real data each experiment's paper scale is about (the ``--dataset-dir`` of the refusal message)
PAPER_DATA = {
    "ablation": "/path/to/OASIS (Learn2Reg OASIS, or the --bundle's own dataset)",
    "segmentation": "/path/to/lobes (chest CTs with lung-lobe labels: a MONAI datalist JSON, TLobes-style)",
    "reconstruction": "/path/to/penet (the PENet folder with data.hdf5)",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    for name, help_text in EXPERIMENTS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "--scale",
            choices=["demo", "paper"],
            default="demo",
            help="demo: CPU-sized on generated phantoms (default); paper: the paper's settings",
        )
        p.add_argument("--out", help="results folder (default runs/tables/<experiment>-<scale>)")
        p.add_argument("--dataset-dir", help="real dataset folder (default: a generated demo dataset)")
        p.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="change a configuration key (JSON value; nested keys with dots); repeatable",
        )
        p.add_argument("--overwrite", action="store_true", help="discard earlier results in --out")
        p.add_argument("--no-progress", action="store_true", help="no progress bars")
        p.add_argument("--show-config", action="store_true", help="print the configuration and exit")
        if name == "ablation":
            p.add_argument(
                "--bundle",
                help="the AnatoMaskGAN bundle folder (a bare name, default anatomask_oasis, is looked up "
                "in the repository checkout's bundles/)",
            )
        if name in ACIS:
            group = p.add_mutually_exclusive_group()
            group.add_argument(
                "--synthetic-datalist",
                action="append",
                metavar="[ARM=]PATH",
                help="datalist JSON of synthetic image-annotation pairs for the ACIS arm ARM (acis or "
                "acis_minus; a bare PATH is the acis arm); repeat for both arms.  Its provenance must "
                "name the real subjects that trained its generator (the ACIS bundle's sampling writes it)",
            )
            group.add_argument(
                "--acis-bundle",
                help="ACIS bundle folder that samples them (a bare name, default acis_tlobes / acis_penet, "
                "is looked up in the repository checkout's bundles/)",
            )
            p.add_argument(
                "--acis-samples", type=int, help="pairs the ACIS bundle samples per training subset"
            )
            p.add_argument(
                "--synthetic-intensity",
                choices=["unit", "chest"],
                help="synthetic images already in [0, 1] (unit) or in HU (chest window)",
            )
    add_combine(sub)


def add_combine(sub: argparse._SubParsersAction) -> None:
    help_text = "pool finished runs of one experiment made with different seeds (mean ± std across seeds)"
    p = sub.add_parser("combine", help=help_text, description=help_text)
    p.add_argument("folders", nargs="+", metavar="FOLDER", help="results folders (each with results.json)")
    p.add_argument("--out", required=True, help="folder for the pooled table.md, results.json and plot")


def combine(args: argparse.Namespace) -> int:
    from anatosynth_components.experiments.seed_pool import load_run, pool_runs, write_pool

    pooled = pool_runs([load_run(folder) for folder in args.folders])
    paths = write_pool(pooled, args.out)
    print(Path(args.out, "table.md").read_text())
    print(f"{len(pooled['seeds'])} runs pooled; written: {', '.join(str(p) for p in paths)}")
    return 0


def build_config(args: argparse.Namespace) -> tuple[object, dict]:
    """The experiment module and its configuration: the scale's defaults, the flags, then ``--set``."""
    module = importlib.import_module(f"anatosynth_components.experiments.{args.experiment}")
    config = copy.deepcopy(module.SCALES[args.scale])
    if args.dataset_dir:
        config["dataset_dir"] = args.dataset_dir
    if getattr(args, "bundle", None):
        config["bundle"] = args.bundle
    if args.experiment in ACIS:
        if args.synthetic_datalist:
            config["synthetic"] = {"datalist": datalist_arms(args.synthetic_datalist)}
        elif args.acis_bundle:
            config["synthetic"] = {**config["synthetic"], "acis_bundle": args.acis_bundle}
        if args.acis_samples is not None:
            if "acis_bundle" not in (config["synthetic"] or {}):
                raise ConfigError("--acis-samples applies to the ACIS bundle, not to --synthetic-datalist")
            config["synthetic"]["num_samples"] = args.acis_samples
        if args.synthetic_intensity:
            config["synthetic_intensity"] = args.synthetic_intensity
    config = apply_overrides(config, args.overrides, free_dicts=module.FREE_DICTS)
    config["scale"] = args.scale
    resolve_bundles(config)
    return module, config


def datalist_arms(values: list[str]) -> dict[str, str]:
    """``--synthetic-datalist [ARM=]PATH`` values as ``{arm: path}`` (a bare path: the ``acis`` arm).

    >>> datalist_arms(["a/datalist.json", "acis_minus=b/datalist.json"])
    {'acis': 'a/datalist.json', 'acis_minus': 'b/datalist.json'}
    """
    out: dict[str, str] = {}
    for value in values:
        arm, sep, path = value.partition("=")
        arm, path = (arm, path) if sep and arm in ("acis", "acis_minus") else ("acis", value)
        if arm in out:
            raise ConfigError(f"--synthetic-datalist: two datalists for the {arm} arm ({out[arm]}, {path})")
        out[arm] = path
    return out


def resolve_bundles(config: dict) -> None:
    """Replace, in place, the bundles the configuration names by their folders' absolute paths
    (:func:`resolve_bundle`): ``bundle`` and, when an ACIS arm runs, ``synthetic.acis_bundle``."""
    if config.get("bundle") is not None:
        config["bundle"] = str(resolve_bundle(config["bundle"], "--bundle"))
    synthetic = config.get("synthetic")
    acis_arms = {"acis", "acis_minus"} & set(config.get("arms", []))
    if acis_arms and isinstance(synthetic, dict) and synthetic.get("acis_bundle"):
        synthetic["acis_bundle"] = str(resolve_bundle(synthetic["acis_bundle"], "--acis-bundle"))


def require_real_data(experiment: str, config: dict) -> None:
    """``--scale paper`` without a ``dataset_dir``: a ``ConfigError`` with the command that gives one
    (the paper-size models are not trained on demo phantoms by accident)."""
    if config["scale"] == "paper" and config.get("dataset_dir") is None:
        raise ConfigError(
            f"--scale paper needs the real data and no --dataset-dir was given (it would train the "
            f"paper-size models on generated demo phantoms). Give it: anatosynth tables {experiment} "
            f"--scale paper --dataset-dir {PAPER_DATA[experiment]} (with your other options); or run "
            f"anatosynth tables {experiment} --scale demo for the CPU-sized check on phantoms"
        )


def run(args: argparse.Namespace) -> int:
    if args.experiment == "combine":
        return combine(args)
    module, config = build_config(args)
    if args.show_config:
        import json

        print(json.dumps(config, indent=2))
        return 0
    require_real_data(args.experiment, config)
    out = Path(args.out or f"runs/tables/{args.experiment}-{args.scale}")
    doc = module.run(config, out, overwrite=args.overwrite, progress=not args.no_progress)
    print((out / doc["table"]).read_text())
    done = doc["this_run"]
    print(
        f"{len(done['computed'])} cell(s) computed, {len(done['skipped'])} reused, {done['wall_s']:.0f} s; "
        f"results in {out}: table.md, results.json{', ' + doc['plot'] if 'plot' in doc else ''}, config.json"
    )
    return 0
