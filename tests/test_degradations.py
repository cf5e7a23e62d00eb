"""The reconstruction degradations match their definitions: the downsampling factor and the exact
bilinear downsampling of a linear ramp, the blur sigma measured from an impulse response's second
moment, the noise sigma measured on the output."""

from __future__ import annotations

import pytest
import torch

from anatosynth_components.data.degradations import (
    PAPER_TASKS,
    add_gaussian_noise,
    degrade,
    downsample,
    gaussian_blur,
    parse_task,
)
from anatosynth_components.errors import ConfigError, DataError


@pytest.mark.parametrize("factor", [2, 4])
def test_bilinear_downsampling_of_a_ramp_is_exact(factor):
    h, w = 32, 48
    i = torch.arange(h, dtype=torch.float64)[:, None]
    j = torch.arange(w, dtype=torch.float64)[None, :]
    ramp = (0.01 * i + 0.003 * j + 0.1).expand(h, w)[None, None].clone()
    out = downsample(ramp, factor)
    assert out.shape == (1, 1, h // factor, w // factor)
    # output pixel k samples the input at factor * k + (factor - 1) / 2 (half-pixel centres)
    ci = factor * torch.arange(h // factor, dtype=torch.float64)[:, None] + (factor - 1) / 2
    cj = factor * torch.arange(w // factor, dtype=torch.float64)[None, :] + (factor - 1) / 2
    torch.testing.assert_close(out[0, 0], 0.01 * ci + 0.003 * cj + 0.1, atol=1e-12, rtol=0)


def test_trilinear_downsampling_and_bad_sizes():
    x = torch.rand(2, 1, 8, 12, 16, dtype=torch.float64)
    out = downsample(x, 4)
    assert out.shape == (2, 1, 2, 3, 4)
    # a block mean for factor 2 (bilinear with half-pixel centres averages each 2 x 2 x 2 block)
    torch.testing.assert_close(downsample(x, 2), torch.nn.functional.avg_pool3d(x, 2))
    with pytest.raises(DataError, match="not a multiple of the factor 4"):
        downsample(torch.rand(1, 1, 30, 32), 4)
    with pytest.raises(DataError, match="expected a batch"):
        downsample(torch.rand(30, 32), 2)


@pytest.mark.parametrize("sigma", [1.0, 2.0, 5.0])
def test_blur_sigma_measured_from_the_impulse_response(sigma):
    size = 65
    impulse = torch.zeros(1, 1, size, size, dtype=torch.float64)
    impulse[0, 0, size // 2, size // 2] = 1.0
    response = gaussian_blur(impulse, sigma)[0, 0]
    assert float(response.sum()) == pytest.approx(1.0, abs=1e-6)  # normalised (float32) kernel
    coords = torch.arange(size, dtype=torch.float64) - size // 2
    for axis in (0, 1):
        marginal = response.sum(dim=1 - axis)
        mean = float((marginal * coords).sum())
        variance = float((marginal * (coords - mean) ** 2).sum())
        assert mean == pytest.approx(0.0, abs=1e-9)
        assert variance**0.5 == pytest.approx(sigma, rel=0.01)
    # isotropic and separable: the response is the outer product of its marginals
    torch.testing.assert_close(response, torch.outer(response.sum(1), response.sum(0)))


def test_blur_keeps_a_constant_image_and_rejects_small_images():
    flat = torch.full((1, 1, 24, 24), 0.4)
    torch.testing.assert_close(gaussian_blur(flat, 5.0), flat)  # reflected borders: no darkening
    with pytest.raises(DataError, match="too small for sigma 5"):
        gaussian_blur(torch.rand(1, 1, 16, 16), 5.0)


@pytest.mark.parametrize("sigma", [0.1, 0.2, 0.5])
def test_noise_sigma_measured_on_the_output(sigma):
    clean = torch.full((1, 1, 256, 256), 0.5, dtype=torch.float64)
    noisy = add_gaussian_noise(clean, sigma, generator=torch.Generator().manual_seed(0))
    residual = noisy - clean
    assert float(residual.std()) == pytest.approx(sigma, rel=0.02)
    assert abs(float(residual.mean())) < 4 * sigma / 256  # mu = 0 within 4 standard errors
    if sigma == 0.5:
        assert float(noisy.min()) < 0 and float(noisy.max()) > 1  # not clipped
    again = add_gaussian_noise(clean, sigma, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(noisy, again)  # seeded: the test inputs are reproducible


def test_task_names():
    assert [parse_task(t).kind for t in PAPER_TASKS] == ["sr"] * 2 + ["blur"] * 3 + ["noise"] * 3
    assert (
        parse_task("sr4").scale == 4
        and parse_task("noise0.5").level == 0.5
        and parse_task("blur2").scale == 1
    )
    for bad in ("sr1.5", "sr1", "warp2", "blur"):
        with pytest.raises(ConfigError):
            parse_task(bad)
    x = torch.rand(1, 1, 32, 32)
    assert degrade(x, "sr2").shape == (1, 1, 16, 16)
