"""``BestModelSaver``: the best model by the key metric, kept across a resumed run."""

from __future__ import annotations

import json

import pytest
import torch
from ignite.engine import Engine, Events

from anatosynth_components.errors import ConfigError
from anatosynth_components.handlers import BestModelSaver


def validations(scores, tmp_path, net, resume=False, start_epoch=0):
    """An evaluator-like engine whose key metric takes ``scores`` at successive epochs; returns the
    engine and the weights' first value saved at each epoch (the net's bias is set to the epoch)."""
    engine = Engine(lambda e, b: None)
    engine.state.key_metric_name = "val_psnr"
    engine.state.best_metric = -1
    engine.state.best_metric_epoch = -1

    @engine.on(Events.EPOCH_COMPLETED(before=10**6))
    def score(e):
        epoch = e.state.epoch + start_epoch
        with torch.no_grad():
            net.bias.fill_(float(epoch))
        e.state.metrics = {"val_psnr": scores[e.state.epoch - 1]}

    BestModelSaver(tmp_path, {"model": net}, resume=resume).attach(engine)
    engine.run([0], max_epochs=len(scores))
    return engine


def saved_bias(tmp_path) -> float:
    state = torch.load(tmp_path / "model.pt", map_location="cpu")
    assert set(state) == {"weight", "bias"}  # a plain state dict, as the model zoo expects
    return float(state["bias"][0])


def test_resumed_run_keeps_the_better_earlier_model(tmp_path):
    net = torch.nn.Linear(1, 1)
    validations([10.0, 20.0, 15.0], tmp_path, net)
    assert saved_bias(tmp_path) == 2.0  # epoch 2 had the best score
    record = json.loads((tmp_path / "model.pt.best.json").read_text())
    assert record == {"metric": "val_psnr", "score": 20.0, "epoch": 2, "file": "model.pt"}

    engine = validations([12.0, 18.0], tmp_path, net, resume=True, start_epoch=3)
    assert saved_bias(tmp_path) == 2.0  # neither 12 nor 18 beats 20
    assert engine.state.best_metric == 20.0

    validations([19.0, 25.0], tmp_path, net, resume=True, start_epoch=5)
    assert saved_bias(tmp_path) == 7.0  # 25 beats 20: the second epoch of this run (6 + 1)
    assert json.loads((tmp_path / "model.pt.best.json").read_text())["score"] == 25.0


def test_without_resume_the_first_validation_replaces_the_file(tmp_path):
    net = torch.nn.Linear(1, 1)
    validations([30.0], tmp_path, net)
    validations([1.0], tmp_path, net, start_epoch=10)
    assert saved_bias(tmp_path) == 11.0


def test_resume_over_a_model_without_record_is_a_clear_error(tmp_path):
    net = torch.nn.Linear(1, 1)
    torch.save(net.state_dict(), tmp_path / "model.pt")
    with pytest.raises(ConfigError, match=r"model\.pt: exists without its best-metric record"):
        validations([1.0], tmp_path, net, resume=True)
    (tmp_path / "model.pt.best.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"model\.pt\.best\.json: unreadable best-metric record"):
        validations([1.0], tmp_path, net, resume=True)


def test_resume_before_any_validation_starts_a_fresh_record(tmp_path):
    net = torch.nn.Linear(1, 1)
    validations([3.0], tmp_path, net, resume=True)
    assert saved_bias(tmp_path) == 1.0
