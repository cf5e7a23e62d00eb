"""Run a MONAI bundle workflow in a subprocess, as users do: ``python -m monai.bundle run <id>
--config_file <file> --bundle_root <folder> --key value ...``, with its output in a log file.

The output is streamed to the log as it comes (so ``tail -f`` shows a long training), and every
training epoch the workflow finishes (ignite's ``<Name>Trainer - INFO - Epoch[k] Complete`` log
line; validators and evaluators are not counted) advances a nested progress bar, so a cell that
trains for minutes does not look frozen.

Bundles do not ship in the package: they live in the repository (``bundles/<name>``) and the MONAI
model zoo.  :func:`resolve_bundle` turns what a user names (``--bundle``, ``--acis-bundle``) into a
bundle folder: a path to the folder, or, when the package runs from a repository checkout, a bare
name under that checkout's ``bundles/``.

Example::

    run_bundle("training", "bundles/anatomask_oasis/configs/train.json", "runs/x/spade",
               {"use_gnn_sif": False, "train#trainer#max_epochs": 8}, log="runs/x/spade/train.log",
               progress=True, total_epochs=8, desc="spade: train")
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tqdm import tqdm

import anatosynth_components
from anatosynth_components.errors import AnatoSynthError, ConfigError

#: where a repository checkout keeps its bundles, if the package runs from one (an installed wheel
#: has no such folder); :func:`resolve_bundle` is the way to look a bundle up.
REPO_BUNDLES = Path(anatosynth_components.__file__).resolve().parents[1] / "bundles"


#: a training epoch finished (the trainer's own log line; evaluators and validators end in "Evaluator").
EPOCH_DONE = re.compile(rb"\w*Trainer - INFO - Epoch\[\d+\] Complete")


class ExperimentError(AnatoSynthError):
    """A step of an experiment (a bundle workflow, a sampler) failed; the message says which and why."""


def checkout_bundles() -> Path | None:
    """The ``bundles/`` folder of the repository checkout this package runs from (an editable
    install: ``pyproject.toml`` and ``bundles/`` beside the package), or None (an installed wheel)."""
    root = REPO_BUNDLES.parent
    if (root / "pyproject.toml").is_file() and REPO_BUNDLES.is_dir():
        return REPO_BUNDLES
    return None


def resolve_bundle(value: str | os.PathLike, option: str = "--bundle") -> Path:
    """The bundle folder that ``value`` names, as an absolute path.

    ``value`` is a path to a bundle folder (one with ``configs/``), or a bare name such as
    ``anatomask_oasis``, looked up in the checkout's ``bundles/`` when the package runs from a
    repository checkout (:func:`checkout_bundles`).

    Raises:
        ConfigError: naming ``option`` and ``value``: the folder has no ``configs/``, or nothing of
            that name exists (bundles ship in the repository and the model zoo, not in the package,
            so an installed package needs the bundle folder's path).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     (Path(tmp) / "my_bundle" / "configs").mkdir(parents=True)
    ...     resolve_bundle(Path(tmp) / "my_bundle") == (Path(tmp) / "my_bundle").resolve()
    True
    """
    text = os.fspath(value)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "configs").is_dir():
            raise ConfigError(f"{option} {text!r}: {path} is not a bundle folder (no configs/ inside)")
        return path.resolve()
    bundles = checkout_bundles()
    bare = text and path.name == text and text not in (".", "..")
    if bare and bundles is not None and (bundles / text / "configs").is_dir():
        return (bundles / text).resolve()
    if not bare:
        where = "no such folder"
    elif bundles is None:
        where = (
            "not a folder, and this installation of anatosynth-components runs from no repository "
            "checkout whose bundles/ could hold it"
        )
    else:
        where = f"not a folder, nor a bundle in {bundles}"
    raise ConfigError(
        f"{option} {text!r}: {where}. Bundles ship in the AnatoSynth repository (bundles/<name>) and the "
        f"MONAI model zoo, not in the package: pass the bundle folder's path ({option} /path/to/<bundle>)"
    )


def override_text(value: Any) -> str:
    """A config value as ``python -m monai.bundle`` (Python Fire) parses it back: lists as JSON,
    booleans as ``true``/``false`` (the bundles read switches with ``bundle.flag``), ``None``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "None"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def bundle_command(
    run_id: str,
    config_file: str | os.PathLike,
    bundle_root: str | os.PathLike | None,
    overrides: Mapping[str, Any],
) -> list[str]:
    cmd = [sys.executable, "-m", "monai.bundle", "run", run_id, "--config_file", str(config_file)]
    if bundle_root is not None:
        cmd += ["--bundle_root", str(bundle_root)]
    for key, value in overrides.items():
        cmd += [f"--{key}", override_text(value)]
    return cmd


def run_bundle(
    run_id: str,
    config_file: str | os.PathLike,
    bundle_root: str | os.PathLike | None,
    overrides: Mapping[str, Any],
    log: str | os.PathLike,
    cwd: str | os.PathLike | None = None,
    progress: bool = False,
    total_epochs: int | None = None,
    desc: str | None = None,
) -> list[str]:
    """Run the workflow; its stdout and stderr go to ``log`` (appended, with the command first).

    Args:
        progress: show a progress bar of the training epochs the workflow finishes.
        total_epochs: the bar's total (None: a plain counter).
        desc: the bar's label (default: the run id).

    Returns:
        the command that ran.

    Raises:
        ExperimentError: the workflow exited with an error; the message holds the command, the
            log's path and its last lines.
    """
    cmd = bundle_command(run_id, config_file, bundle_root, overrides)
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    with (
        log.open("ab") as fh,
        tqdm(
            total=total_epochs,
            desc=desc or run_id,
            unit="epoch",
            leave=False,
            disable=not progress,
            dynamic_ncols=True,
        ) as bar,
    ):
        fh.write(("$ " + " ".join(cmd) + "\n").encode())
        fh.flush()
        # bytes, split on "\n" only: the workflow's own tqdm bars ("\r") stay as they are in the log
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cwd or log.parent,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            fh.write(line)
            if EPOCH_DONE.search(line):
                fh.flush()
                bar.update(1)
        returncode = proc.wait()
    if returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise ExperimentError(
            f"`{' '.join(cmd)}` failed (exit {returncode}); full log: {log}\n--- last lines ---\n{tail}"
        )
    return cmd
