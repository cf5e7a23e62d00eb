"""Whole-volume synthesis metrics against hand-computed and brute-force values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.metrics import PSNRMetric, SSIMMetric

from anatosynth_components.errors import ConfigError, DataError
from anatosynth_components.metrics import (
    CoherenceMetric,
    LPIPSMetric,
    SliceSSIMMetric,
    STLPIPSMetric,
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


def test_stlpips_reported_unavailable_when_not_installed():
    try:
        import stlpips_pytorch  # noqa: F401

        pytest.skip("stlpips-pytorch is installed here")
    except ImportError:
        pass
    ok, reason = stlpips_status()
    assert not ok and "stlpips-pytorch" in reason
    with pytest.raises(ConfigError, match="ST-LPIPS unavailable"):
        STLPIPSMetric()
    assert "st_lpips" in unavailable_metrics(lpips=False)
