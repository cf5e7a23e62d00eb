"""The evaluation report, end to end with a real MONAI SupervisedEvaluator on tiny volumes."""

from __future__ import annotations

import csv
import json
import logging

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedEvaluator
from monai.handlers import IgniteMetricHandler, from_engine
from monai.inferers import SimpleInferer
from monai.metrics import PSNRMetric

from anatosynth_components.anatomask.report import SynthesisReport
from anatosynth_components.errors import ConfigError, DataError
from anatosynth_components.metrics import (
    METRIC_DEFINITIONS,
    CoherenceMetric,
    SliceSSIMMetric,
    unavailable_metrics,
)

SHAPE = (1, 16, 16, 6)
SUBJECTS = ["sub-03", "sub-01", "sub-02"]


class LabelToImage(torch.nn.Module):
    """A trivial 'generator': a fixed grey level per label id (no learning)."""

    def forward(self, label_map: torch.Tensor) -> torch.Tensor:
        return 0.1 + 0.2 * label_map


def _data() -> list[dict]:
    g = torch.Generator().manual_seed(0)
    items = []
    for i, subject in enumerate(SUBJECTS):
        label = torch.zeros(SHAPE)
        label[:, 3 + i : 12, 4:12, 1:5] = 1.0
        label[:, 6:10, 6 + i : 10, 2:4] = 2.0
        real = (0.1 + 0.2 * label + 0.05 * torch.randn(SHAPE, generator=g)).clamp(0, 1)
        items.append({"image": label, "label": real, "subject": subject})
    return items


def _handler(metric) -> IgniteMetricHandler:
    return IgniteMetricHandler(
        metric_fn=metric, output_transform=from_engine(["pred", "label"]), save_details=True
    )


def _evaluator(data, report: SynthesisReport) -> SupervisedEvaluator:
    return SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(Dataset(data), batch_size=2, shuffle=False),  # 2 iterations: 2 + 1
        network=LabelToImage(),
        inferer=SimpleInferer(),
        key_val_metric={"psnr": _handler(PSNRMetric(max_val=1.0))},
        additional_metrics={
            "ssim": _handler(SliceSSIMMetric(slice_axis=2)),
            "coherence": _handler(CoherenceMetric(slice_axis=2)),
        },
        val_handlers=[report],
    )


def test_report_end_to_end(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))  # no LPIPS backbone here
    unavailable = unavailable_metrics(stlpips=False)
    assert set(unavailable) == {"lpips"}
    out = tmp_path / "eval"
    report = SynthesisReport(out, metric_names=["psnr", "ssim", "coherence"], slice_axis=2,
                             montage_subjects=2, unavailable=unavailable)  # fmt: skip
    data = _data()
    with caplog.at_level(logging.INFO):
        _evaluator(data, report).run()

    # direct computation, volume by volume
    names = ["psnr", "ssim", "coherence"]
    direct = {}
    for item in data:
        pred, real = LabelToImage()(item["image"])[None], item["label"][None]
        direct[item["subject"]] = {
            "psnr": float(PSNRMetric(max_val=1.0)(pred, real)),
            "ssim": float(SliceSSIMMetric()(pred, real)),
            "coherence": float(CoherenceMetric()(pred, real)),
        }
    mse = float(((LabelToImage()(data[0]["image"]) - data[0]["label"]) ** 2).mean())
    assert direct["sub-03"]["psnr"] == pytest.approx(-10 * np.log10(mse), rel=1e-5)

    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["subject", *names]
    assert [r[0] for r in rows[1:]] == [*SUBJECTS, "mean", "std"]  # run order, then the summary
    table = np.array([[float(v) for v in r[1:]] for r in rows[1:4]])
    expected = np.array([[direct[s][n] for n in names] for s in SUBJECTS])
    np.testing.assert_allclose(table, expected, rtol=1e-5)
    np.testing.assert_allclose([float(v) for v in rows[4][1:]], expected.mean(0), rtol=1e-5)
    np.testing.assert_allclose([float(v) for v in rows[5][1:]], expected.std(0), rtol=1e-5)

    doc = json.loads((out / "metrics.json").read_text())
    assert list(doc["per_subject"]) == SUBJECTS
    for s in SUBJECTS:
        for n in names:
            assert doc["per_subject"][s][n] == pytest.approx(direct[s][n], rel=1e-5)
    assert doc["summary"]["psnr"]["mean"] == pytest.approx(expected[:, 0].mean(), rel=1e-5)
    assert doc["summary"]["coherence"]["std"] == pytest.approx(expected[:, 2].std(), rel=1e-5)
    assert doc["unavailable"] == unavailable
    assert doc["definitions"] == {n: METRIC_DEFINITIONS[n] for n in [*names, "lpips"]}
    assert doc["slice_axis"] == 2

    png = (out / "montage.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*part*"))  # no temporary files left behind

    messages = [r.getMessage() for r in caplog.records]
    assert f"LPIPS unavailable: {unavailable['lpips']}" in messages
    table_log = next(m for m in messages if m.startswith("Synthesis report"))
    assert "mean ± std" in table_log and "PSNR" in table_log and "COHERENCE" in table_log
    assert f"{expected[:, 0].mean():.4f} ± {expected[:, 0].std():.4f}" in table_log


