"""Whole-volume synthesis metrics against hand-computed and brute-force values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.handlers import IgniteMetricHandler
from monai.metrics import PSNRMetric, SSIMMetric

from anatosynth_components.errors import ConfigError, DataError
from anatosynth_components.metrics import (
    CoherenceMetric,
    LabelMapMetricHandler,
    LPIPSMetric,
    PerceptualSliceMetric,
    SlicePSNRMetric,
    SliceSSIMMetric,
    STLPIPSMetric,
    baseline_metric_handlers,
    baseline_metric_name,
    load_stlpips,
    lpips_status,
    stlpips_status,
    unavailable_metrics,
)


def _volumes(shape=(2, 1, 12, 13, 14), seed=0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    real = torch.rand(shape, generator=g)
    synthetic = (real + 0.2 * torch.randn(shape, generator=g)).clamp(0, 1)
    return synthetic, real


def test_volume_psnr_matches_hand_computation():
    """MONAI's PSNRMetric(max_val=1) is the per-volume PSNR over all voxels (what the bundles report)."""
    synthetic, real = _volumes()
    mse = ((synthetic.double() - real.double()) ** 2).reshape(2, -1).mean(1).numpy()
    expected = 10 * np.log10(1.0 / mse)
    got = PSNRMetric(max_val=1.0)(synthetic, real)
    assert got.shape == (2, 1)
    np.testing.assert_allclose(got[:, 0].numpy(), expected, rtol=1e-5)
    assert torch.isinf(PSNRMetric(max_val=1.0)(real, real)).all()


def test_volume_psnr_accepts_decollated_lists_and_aggregates():
    synthetic, real = _volumes()
    metric = PSNRMetric(max_val=1.0)
    metric(list(synthetic), list(real))  # channel-first volumes, as IgniteMetricHandler passes them
    np.testing.assert_allclose(
        float(metric.aggregate()), float(PSNRMetric(max_val=1.0)(synthetic, real).mean()), rtol=1e-6
    )


@pytest.mark.parametrize("slice_axis", [0, 1, 2])
def test_slice_ssim_equals_loop_of_monai_2d_ssim(slice_axis):
    synthetic, real = _volumes()
    ssim2d = SSIMMetric(spatial_dims=2, data_range=1.0)
    expected = []
    for b in range(real.shape[0]):
        per_slice = [
            float(
                ssim2d(
                    synthetic[b : b + 1].select(2 + slice_axis, k), real[b : b + 1].select(2 + slice_axis, k)
                )
            )
            for k in range(real.shape[2 + slice_axis])
        ]
        expected.append(sum(per_slice) / len(per_slice))
    got = SliceSSIMMetric(slice_axis=slice_axis)(synthetic, real)
    np.testing.assert_allclose(got[:, 0].numpy(), expected, rtol=1e-5)
    batched = SliceSSIMMetric(slice_axis=slice_axis, slice_batch=3)(synthetic, real)
    np.testing.assert_allclose(batched.numpy(), got.numpy(), rtol=1e-6)


def test_slice_ssim_identical_is_one():
    _, real = _volumes()
    np.testing.assert_allclose(SliceSSIMMetric()(real, real).numpy(), 1.0, atol=1e-6)


@pytest.mark.parametrize("metric_cls", [SliceSSIMMetric, CoherenceMetric])
def test_slice_axis_is_respected(metric_cls):
    synthetic, real = _volumes()
    # move spatial axis 2 (Z) to the front: slicing the permuted volume along 0 gives the same slices
    permuted = [v.permute(0, 1, 4, 2, 3) for v in (synthetic, real)]
    along_z = metric_cls(slice_axis=2)(synthetic, real)
    along_0 = metric_cls(slice_axis=0)(*permuted)
    np.testing.assert_allclose(along_0.numpy(), along_z.numpy(), rtol=1e-5)
    assert not torch.allclose(metric_cls(slice_axis=0)(synthetic, real), along_z)


def test_coherence_matches_hand_computation():
    synthetic, real = _volumes(seed=3)
    d_s = np.diff(synthetic.double().numpy(), axis=3)  # slice_axis 1 -> tensor dim 3
    d_r = np.diff(real.double().numpy(), axis=3)
    expected = 10 * np.log10(1.0 / ((d_s - d_r) ** 2).reshape(2, -1).mean(1))
    got = CoherenceMetric(slice_axis=1)(synthetic, real)
    np.testing.assert_allclose(got[:, 0].numpy(), expected, rtol=1e-5)


