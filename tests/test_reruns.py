"""Reruns work (issue 17, item 10): a fresh (not resumed) training into a folder that holds an earlier
run's checkpoints moves that run's files under a dated name, says so, and trains; its pruning and a later
``resume`` see only its own files.  In-process on the smallest trainer, then the main job's mechanism
(``scripts/quickstart.sh``: the anatomask_oasis bundle on its demo data) twice in one folder, at tiny size."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from bundle_runs import TINY_ANATOMASK, config, run_bundle, state
from ignite.engine import Events
from test_engines_trainer import make

from anatosynth_components.engines import checkpoint_files, set_aside_earlier_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_fresh_run_sets_the_earlier_run_aside_and_trains(tmp_path, caplog):
    folder = tmp_path / "ckpt"
    make(max_epochs=3, checkpoint_dir=folder).run()
    (folder / "model.pt").write_bytes(b"the earlier run's best model")
    earlier = {Path(p).name: Path(p).read_bytes() for p in checkpoint_files(folder)}

    with caplog.at_level(logging.WARNING):
        make(max_epochs=2, checkpoint_dir=folder).run()
    aside = [p for p in folder.iterdir() if p.is_dir()]
    assert len(aside) == 1 and aside[0].name.startswith("earlier_run_20")
    moved = ["latest_checkpoint_epoch=2.pt", "latest_checkpoint_epoch=3.pt", "model.pt"]
    assert names(aside[0]) == moved
    assert all((aside[0] / name).read_bytes() == data for name, data in earlier.items())
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith(
        f"{folder} held the checkpoints of an earlier run and this training starts afresh"
    )
    assert f"({', '.join(moved)}) were moved to {aside[0]}" in warning
    assert "run again with --resume true" in warning
    # only this run's files: its two epochs, neither pruned by the earlier run's higher numbers
    assert [Path(p).name for p in checkpoint_files(folder)] == [
        "latest_checkpoint_epoch=1.pt",
        "latest_checkpoint_epoch=2.pt",
    ]
    assert torch.load(checkpoint_files(folder)[-1], weights_only=True)["trainer"]["iteration"] == 6

    resumed = make(max_epochs=3, checkpoint_dir=folder, resume=True)
    starts: list[int] = []
    resumed.add_event_handler(Events.EPOCH_STARTED, lambda e: starts.append(e.state.epoch))
    resumed.run()
    assert starts == [3] and resumed.state.iteration == 9


def test_a_pretrained_loader_reads_its_file_before_the_earlier_run_moves(tmp_path):
    """Handlers given to the trainer (MONAI Label's ``CheckpointLoader`` of ``models/model.pt``) run at
    ``STARTED`` before the earlier run's files move."""
    folder = tmp_path / "ckpt"
    make(max_epochs=1, checkpoint_dir=folder).run()
    (folder / "model.pt").write_bytes(b"pretrained")
    seen: list[bool] = []

    class Loader:
        def attach(self, engine):
            engine.add_event_handler(Events.STARTED, lambda e: seen.append((folder / "model.pt").is_file()))

    make(max_epochs=1, checkpoint_dir=folder, train_handlers=[Loader()]).run()
    assert seen == [True] and not (folder / "model.pt").exists()


def test_a_folder_without_checkpoints_is_left_alone_and_names_never_clash(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"downloaded")
    assert set_aside_earlier_run(tmp_path) is None and names(tmp_path) == ["model.pt"]
    (tmp_path / "latest_checkpoint_epoch=1.pt").write_bytes(b"x")
    first = set_aside_earlier_run(tmp_path)
    (tmp_path / "latest_checkpoint_epoch=1.pt").write_bytes(b"y")
    second = set_aside_earlier_run(tmp_path)
    assert first != second and first.parent == second.parent == tmp_path
    assert names(first) == ["latest_checkpoint_epoch=1.pt", "model.pt"]
    assert names(second) == ["latest_checkpoint_epoch=1.pt"]


# --- the main job's mechanism, twice in one folder ---------------------------------------------------

TINY = {**TINY_ANATOMASK, "demo_subjects": "4"}


def train(tmp_path: Path, root: Path, epochs: int, **extra: str):
    """The quickstart's training step at tiny size: demo data, validation once at the end."""
    overrides = {**TINY, "val_interval": str(epochs), "train#trainer#max_epochs": str(epochs), **extra}
    return run_bundle(tmp_path, config("anatomask_oasis", "train"), "training", root, **overrides)


def test_the_main_job_runs_twice_in_one_folder(tmp_path):
    root = tmp_path / "quickstart"
    models = root / "models"
    first = train(tmp_path, root, 3)
    # loud demo default: a WARNING banner saying the data is generated, and where it is
    log = first.stdout + first.stderr
    assert "WARNING: no dataset given, so this run uses GENERATED DEMO DATA (procedural phantoms)" in log
    demo = "data: 4 brain phantoms (`anatosynth demo-data --kind brain`, learn2reg layout)"
    assert f"{demo} in {root}/runs/demo_data" in log
    assert "to use your data: --dataset_dir /path/to/dataset" in log
    per_epoch = state(models / "latest_checkpoint_epoch=3.pt")["trainer"]["epoch_length"]

    # the same command again: fewer epochs, so this run's files are numbered below the earlier ones
    second = train(tmp_path, root, 2)
    log = second.stdout + second.stderr
    (aside,) = [p for p in models.iterdir() if p.is_dir()]
    assert f"{models} held the checkpoints of an earlier run and this training starts afresh" in log
    assert f"were moved to {aside}" in log
    assert names(aside) == [
        "latest_checkpoint_epoch=2.pt",
        "latest_checkpoint_epoch=3.pt",
        "model.pt",
        "model.pt.best.json",
    ]
    assert state(aside / "latest_checkpoint_epoch=3.pt")["trainer"]["iteration"] == 3 * per_epoch
    assert names(models) == [
        aside.name,
        "latest_checkpoint_epoch=1.pt",
        "latest_checkpoint_epoch=2.pt",
        "model.pt",
        "model.pt.best.json",
    ]
    assert state(models / "latest_checkpoint_epoch=2.pt")["trainer"]["iteration"] == 2 * per_epoch

    # resume continues the second run, not the earlier one
    third = train(tmp_path, root, 3, resume="true")
    log = third.stdout + third.stderr
    assert f"resuming from {models}/latest_checkpoint_epoch=2.pt (epoch 2 of 3)" in log
    assert state(models / "latest_checkpoint_epoch=3.pt")["trainer"]["iteration"] == 3 * per_epoch
    assert "held the checkpoints of an earlier run" not in log
