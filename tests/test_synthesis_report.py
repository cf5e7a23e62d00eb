"""The evaluation report, end to end with a real MONAI SupervisedEvaluator on tiny volumes."""

from __future__ import annotations

import csv
import json
import logging

import nibabel as nib
import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from monai.data import DataLoader, Dataset, MetaTensor
from monai.engines import IterationEvents, SupervisedEvaluator
from monai.handlers import IgniteMetricHandler, from_engine
from monai.inferers import SimpleInferer
from monai.metrics import PSNRMetric
from monai.transforms import Compose

from anatosynth_components.anatomask.label_mean import LabelMeanImaged, LabelMeans
from anatosynth_components.anatomask.prepare_batch import MaskToImageBatch
from anatosynth_components.anatomask.report import SynthesisReport
from anatosynth_components.atomic import write_nifti
from anatosynth_components.data import LoadVolumed, ResizeSlicesd
from anatosynth_components.errors import ConfigError, DataError
from anatosynth_components.metrics import (
    METRIC_DEFINITIONS,
    CoherenceMetric,
    LabelMapMetricHandler,
    SlicePSNRMetric,
    SliceSSIMMetric,
    STLPIPSMetric,
    baseline_metric_handlers,
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


# ---- the paper's protocol: label-mean baseline, volumes, native-resolution montage ---------------

NATIVE = (20, 24, 6)  # the files' grid; the network sees 32 x 32 slices


def _write_subjects(root, names, seed):
    """Real image and label map NIfTI files per subject (datalist entries, the bundles' naming)."""
    rng = np.random.default_rng(seed)
    items = []
    for i, name in enumerate(names):
        label = np.zeros(NATIVE, np.uint8)
        label[4 + i : 16, 5:20, 1:5] = 1
        label[8:14, 9 + i : 15, 2:4] = 2
        real = np.clip(0.1 + 0.2 * label + 0.05 * rng.standard_normal(NATIVE), 0, 1).astype(np.float32)
        write_nifti(root / f"{name}_img.nii.gz", real, np.eye(4))
        write_nifti(root / f"{name}_seg.nii.gz", label, np.eye(4))
        items.append({"image": str(root / f"{name}_img.nii.gz"), "label": str(root / f"{name}_seg.nii.gz"),
                      "subject": name})  # fmt: skip
    return items


def test_report_with_label_mean_baseline_volumes_and_native_montage(tmp_path, caplog):
    volume_transforms = [
        LoadVolumed(["image", "label"]),
        ResizeSlicesd(["image", "label"], spatial_size=(32, 32), axis=2),
    ]
    train = _write_subjects(tmp_path / "train", ["tr-1", "tr-2"], seed=1)
    test = _write_subjects(tmp_path / "test", SUBJECTS, seed=2)
    means = LabelMeans.from_items(train, volume_transforms)

    def label_map_handler(metric):
        return LabelMapMetricHandler(metric, output_transform=from_engine(["pred", "label", "image"]))

    model_handlers = {
        "psnr": _handler(PSNRMetric(max_val=1.0)),
        "psnr_slice": label_map_handler(SlicePSNRMetric(slice_axis=2)),
        "ssim": label_map_handler(SliceSSIMMetric(slice_axis=2)),
        "coherence": label_map_handler(CoherenceMetric(slice_axis=2)),
        "st_lpips": label_map_handler(STLPIPSMetric(slice_axis=2)),
    }
    names = list(model_handlers)
    out = tmp_path / "eval"
    report = SynthesisReport(out, slice_axis=2, montage_subjects=2, baselines=["label_mean"],
                             save_volumes=True, native_transform=Compose(volume_transforms[:1]))  # fmt: skip
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(Dataset(test, Compose(volume_transforms)), batch_size=2, shuffle=False),
        network=LabelToImage(),
        inferer=SimpleInferer(),
        prepare_batch=MaskToImageBatch(),
        postprocessing=LabelMeanImaged(means, label_key="image", output_key="label_mean"),
        key_val_metric={"psnr": model_handlers.pop("psnr")},
        additional_metrics={
            **model_handlers,
            **baseline_metric_handlers(
                {"psnr": _handler(PSNRMetric(max_val=1.0)), **model_handlers}, "label_mean"
            ),
        },
        val_handlers=[report],
    )
    with caplog.at_level(logging.INFO):
        evaluator.run()

    # direct computation, volume by volume, of the model and of the baseline
    direct = {"model": {}, "label_mean": {}}
    metrics = {"psnr": PSNRMetric(max_val=1.0), "psnr_slice": SlicePSNRMetric(), "ssim": SliceSSIMMetric(),
               "coherence": CoherenceMetric(), "st_lpips": STLPIPSMetric()}  # fmt: skip
    loaded = {}
    for item in test:
        d = Compose(volume_transforms)(dict(item))
        real, labels = d["image"][None].as_tensor(), d["label"][None].as_tensor()
        loaded[item["subject"]] = (real, labels)
        for source, pred in (("model", LabelToImage()(labels)), ("label_mean", means(labels))):
            direct[source][item["subject"]] = {
                n: float(m(pred, real)) if n == "psnr" else float(m(pred, real, label_map=labels))
                for n, m in metrics.items()
            }
    doc = json.loads((out / "metrics.json").read_text())
    assert list(doc["summary"]) == names
    baseline = doc["baselines"]["label_mean"]
    assert set(baseline) == {"per_subject", "summary", "definition"} and "training" in baseline["definition"]
    assert list(baseline["per_subject"]) == SUBJECTS
    for source, table in (("model", doc), ("label_mean", baseline)):
        for s in SUBJECTS:
            assert set(table["per_subject"][s]) == set(names)  # every metric, for the baseline too
            for n in names:
                expected = pytest.approx(direct[source][s][n], rel=1e-4, abs=1e-6)
                assert table["per_subject"][s][n] == expected, (source, s, n)
        for n in names:
            values = [direct[source][s][n] for s in SUBJECTS]
            assert table["summary"][n]["mean"] == pytest.approx(np.mean(values), rel=1e-4)
            assert table["summary"][n]["std"] == pytest.approx(np.std(values), rel=1e-3, abs=1e-6)
    assert doc["per_subject"]["sub-01"]["psnr_slice"] != pytest.approx(doc["per_subject"]["sub-01"]["psnr"])
    with open(out / "metrics_label_mean.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["subject", *names] and [r[0] for r in rows[1:]] == [*SUBJECTS, "mean", "std"]

    # the log prints the model and the baseline side by side
    table_log = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("Synthesis report"))
    assert "model mean ± std" in table_log and "label-mean baseline mean ± std" in table_log
    st_row = next(line for line in table_log.splitlines() if line.startswith("ST-LPIPS"))
    assert f"{baseline['summary']['st_lpips']['mean']:.4f}" in st_row
    assert f"{doc['summary']['st_lpips']['mean']:.4f}" in st_row

    # save_volumes: loadable NIfTI of exactly what was scored, at the network's resolution
    for s in SUBJECTS:
        real, labels = loaded[s]
        files = {k: nib.load(str(out / "volumes" / f"{s}_{k}.nii.gz")) for k in
                 ("labels", "real", "synthetic", "label_mean")}  # fmt: skip
        for img in files.values():
            assert img.shape == (32, 32, NATIVE[2])
        np.testing.assert_array_equal(np.asarray(files["labels"].dataobj), labels[0, 0].numpy())
        np.testing.assert_allclose(files["real"].get_fdata(), real[0, 0].numpy(), atol=1e-6)
        np.testing.assert_allclose(
            files["synthetic"].get_fdata(), LabelToImage()(labels)[0, 0].numpy(), atol=1e-6
        )
        np.testing.assert_allclose(files["label_mean"].get_fdata(), means(labels)[0, 0].numpy(), atol=1e-6)
    assert not list((out / "volumes").glob(".*part*"))

    # the montage: the same slice at the network's resolution and at the native resolution
    assert (out / "montage.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    entry = report._montage[0]
    assert entry["subject"] == SUBJECTS[0] and entry["index"] in (2, 3)  # the middle anatomy slice
    assert entry["network"]["real"].shape == (32, 32) and entry["native"]["kind"] == "native"
    native_real = nib.load(test[0]["image"]).get_fdata()[:, :, entry["index"]]
    np.testing.assert_allclose(entry["native"]["real"], native_real, atol=1e-6)  # the file's own slice
    for key in ("labels", "synthetic", "label_mean"):
        assert entry["native"][key].shape == NATIVE[:2]


def test_report_requires_every_metric_for_each_baseline(tmp_path):
    data = _data()
    evaluator = _evaluator(data, SynthesisReport(tmp_path, montage_subjects=0, baselines=["label_mean"]))
    evaluator.add_event_handler(  # a baseline image, but no baseline metric handlers
        IterationEvents.MODEL_COMPLETED,
        lambda e: [o.update(label_mean=o["pred"]) for o in e.state.output],
    )
    with pytest.raises(ConfigError, match="label_mean baseline's metric 'label_mean/psnr'"):
        evaluator.run()
    with pytest.raises(ConfigError, match="baselines must be distinct"):
        SynthesisReport(tmp_path, baselines=["pred"])


def test_montage_native_row_falls_back_to_resizing_to_the_source_shape(tmp_path):
    """Without a native transform the native row is the network slices resized to the source's
    in-plane shape (``spatial_shape`` metadata); without that metadata there is no native row."""
    report = SynthesisReport(tmp_path, baselines=["label_mean"])
    labels = torch.zeros(1, 32, 32, 6)
    labels[:, 8:20, 8:20, 1:4] = 1
    meta = {"spatial_shape": np.array(NATIVE)}
    out = {"image": MetaTensor(labels, meta=meta), "label": MetaTensor(labels * 0.5, meta=meta),
           "pred": labels * 0.4, "label_mean": labels * 0.3}  # fmt: skip
    entry = report._montage_entry("s", out)
    assert entry["index"] == 2 and entry["native"]["kind"] == "resized to source"
    assert all(entry["native"][k].shape == NATIVE[:2] for k in ("labels", "real", "synthetic", "label_mean"))
    assert set(np.unique(entry["native"]["labels"])) == {0.0, 1.0}  # nearest for the label map
    plain = {k: v.as_tensor() if isinstance(v, MetaTensor) else v for k, v in out.items()}
    assert report._montage_entry("s", plain)["native"] is None