def test_coherence_of_a_volume_with_itself_is_infinite():
    _, real = _volumes()
    assert torch.isinf(CoherenceMetric()(real, real)).all()


def test_flicker_scores_lower_than_smooth_error_of_same_mse():
    num_slices, a = 8, 0.1
    g = torch.Generator().manual_seed(1)
    real = 0.3 + 0.4 * torch.rand(1, 1, 6, 6, num_slices, generator=g)
    flicker_err = a * torch.tensor([(-1.0) ** k for k in range(num_slices)])  # +a, -a, +a, ...
    smooth_err = a * torch.tensor([1.0 if k < num_slices // 2 else -1.0 for k in range(num_slices)])
    flicker, smooth = real + flicker_err, real + smooth_err
    # the same voxel-wise error (a^2 everywhere), so the same PSNR ...
    psnr = PSNRMetric(max_val=1.0)
    np.testing.assert_allclose(float(psnr(flicker, real)), float(psnr(smooth, real)), rtol=1e-5)
    np.testing.assert_allclose(float(psnr(flicker, real)), -10 * math.log10(a**2), rtol=1e-4)
    # ... but the flickering errors change by 2a at every slice, the smooth ones once in S - 1
    coherence = CoherenceMetric()
    np.testing.assert_allclose(float(coherence(flicker, real)), -10 * math.log10(4 * a**2), rtol=1e-4)
    np.testing.assert_allclose(
        float(coherence(smooth, real)), -10 * math.log10(4 * a**2 / (num_slices - 1)), rtol=1e-4
    )
    assert float(coherence(flicker, real)) < float(coherence(smooth, real))


@pytest.mark.parametrize("metric_cls", [SliceSSIMMetric, CoherenceMetric])
def test_bad_inputs_give_clear_errors(metric_cls):
    synthetic, real = _volumes()
    metric = metric_cls()
    with pytest.raises(DataError, match=r"\(B, 1, X, Y, Z\).*4-D"):
        metric(synthetic[:, 0], real[:, 0])
    with pytest.raises(DataError, match="differ in shape"):
        metric(synthetic[..., :-1], real)
    with pytest.raises(DataError, match="1 channel"):
        metric(synthetic.expand(-1, 2, -1, -1, -1), real.expand(-1, 2, -1, -1, -1))


def test_bad_slice_axis_and_too_small_volumes():
    with pytest.raises(ConfigError, match="slice_axis"):
        SliceSSIMMetric(slice_axis=3)
    with pytest.raises(ConfigError, match="slice_axis"):
        CoherenceMetric(slice_axis=-1)
    one_slice = torch.rand(1, 1, 12, 12, 1)
    with pytest.raises(DataError, match="at least 2 slices"):
        CoherenceMetric()(one_slice, one_slice)
    small = torch.rand(1, 1, 8, 12, 3)
    with pytest.raises(DataError, match=r"smaller than the \(11, 11\) SSIM window"):
        SliceSSIMMetric()(small, small)


def test_lpips_unavailable_without_backbone(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    ok, reason = lpips_status("alex")
    assert not ok
    expected_file = tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert str(expected_file) in reason and "cannot be downloaded" in reason
    assert list(tmp_path.iterdir()) == []  # nothing was fetched or created
    with pytest.raises(ConfigError, match="LPIPS unavailable: .*alexnet-owt-7be5be79.pth"):
        LPIPSMetric()
    assert unavailable_metrics(stlpips=False) == {"lpips": reason}
    with pytest.raises(ConfigError, match="net must be one of"):
        lpips_status("resnet")


def _fake_alexnet_cache(torch_home) -> torch.nn.Module:
    """A torchvision AlexNet state file (random weights: only to test the loading mechanics)."""
    from torchvision.models import alexnet

    torch.manual_seed(0)
    net = alexnet(weights=None)
    path = torch_home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    path.parent.mkdir(parents=True)
    torch.save({f"features.{k}": v for k, v in net.features.state_dict().items()}, path)
    return net


@pytest.mark.filterwarnings("ignore::UserWarning")  # the reference lpips.LPIPS uses `pretrained=`
def test_lpips_metric_loads_the_cached_backbone_and_scores_slices(tmp_path, monkeypatch):
    import lpips

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    tv_net = _fake_alexnet_cache(tmp_path)
    assert lpips_status("alex")[0]
    metric = LPIPSMetric(net="alex", slice_axis=1, slice_batch=5)
    # every backbone weight is the file's, none random
    for key, value in metric.network.net.state_dict().items():
        torch.testing.assert_close(value, tv_net.features.state_dict()[key.split(".", 1)[1]])

    synthetic, real = _volumes(shape=(2, 1, 32, 3, 33))
    reference = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    reference.net.load_state_dict(metric.network.net.state_dict())
    expected = []
    with torch.no_grad():
        for b in range(2):  # slice_axis 1 -> tensor dim 3; slices (32, 33), in [0, 1] -> normalize=True
            slices = [(synthetic[b : b + 1, :, :, k], real[b : b + 1, :, :, k]) for k in range(3)]
            scores = [
                float(reference(s.repeat(1, 3, 1, 1), r.repeat(1, 3, 1, 1), normalize=True))
                for s, r in slices
            ]
            expected.append(sum(scores) / len(scores))
    got = metric(synthetic, real)
    np.testing.assert_allclose(got[:, 0].numpy(), expected, rtol=1e-5)
    with pytest.raises(DataError, match="smaller than the 31 x 31"):
        metric(synthetic[:, :, :16], real[:, :, :16])


def test_lpips_refuses_a_backbone_file_that_is_not_alexnet(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    path.parent.mkdir(parents=True)
    torch.save({"features.0.weight": torch.zeros(3)}, path)
    with pytest.raises(ConfigError, match="not torchvision's ImageNet alex weights"):
        LPIPSMetric()


def test_stlpips_unavailable_names_the_reason_when_its_import_fails(monkeypatch):
    """ST-LPIPS is a dependency; should its import break (its undeclared IPython / torchsummary
    imports), the status says why and the metric refuses to start instead of scoring."""
    import builtins

    real_import = builtins.__import__

    def broken(name, *args, **kwargs):
        if name.startswith("stlpips_pytorch"):
            raise ModuleNotFoundError("No module named 'IPython'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", broken)
    ok, reason = stlpips_status()
    assert not ok and "stlpips-pytorch" in reason and "IPython" in reason and "dependency" in reason
    with pytest.raises(ConfigError, match="ST-LPIPS unavailable"):
        STLPIPSMetric()
    assert "st_lpips" in unavailable_metrics(lpips=False)


# ---- the paper's protocol: foreground slices, slice PSNR ------------------------------------------


def _labelled_volumes(shape=(2, 1, 12, 13, 14), slice_axis=2, seed=0):
    """Synthetic, real and label volumes; volume 0 has anatomy on slices 3..8 along slice_axis,
    volume 1 on slices 1, 2 and 9 (the others are empty)."""
    synthetic, real = _volumes(shape, seed)
    labels = torch.zeros(shape)
    dim = 2 + slice_axis
    fg = {0: [3, 4, 5, 6, 7, 8], 1: [1, 2, 9]}
    for b, slices in fg.items():
        for k in slices:
            labels[b].select(dim - 1, k)[..., 2:5, 3:6] = 1 + k % 3
    # the empty slices are easy (the model paints background): exact there
    for b, slices in fg.items():
        for k in range(shape[dim]):
            if k not in slices:
                synthetic[b].select(dim - 1, k).copy_(real[b].select(dim - 1, k))
    return synthetic, real, labels, fg


@pytest.mark.parametrize("slice_axis", [0, 1, 2])
def test_psnr_slice_equals_a_brute_force_loop_over_foreground_slices(slice_axis):
    synthetic, real, labels, fg = _labelled_volumes(slice_axis=slice_axis)
    s, r, lab = (v.double().numpy() for v in (synthetic, real, labels))
    expected = []
    for b in range(2):
        per_slice = []
        for k in range(s.shape[2 + slice_axis]):
            label_slice = np.take(lab[b, 0], k, axis=slice_axis)
            if not label_slice.any():
                continue  # empty slices are excluded
            mse = np.mean((np.take(s[b, 0], k, axis=slice_axis) - np.take(r[b, 0], k, axis=slice_axis)) ** 2)
            per_slice.append(10 * np.log10(1.0 / mse))
        assert len(per_slice) == len(fg[b])
        expected.append(np.mean(per_slice))
    got = SlicePSNRMetric(slice_axis=slice_axis)(synthetic, real, label_map=labels)
    assert got.shape == (2, 1)
    np.testing.assert_allclose(got[:, 0].numpy(), expected, rtol=1e-6)
    volume = PSNRMetric(max_val=1.0)(synthetic, real)[:, 0].numpy()
    assert np.all(np.abs(volume - np.asarray(expected)) > 1.0)  # not the volume PSNR
    # without a label map every slice counts; here the exact empty slices make it +inf
    assert torch.isinf(SlicePSNRMetric(slice_axis=slice_axis)(synthetic, real)).all()


def test_psnr_slice_of_a_volume_without_anatomy_is_nan_and_the_handler_passes_label_maps():
    synthetic, real, labels, _ = _labelled_volumes()
    labels[1] = 0
    got = SlicePSNRMetric()(synthetic, real, label_map=labels)
    assert torch.isfinite(got[0]).all() and torch.isnan(got[1]).all()

    # decollated lists through the handler: each volume with its own label map
    handler = LabelMapMetricHandler(SlicePSNRMetric(), output_transform=lambda x: x)
    handler.update((list(synthetic), list(real), list(labels)))
    torch.testing.assert_close(handler.metric_fn.get_buffer(), got, equal_nan=True)
    with pytest.raises(DataError, match="every volume needs its own"):
        handler.update((list(synthetic), list(real), list(labels)[:1]))
    with pytest.raises(DataError, match=r"\(y_pred, y\) or \(y_pred, y, label_map\)"):
        handler.update((synthetic,))
    with pytest.raises(DataError, match="label map .* differ in shape"):
        SlicePSNRMetric()(synthetic, real, label_map=labels[..., :-1])


@pytest.mark.parametrize("slice_axis", [0, 2])
def test_slice_ssim_on_foreground_slices_equals_a_loop_over_them(slice_axis):
    synthetic, real, labels, fg = _labelled_volumes(slice_axis=slice_axis)
    ssim2d = SSIMMetric(spatial_dims=2, data_range=1.0)
    expected = []
    for b in range(2):
        per_slice = [
            float(
                ssim2d(
                    synthetic[b : b + 1].select(2 + slice_axis, k), real[b : b + 1].select(2 + slice_axis, k)
                )
            )
            for k in fg[b]
        ]
        expected.append(sum(per_slice) / len(per_slice))
    metric = SliceSSIMMetric(slice_axis=slice_axis, slice_batch=4)
    got = metric(synthetic, real, label_map=labels)
    np.testing.assert_allclose(got[:, 0].numpy(), expected, rtol=1e-5)
    # the exact empty slices (SSIM 1) would raise the score if they counted
    assert (metric(synthetic, real) > got).all()


def test_coherence_on_foreground_slices_counts_pairs_of_foreground_neighbours():
    synthetic, real, labels, fg = _labelled_volumes(slice_axis=1)
    d_s = np.diff(synthetic.double().numpy(), axis=3)
    d_r = np.diff(real.double().numpy(), axis=3)
    expected = []
    for b in range(2):
        pairs = [k for k in fg[b] if k + 1 in fg[b]]  # (1, 2) for volume 1; 9 has no neighbour
        err = [np.mean((d_s[b, 0, :, k] - d_r[b, 0, :, k]) ** 2) for k in pairs]
        expected.append(10 * np.log10(1.0 / np.mean(err)))
    got = CoherenceMetric(slice_axis=1)(synthetic, real, label_map=labels)
    np.testing.assert_allclose(got[:, 0].numpy(), expected, rtol=1e-5)


def test_perceptual_slices_score_only_foreground_slices():
    class L1(torch.nn.Module):
        def forward(self, a, b):
            return (a - b).abs().mean(dim=(1, 2, 3), keepdim=True)

    synthetic, real, labels, fg = _labelled_volumes()
    got = PerceptualSliceMetric(L1(), "L1", slice_batch=2)(synthetic, real, label_map=labels)
    for b in range(2):
        per_slice = [float(2 * (synthetic[b, 0, ..., k] - real[b, 0, ..., k]).abs().mean()) for k in fg[b]]
        assert float(got[b]) == pytest.approx(np.mean(per_slice), rel=1e-5)


def test_baseline_handlers_copy_each_metric_with_its_settings():
    handlers = {
        "psnr_slice": LabelMapMetricHandler(SlicePSNRMetric(slice_axis=1)),
        "ssim": LabelMapMetricHandler(SliceSSIMMetric(slice_axis=1, win_size=7)),
        "psnr": IgniteMetricHandler(metric_fn=PSNRMetric(max_val=1.0)),
        "lpips": None,  # a disabled handler
    }
    copies = baseline_metric_handlers(handlers, "label_mean")
    assert list(copies) == ["label_mean/psnr_slice", "label_mean/ssim", "label_mean/psnr"]
    assert baseline_metric_name("label_mean", "psnr") == "label_mean/psnr"
    for name, handler in handlers.items():
        if handler is None:
            continue
        copy = copies[f"label_mean/{name}"]
        assert type(copy) is type(handler) and copy.save_details
        assert type(copy.metric_fn) is type(handler.metric_fn) and copy.metric_fn is not handler.metric_fn
    assert copies["label_mean/ssim"].metric_fn.kernel_size == handlers["ssim"].metric_fn.kernel_size
    assert copies["label_mean/ssim"].metric_fn.slice_axis == 1
    output = [{"label_mean": torch.zeros(1, 2, 2, 2), "label": torch.full((1, 2, 2, 2), 0.1),
               "image": torch.ones(1, 2, 2, 2), "pred": torch.ones(1, 2, 2, 2)}]  # fmt: skip
    y_pred, y, label_map = copies["label_mean/psnr_slice"]._output_transform(output)
    assert float(y_pred[0].sum()) == 0 and float(label_map[0].sum()) == 8  # the baseline, not pred


# ---- ST-LPIPS: in the standard install, shipped weights, blur raises it -------------------------


def test_stlpips_loads_every_weight_from_its_file():
    from stlpips_pytorch import stlpips

    from anatosynth_components.metrics.stlpips_metric import _weights_path

    model = load_stlpips("alex")
    stored = torch.load(_weights_path(stlpips, "alex"), map_location="cpu", weights_only=True)
    state = model.state_dict()
    for key, value in state.items():
        # the linear layers are held twice, as lin<i> (the file's names) and as the list lins.<i>
        _, index, rest = key.split(".", 2) if key.startswith("lins.") else ("", "", "")
        source = key if key in stored else f"lin{index}.{rest}"
        torch.testing.assert_close(value, stored[source], msg=key)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert stlpips_status()[0]
    assert unavailable_metrics(lpips=False) == {}  # part of the standard install


def test_stlpips_is_zero_for_identical_slices_and_grows_with_blur(real_brain):
    """Real axial slices of the brain (foreground slices): 0 for a copy, then sigma 1 < 2 < 4."""
    from scipy.ndimage import gaussian_filter

    vol = torch.from_numpy(real_brain["vol"][:, :, 100:124:6]).float()  # 4 slices of 160 x 192
    seg = torch.from_numpy(real_brain["seg"][:, :, 100:124:6].astype(np.float32))
    real, labels = vol[None, None], seg[None, None]
    metric = STLPIPSMetric(slice_axis=2, slice_batch=4)
    assert float(metric(real, real, label_map=labels)) == pytest.approx(0.0, abs=1e-6)
    scores = []
    for sigma in (1.0, 2.0, 4.0):
        blurred = np.stack([gaussian_filter(vol[..., k].numpy(), sigma) for k in range(vol.shape[-1])], -1)
        scores.append(float(metric(torch.from_numpy(blurred)[None, None], real, label_map=labels)))
    print("ST-LPIPS of blurred copies (sigma 1, 2, 4):", scores)
    assert 0 < scores[0] < scores[1] < scores[2], scores
    with pytest.raises(DataError, match="smaller than the 21 x 21"):
        metric(real[:, :, :16, :16], real[:, :, :16, :16])
