"""The trainer base shared by every trainer (``engines/trainer.py``), its mixed precision
(``engines/precision.py``) and its checkpoint mechanism (``engines/checkpoint.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ignite.engine import Events

import anatosynth_components.engines.checkpoint as checkpoint_module
from anatosynth_components.engines import (
    AnatoSynthTrainer,
    Precision,
    amp_dtype,
    checkpoint_files,
    latest_checkpoint,
)
from anatosynth_components.errors import ConfigError


class Regression(AnatoSynthTrainer):
    """The smallest subclass: least squares on fixed batches."""

    def __init__(self, device, max_epochs, loader, net, opt, **kwargs):
        super().__init__(device, max_epochs, loader, **kwargs)
        self.net, self.opt = net, opt

    def checkpoint_objects(self):
        return {"network": self.net, "optimizer": self.opt}

    def train_step(self, batch):
        x, y = self.to_device(batch, "x"), self.to_device(batch, "y")
        with self.precision.autocast():
            pred = self.net(x)
            loss = (pred.float() - y).square().mean()
        self.precision.minimize(loss, self.opt)
        self.precision.update()
        return {"losses": {"mse": float(loss), "double": 2 * float(loss)}, "pred_dtype": pred.dtype}


def batches(count: int = 3, poison: int | None = None) -> list[dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    out = []
    for i in range(count):
        x = torch.randn(8, 4)
        y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
        if i == poison:
            y[0, 0] = float("nan")
        out.append({"x": x, "y": y})
    return out


def make(max_epochs=2, loader=None, lr=0.05, **kwargs) -> Regression:
    torch.manual_seed(1)
    net = torch.nn.Linear(4, 1)
    return Regression(
        "cpu",
        max_epochs,
        batches() if loader is None else loader,
        net,
        torch.optim.SGD(net.parameters(), lr),
        **kwargs,
    )


def test_epoch_means_are_the_means_of_the_iterations():
    trainer = make(max_epochs=2)
    seen: list[float] = []
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: seen.clear())
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED, lambda e: seen.append(e.state.output["losses"]["mse"])
    )
    trainer.run()
    assert len(seen) == 3 and seen[-1] < seen[0]
    assert trainer.state.metrics["mean_mse"] == pytest.approx(sum(seen) / 3)
    assert trainer.state.metrics["mean_double"] == pytest.approx(2 * sum(seen) / 3)


def test_checkpoints_keep_the_two_newest_and_resume_continues(tmp_path):
    folder = tmp_path / "ckpt"
    first = make(max_epochs=3, checkpoint_dir=folder, model=None)
    first.run()
    assert [Path(p).name for p in checkpoint_files(folder)] == [
        "latest_checkpoint_epoch=2.pt",
        "latest_checkpoint_epoch=3.pt",
    ]
    state = torch.load(latest_checkpoint(folder), weights_only=True)
    assert set(state) == {"network", "optimizer", "trainer"}
    assert state["trainer"]["iteration"] == 9 and state["trainer"]["epoch_length"] == 3
    assert torch.equal(state["network"]["weight"], first.net.weight.detach())

    second = make(max_epochs=5, checkpoint_dir=folder, resume=True)
    starts: list[int] = []
    second.add_event_handler(Events.EPOCH_STARTED, lambda e: starts.append(e.state.epoch))
    loaded = {}
    second.add_event_handler(
        Events.EPOCH_STARTED, lambda e: loaded.setdefault("w", second.net.weight.clone())
    )
    second.run()
    assert starts == [4, 5] and second.state.iteration == 15
    assert torch.equal(loaded["w"], first.net.weight.detach())
    # the files of the earlier run count: only the two newest stay
    assert [Path(p).name for p in checkpoint_files(folder)] == [
        "latest_checkpoint_epoch=4.pt",
        "latest_checkpoint_epoch=5.pt",
    ]


def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """The previous training state survives until the next is completely written: a save that dies
    half-way leaves the complete older file and no new file that looks valid."""
    folder = tmp_path / "ckpt"
    trainer = make(max_epochs=3, checkpoint_dir=folder, keep_checkpoints=1)
    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        if trainer.state.epoch == 2:
            f.write(b"half a checkpoint")
            raise OSError("disk full")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(OSError, match="disk full"):
        trainer.run()
    assert [p.name for p in folder.iterdir()] == ["latest_checkpoint_epoch=1.pt"]
    state = torch.load(folder / "latest_checkpoint_epoch=1.pt", weights_only=True)
    assert state["trainer"]["iteration"] == 3  # epoch 1 of 3 iterations
    assert checkpoint_module.LATEST_PATTERN.match("latest_checkpoint_epoch=1.pt")


def test_non_finite_loss_stops_with_an_error_before_any_save(tmp_path):
    folder = tmp_path / "ckpt"
    trainer = make(max_epochs=3, loader=batches(poison=1), checkpoint_dir=folder,
                   model=torch.nn.Linear(1, 1), model_file=tmp_path / "model.pt")  # fmt: skip
    completed: list[int] = []
    trainer.add_event_handler(Events.COMPLETED, lambda e: completed.append(1))
    with pytest.raises(
        FloatingPointError, match=r"epoch 1, iteration 2: non-finite losses \['double', 'mse'\]"
    ):
        trainer.run()
    assert trainer.should_terminate  # ignite's TerminateOnNan stopped it
    assert not completed and not checkpoint_files(folder) and not (tmp_path / "model.pt").exists()


def test_model_file_holds_the_weights_after_every_epoch(tmp_path):
    net = torch.nn.Linear(4, 1)
    path = tmp_path / "sub" / "model.pt"
    trainer = Regression("cpu", 2, batches(), net, torch.optim.SGD(net.parameters(), 0.05), model=net,
                         model_file=path)  # fmt: skip
    weights = []
    trainer.add_event_handler(
        Events.EPOCH_COMPLETED, lambda e: weights.append(torch.load(path, weights_only=True)["weight"])
    )
    trainer.run()
    assert len(weights) == 2 and not torch.equal(weights[0], weights[1])
    assert torch.equal(weights[1], net.weight.detach())


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ConfigError, match="resume: true needs a checkpoint_dir"):
        make(resume=True)
    with pytest.raises(ConfigError, match="model and model_file go together"):
        make(model_file=tmp_path / "m.pt")
    with pytest.raises(ConfigError, match="max_epochs must be >= 1, got 0"):
        make(max_epochs=0)
    with pytest.raises(ConfigError, match="holds no latest_checkpoint_epoch=N.pt; train once without resume"):
        make(checkpoint_dir=tmp_path / "empty", resume=True).run()
    with pytest.raises(ConfigError, match="amp must be one of .*got 'fp8'"):
        make(amp="fp8")
    loader = torch.utils.data.DataLoader(list(range(3)), batch_size=4, drop_last=True)
    with pytest.raises(ConfigError, match=r"yields no batch \(3 items, batch_size 4, drop_last\)"):
        make(loader=loader)


def test_amp_choices_resolve_by_device():
    assert amp_dtype(False, "cuda") is None and amp_dtype("off", "cpu") is None
    assert amp_dtype(True, "cpu") is None and amp_dtype("auto", "cpu") is None  # off on a CPU unless asked
    assert amp_dtype("bf16", "cpu") == torch.bfloat16 and amp_dtype("fp16", "cpu") == torch.float16
    assert not Precision("cpu", True).enabled and not Precision("cpu", True).scaler.is_enabled()
    assert Precision("cpu", "fp16").scaler.is_enabled() and not Precision("cpu", "bf16").scaler.is_enabled()


def test_bf16_autocast_trains_and_reaches_the_full_precision_result():
    full, half = make(max_epochs=20), make(max_epochs=20, amp="bf16")
    full.run()
    half.run()
    assert (
        half.state.output["pred_dtype"] == torch.bfloat16 and full.state.output["pred_dtype"] == torch.float32
    )
    assert full.state.metrics["mean_mse"] < 0.01 and half.state.metrics["mean_mse"] < 0.05
    assert torch.allclose(half.net.weight, full.net.weight, atol=0.05)


def test_fp16_scaler_state_is_in_the_checkpoint(tmp_path):
    trainer = make(max_epochs=1, amp="fp16", checkpoint_dir=tmp_path)
    trainer.run()
    state = torch.load(latest_checkpoint(tmp_path), weights_only=True)
    assert "grad_scaler" in state and state["grad_scaler"]["scale"] > 0