def test_report_json_writes_non_finite_values_as_strings(tmp_path):
    data = _data()
    for item in data:
        item["label"] = LabelToImage()(item["image"])  # synthetic == real: PSNR and coherence are inf
    report = SynthesisReport(tmp_path, montage_subjects=0)  # every metric with details, no montage
    _evaluator(data, report).run()
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc["per_subject"]["sub-01"]["psnr"] == "inf"
    assert doc["summary"]["ssim"]["mean"] == pytest.approx(1.0)
    assert set(doc["summary"]) == {"psnr", "ssim", "coherence"}
    assert not (tmp_path / "montage.png").exists()
    assert report.results["summary"]["psnr"]["mean"] == float("inf")


def _plain_engine(details: dict, batch_key: str = "subject") -> Engine:
    """An Ignite engine over the tiny volumes whose metric details are set by hand."""
    data = _data()

    def step(engine, item):
        engine.state.batch = [{batch_key: item["subject"]}]
        return [{"image": item["image"], "label": item["label"], "pred": item["label"]}]

    engine = Engine(step)

    @engine.on(Events.EPOCH_COMPLETED)
    def _details(engine):
        engine.state.metric_details = details

    engine._data = data
    return engine


def test_report_count_mismatch_is_a_clear_error(tmp_path):
    engine = _plain_engine({"psnr": torch.ones(2, 1)})
    SynthesisReport(tmp_path, metric_names=["psnr"]).attach(engine)
    with pytest.raises(DataError, match="'psnr' has 2 per-volume values but 3 subjects"):
        engine.run(engine._data)
    assert not (tmp_path / "metrics.csv").exists()


def test_report_missing_metric_or_subject_is_a_clear_error(tmp_path):
    engine = _plain_engine({"psnr": torch.ones(3, 1)})
    SynthesisReport(tmp_path, metric_names=["psnr", "ssim"]).attach(engine)
    with pytest.raises(ConfigError, match="'ssim' has no per-volume values.*save_details=True"):
        engine.run(engine._data)
    engine = _plain_engine({"psnr": torch.ones(3, 1)}, batch_key="case")
    SynthesisReport(tmp_path).attach(engine)
    with pytest.raises(DataError, match="no 'subject' key"):
        engine.run(engine._data)


def test_report_rejects_bad_settings(tmp_path):
    with pytest.raises(ConfigError, match="summary_ops"):
        SynthesisReport(tmp_path, summary_ops=("mean", "mode"))
    with pytest.raises(ConfigError, match="slice_axis"):
        SynthesisReport(tmp_path, slice_axis=5)
    with pytest.raises(ConfigError, match="both reported"):
        SynthesisReport(tmp_path, metric_names=["lpips"], unavailable={"lpips": "no weights"})
