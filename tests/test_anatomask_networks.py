"""AnatoMaskGAN networks: shapes, GNN-SIF slice coupling, 3-D noise consistency and diversity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anatosynth_components.anatomask import (
    AnatoMaskDiscriminator,
    AnatoMaskGenerator,
    noise3d,
    slice_adjacency,
)
from anatosynth_components.anatomask.gnn_sif import area_downsample
from anatosynth_components.anatomask.noise3d import gaussian_kernel, noise3d_static

TINY = {"spatial_size": (32, 32), "base_channels": 8, "channel_mults": (4, 4, 2, 1), "spade_hidden": 16}


def one_hot(labels: torch.Tensor, k: int) -> torch.Tensor:
    """(B, n, H, W) ids -> (B, K, n, H, W) one-hot."""
    return torch.nn.functional.one_hot(labels, k).permute(0, 4, 1, 2, 3).float()


def blob_masks(b: int, n: int, k: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Smooth random label maps (blocks of 8 pixels), so masks look like anatomy, not noise."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, k, (b, n, size // 8, size // 8), generator=g)
    return one_hot(coarse.repeat_interleave(8, -1).repeat_interleave(8, -2), k)


@pytest.mark.parametrize(("n", "k"), [(3, 4), (5, 7)])
def test_shapes_and_range(n, k):
    torch.manual_seed(0)
    g = AnatoMaskGenerator(k, n, **TINY)
    masks = blob_masks(2, n, k)
    z = torch.stack([torch.arange(n), torch.arange(10, 10 + n)])
    out = g(masks, z, torch.tensor([1, 2]))
    assert out.shape == (2, 1, n, 32, 32)
    assert out.min() >= 0 and out.max() <= 1 and out.std() > 0
    d = AnatoMaskDiscriminator(k, num_d=2, num_layers_d=2, channels=8)
    logits, feats = d(masks, out)
    assert [tuple(x.shape[:2]) for x in logits] == [(2 * n, 1)] * 2 and len(feats) == 2
    with pytest.raises(ValueError, match="expected masks"):
        g(blob_masks(1, n, k + 1), z[:1])


def test_paper_configuration_builds():
    g = AnatoMaskGenerator(36, 5, spatial_size=(224, 224))  # 64 base channels, 7x7 -> 224x224
    assert g.sizes[0] == (7, 7) and g.sizes[-1] == (224, 224)
    assert set(g.gnn) == {"0"} and set(g.noise) == {"0", "1", "2"}  # GNN-SIF at 7 px, noise on 7, 14, 28 px
    g2 = AnatoMaskGenerator(5, 3, gnn_levels=2, **TINY)  # a second GNN-SIF level, fed by a projection
    out = g2(blob_masks(1, 3, 5), torch.arange(3)[None])
    assert set(g2.gnn) == {"0", "1"} and out.shape == (1, 1, 3, 32, 32)


@pytest.mark.parametrize("use_gnn_sif", [True, False])
def test_gnn_sif_couples_slices(use_gnn_sif):
    torch.manual_seed(1)
    g = AnatoMaskGenerator(
        5, 4, use_gnn_sif=use_gnn_sif, use_noise3d=False, **TINY
    ).eval()  # fixed spectral norm
    masks = blob_masks(1, 4, 5, seed=3)
    z = torch.arange(4)[None]
    base = g(masks, z)
    changed = masks.clone()
    changed[:, :, 1] = blob_masks(1, 1, 5, seed=99)[:, :, 0]  # new mask for slice j = 1 only
    out = g(changed, z)
    others = (out - base)[:, :, [0, 2, 3]].abs().max().item()
    assert (out - base)[:, :, 1].abs().max() > 1e-3  # slice 1 itself changes either way
    if use_gnn_sif:
        assert others > 1e-4  # features travel between slices
    else:
        assert others < 1e-6  # per-slice SPADE


def test_adjacency_decays_with_distance_and_uses_masks():
    a = slice_adjacency(torch.arange(5)[None], max_distance=2)[0]
    assert a[2, 3] > a[2, 4] > 0 and a[0, 3] == 0  # adjacent > distant > none beyond max_distance
    assert torch.allclose(a, a.T) and (a[:5, 5] > 0).all()  # symmetric, global node joined to all
    same = one_hot(torch.zeros(1, 3, 8, 8, dtype=torch.long), 3)
    other = same.clone()
    other[:, :, 2] = one_hot(torch.ones(1, 1, 8, 8, dtype=torch.long), 3)[:, :, 0]
    z = torch.arange(3)[None]
    assert slice_adjacency(z, other)[0, 1, 2] < slice_adjacency(z, same)[0, 1, 2]


def test_noise_is_a_function_of_the_voxel_coordinate():
    seed = torch.tensor([5, 5])
    z = torch.stack([torch.arange(0, 8), torch.arange(5, 13)])  # stacks share slices 5, 6, 7
    noise = noise3d(seed, z, channels=4, size=(16, 16))
    assert torch.equal(noise[0, 5:], noise[1, :3])
    vol = noise3d(torch.tensor([5]), torch.arange(40)[None], channels=8, size=(24, 24))[0].numpy()

    def corr(dz: int) -> float:
        return float(
            np.mean([np.corrcoef(vol[i].ravel(), vol[i + dz].ravel())[0, 1] for i in range(40 - dz)])
        )

    assert corr(1) > 0.6 and abs(corr(6)) < 0.05  # sigma 1 slice: exp(-1/4) = 0.78 vs ~0
    other = noise3d(torch.tensor([6]), torch.arange(8)[None], channels=4, size=(16, 16))
    assert abs(np.corrcoef(other.ravel(), noise[0].ravel())[0, 1]) < 0.05


def test_export_noise_path_equals_the_eager_noise_and_area_pool_equals_interpolate():
    """The static-shape forms the ONNX export traces give the eager values: tap-sum noise (also for
    non-contiguous slices and anisotropic smoothing) and the average pool behind GNN-SIF's area
    downsampling."""
    seed, z = torch.tensor([3, 9]), torch.tensor([[10, 11, 12, 13, 14], [40, 2, 41, 7, 43]])
    sigma = (1.5, 1.0, 0.7)
    kernels = [gaussian_kernel(s) for s in sigma]
    static = noise3d_static(seed, z, 6, (12, 10), kernels, stream=2)
    torch.testing.assert_close(static, noise3d(seed, z, 6, (12, 10), sigma, stream=2), atol=1e-5, rtol=0)
    masks = torch.rand(2, 3, 5, 48, 40)
    for size in [(12, 10), (16, 8), (7, 9)]:
        ref = torch.nn.functional.interpolate(masks, size=(5, *size), mode="area")
        torch.testing.assert_close(area_downsample(masks, size), ref, atol=1e-6, rtol=0)


def test_overlapping_stacks_synthesise_identical_shared_slices():
    torch.manual_seed(2)
    g = AnatoMaskGenerator(5, 4, use_gnn_sif=False, use_noise3d=True, **TINY).eval()
    volume = blob_masks(1, 10, 5, seed=4)  # (1, K, 10, H, W), one volume
    seed = torch.tensor([11])
    a = g(volume[:, :, 2:6], torch.arange(2, 6)[None], seed)
    b = g(volume[:, :, 4:8], torch.arange(4, 8)[None], seed)
    torch.testing.assert_close(a[:, :, 2:], b[:, :, :2])  # slices 4 and 5


def test_seeds_give_different_images_for_one_mask():
    torch.manual_seed(3)
    g = AnatoMaskGenerator(5, 4, use_gnn_sif=True, use_noise3d=True, **TINY).eval()
    masks, z = blob_masks(1, 4, 5, seed=5), torch.arange(4)[None]
    x1, x1b, x2 = (
        g(masks, z, torch.tensor([1])),
        g(masks, z, torch.tensor([1])),
        g(masks, z, torch.tensor([2])),
    )
    torch.testing.assert_close(x1, x1b)
    assert (x1 - x2).abs().mean() > 1e-3
    g_off = AnatoMaskGenerator(5, 4, use_gnn_sif=True, use_noise3d=False, **TINY).eval()
    torch.testing.assert_close(g_off(masks, z, torch.tensor([1])), g_off(masks, z, torch.tensor([2])))
