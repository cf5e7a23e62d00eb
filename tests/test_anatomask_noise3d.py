"""3D-SNI noise: the batched, device-side ``noise3d`` gives the values of the per-item loop it replaced."""

from __future__ import annotations

import pytest
import torch

from anatosynth_components.anatomask.noise3d import NoiseInjection3D, gaussian_kernel, hash_normal, noise3d


def loop_noise3d(seed, z_index, channels, size, sigma=(1.0, 1.0, 1.0), stream=0):
    """The former implementation, kept as the brute-force reference: per item, hash the window of
    slices from min(z) - rz to max(z) + rz on the CPU, smooth it "valid" in z, y and x, pick the
    item's slices."""
    h, w = (int(s) for s in size)
    kernels = [gaussian_kernel(float(s)) for s in sigma]
    rz, ry, rx = (len(k) // 2 for k in kernels)
    out = []
    for b in range(z_index.shape[0]):
        z = z_index[b].long().cpu()
        z0, z1 = int(z.min()) - rz, int(z.max()) + rz
        cc = torch.arange(channels).view(-1, 1, 1, 1)
        zz = torch.arange(z0, z1 + 1).view(1, -1, 1, 1)
        yy = torch.arange(-ry, h + ry).view(1, 1, -1, 1)
        xx = torch.arange(-rx, w + rx).view(1, 1, 1, -1)
        smooth = hash_normal(seed[b].cpu(), torch.tensor(stream), cc, zz, yy, xx)
        for dim, kernel in enumerate(kernels, start=1):
            smooth = smooth.unfold(dim, len(kernel), 1) @ kernel
        out.append(smooth[:, z - z0 - rz].transpose(0, 1))
    return torch.stack(out).to(z_index.device)


@pytest.mark.parametrize(
    ("sigma", "size", "contiguous"),
    [((1.0, 1.0, 1.0), (7, 7), True), ((1.0, 1.0, 1.0), (12, 10), False), ((1.5, 0.7, 2.0), (9, 14), False)],
)
def test_batched_noise_equals_the_per_item_loop(sigma, size, contiguous):
    """Random stacks (contiguous windows as training cuts them, or arbitrary slices with gaps,
    repeats and any order), random seeds, several streams: the same values as the loop."""
    gen = torch.Generator().manual_seed(int(sum(size) + 10 * sigma[0]))
    b, n = 6, 5
    seed = torch.randint(0, 2**31 - 1, (b,), generator=gen)
    if contiguous:
        z = torch.randint(0, 180, (b, 1), generator=gen) + torch.arange(n)
    else:
        z = torch.randint(0, 60, (b, n), generator=gen)
    for stream in (0, 3):
        ref = loop_noise3d(seed, z, 4, size, sigma, stream)
        torch.testing.assert_close(noise3d(seed, z, 4, size, sigma, stream), ref, atol=1e-5, rtol=0)


def test_noise_needs_no_values_on_the_host():
    """On the ``meta`` device tensors have shapes but no values: any ``.item()``, ``int(tensor)``
    or ``.cpu()`` of the indices or seeds would fail there, and no shape may depend on a value.
    The injection layer draws its noise on the features' device whatever device the indices are on."""
    seed = torch.zeros(3, dtype=torch.long, device="meta")
    z = torch.zeros(3, 5, dtype=torch.long, device="meta")
    out = noise3d(seed, z, 4, (8, 6), (1.5, 1.0, 0.7), stream=2)
    assert out.device.type == "meta" and out.shape == (3, 5, 4, 8, 6) and out.dtype == torch.float32
    inject = NoiseInjection3D(6, noise_channels=4).to("meta")
    h = torch.zeros(15, 6, 8, 8, device="meta")
    assert (
        inject(h, torch.zeros(3, dtype=torch.long), torch.zeros(3, 5, dtype=torch.long)).device.type == "meta"
    )


def test_noise_path_is_scriptable():
    """``noise3d_static`` (the computation behind ``noise3d``) compiles with TorchScript and gives the
    eager values, so an exported network can keep its noise path."""
    import importlib

    module = importlib.import_module("anatosynth_components.anatomask.noise3d")
    scripted = torch.jit.script(module.noise3d_static)
    seed, z = torch.tensor([3, 9]), torch.tensor([[10, 11, 12, 13, 14], [40, 2, 41, 7, 43]])
    kernels = [gaussian_kernel(s) for s in (1.5, 1.0, 0.7)]
    torch.testing.assert_close(
        scripted(seed, z, 6, (12, 10), kernels, 2), noise3d(seed, z, 6, (12, 10), (1.5, 1.0, 0.7), 2)
    )
