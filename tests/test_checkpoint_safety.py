"""Damaged checkpoints (issue 17, item 4): resume names the file it cannot read and falls back to the
previous complete checkpoint with a warning naming the epoch it resumes from; ignite's "Engine run
resuming" line comes after the restore and shows the restored epoch; a save reaches the disk before it
replaces anything.  In-process on the smallest trainer, then killed and resumed through the bundle."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from bundle_runs import PYTHON, TINY_ANATOMASK, config, state
from ignite.engine import Events
from test_engines_trainer import make

from anatosynth_components.data.demo.generate import generate_demo
from anatosynth_components.engines import checkpoint_files, newest_readable_checkpoint
from anatosynth_components.errors import ConfigError, DataError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def truncate(path: str | Path) -> None:
    """Cut ``path`` to half its size, as a crash or a full disk outside our atomic writes would."""
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])


def messages(caplog, level: int = logging.INFO) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level]


def trained(folder: Path, epochs: int = 3) -> list[str]:
    """``epochs`` epochs of the least-squares trainer into ``folder``; its checkpoint files."""
    make(max_epochs=epochs, checkpoint_dir=folder).run()
    return checkpoint_files(folder)


def test_a_truncated_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    folder = tmp_path / "ckpt"
    older, newest = trained(folder)
    good = torch.load(older, weights_only=True)
    truncate(newest)
    second = make(max_epochs=5, checkpoint_dir=folder, resume=True)
    starts, loaded = [], {}
    second.add_event_handler(Events.EPOCH_STARTED, lambda e: starts.append(e.state.epoch))
    second.add_event_handler(
        Events.STARTED, lambda e: loaded.update(w=second.net.weight.clone(), opt=second.opt.state_dict())
    )
    with caplog.at_level(logging.INFO):
        second.run()
    warnings = messages(caplog, logging.WARNING)
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"{newest}: cannot read the checkpoint (RuntimeError: PytorchStreamReader")
    assert f"Falling back to the previous checkpoint {older}: resuming from epoch 2" in warnings[0]
    # the networks, the optimizer and the engine are those of epoch 2; epochs 3-5 are trained
    assert torch.equal(loaded["w"], good["network"]["weight"])
    assert loaded["opt"]["param_groups"] == good["optimizer"]["param_groups"]
    assert starts == [3, 4, 5] and second.state.iteration == 15
    # the damaged file was replaced by a complete epoch 3; only the two newest stay
    assert [Path(p).name for p in checkpoint_files(folder)] == [
        "latest_checkpoint_epoch=4.pt",
        "latest_checkpoint_epoch=5.pt",
    ]


def test_no_readable_checkpoint_is_an_error_naming_every_file(tmp_path):
    folder = tmp_path / "ckpt"
    files = trained(folder)
    for path in files:
        truncate(path)
    with pytest.raises(DataError) as err:
        make(max_epochs=5, checkpoint_dir=folder, resume=True).run()
    text = str(err.value)
    assert text.startswith(f"{folder}: no checkpoint can be read, so there is nothing to resume from")
    assert all(f"{p}: cannot read the checkpoint" in text for p in files)
    assert "Train without resume" in text


def test_a_file_that_is_not_a_checkpoint_is_named(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "latest_checkpoint_epoch=1.pt").write_text("not a checkpoint")
    with pytest.raises(DataError, match=r"latest_checkpoint_epoch=1\.pt: cannot read the checkpoint"):
        newest_readable_checkpoint(folder)
    torch.save({"network": {}}, folder / "latest_checkpoint_epoch=2.pt")
    with pytest.raises(DataError, match=r"epoch=2\.pt: no \['optimizer', 'trainer'\] entries"):
        make(max_epochs=5, checkpoint_dir=folder, resume=True).run()


def test_a_checkpoint_of_other_sizes_is_named(tmp_path):
    folder = tmp_path / "ckpt"
    _, newest = trained(folder)
    other = torch.load(newest, weights_only=True)
    other["network"]["weight"] = torch.zeros(2, 4)
    torch.save(other, newest)
    with pytest.raises(ConfigError, match=r"epoch=3\.pt: the checkpoint does not fit the configured trainer"):
        make(max_epochs=5, checkpoint_dir=folder, resume=True).run()


def test_the_engine_run_line_comes_after_the_restore_with_the_restored_epoch(tmp_path, caplog):
    folder = tmp_path / "ckpt"
    _, newest = trained(folder)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        make(max_epochs=5, checkpoint_dir=folder, resume=True).run()
    lines = messages(caplog)
    restored = lines.index(f"resuming from {newest} (epoch 3 of 5)")
    engine_run = lines.index("Engine run resuming from iteration 9, epoch 3 until 5 epochs")
    assert restored < engine_run
    assert not any("resuming from iteration 0, epoch 0" in line for line in lines)


def test_resuming_a_finished_run_trains_nothing(tmp_path, caplog):
    folder = tmp_path / "ckpt"
    files = trained(folder)
    stamps = [os.stat(p).st_mtime_ns for p in files]
    again = make(max_epochs=3, checkpoint_dir=folder, resume=True)
    epochs: list[int] = []
    again.add_event_handler(Events.EPOCH_STARTED, lambda e: epochs.append(e.state.epoch))
    with caplog.at_level(logging.INFO):
        again.run()
    assert not epochs and again.state.epoch == 3
    assert any(
        m.startswith("nothing to train: the checkpoint has completed all 3 epochs") for m in messages(caplog)
    )
    assert checkpoint_files(folder) == files and [os.stat(p).st_mtime_ns for p in files] == stamps
    with pytest.raises(
        ConfigError, match=r"epoch=3\.pt: the checkpoint has trained 3 epochs, more than max_epochs=2"
    ):
        make(max_epochs=2, checkpoint_dir=folder, resume=True).run()


def test_a_checkpoint_reaches_the_disk_before_it_is_renamed_into_place(tmp_path, monkeypatch):
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(
        os, "replace", lambda a, b: (events.append(f"replace {Path(b).name}"), real_replace(a, b))[1]
    )
    make(max_epochs=2, checkpoint_dir=tmp_path).run()
    assert events == [
        "fsync",
        "replace latest_checkpoint_epoch=1.pt",
        "fsync",
        "replace latest_checkpoint_epoch=2.pt",
    ]


# --- through the bundle: killed during training, newest checkpoint damaged, resumed -------------------

TINY = {**TINY_ANATOMASK, "val_interval": "100"}  # one validation, at the end (FinalValidationHandler)


def bundle_command(root: Path, data: Path, epochs: int, **extra: str) -> list[str]:
    args = {**TINY, "dataset_dir": str(data), "train#trainer#max_epochs": str(epochs), **extra}
    cmd = [
        PYTHON,
        "-m",
        "monai.bundle",
        "run",
        "training",
        "--config_file",
        config("anatomask_oasis", "train"),
    ]
    cmd += ["--bundle_root", str(root)]
    for key, value in args.items():
        cmd += [f"--{key}", value]
    return cmd


def test_killed_then_resumed_from_a_truncated_checkpoint_through_the_bundle(tmp_path):
    data = generate_demo("brain", tmp_path / "oasis", subjects=10, shape=(40, 48, 20), progress=False)
    root, models = tmp_path / "bundle", tmp_path / "bundle" / "models"
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    log = (tmp_path / "killed.log").open("w")
    proc = subprocess.Popen(bundle_command(root, data, 50), cwd=tmp_path, env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 300
    while len(checkpoint_files(models)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)  # as an out-of-memory kill or a lost node would
    proc.wait()
    log.close()
    files = checkpoint_files(models)
    assert len(files) == 2, (tmp_path / "killed.log").read_text()[-3000:]
    newest = files[-1]
    epoch = int(newest.rsplit("=", 1)[1][:-3])
    per_epoch = state(files[0])["trainer"]["epoch_length"]
    truncate(newest)

    max_epochs = epoch + 1
    out = subprocess.run(
        bundle_command(root, data, max_epochs, resume="true"),
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-4000:]
    assert f"{newest}: cannot read the checkpoint (RuntimeError: PytorchStreamReader failed" in text
    assert f"Falling back to the previous checkpoint {files[0]}: resuming from epoch {epoch - 1}" in text
    restored = text.index(f"resuming from {files[0]} (epoch {epoch - 1} of {max_epochs})")
    engine_line = (
        f"AnatoMaskTrainer - INFO - Engine run resuming from iteration {(epoch - 1) * per_epoch}, "
        f"epoch {epoch - 1} until {max_epochs} epochs"
    )
    assert restored < text.index(engine_line)
    assert "AnatoMaskTrainer - INFO - Engine run resuming from iteration 0, epoch 0" not in text
    final = state(models / f"latest_checkpoint_epoch={max_epochs}.pt")
    assert final["trainer"]["iteration"] == max_epochs * per_epoch
    # Adam continued from the moments of epoch - 1: it counts every step of every epoch
    assert {float(s["step"]) for s in final["opt_g"]["state"].values()} == {float(max_epochs * per_epoch)}
