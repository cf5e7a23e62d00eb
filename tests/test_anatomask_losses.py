"""AnatoMaskGAN losses and training step: G-TC, VGG start-up checks, Eq. 5, the four ablation variants."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_anatomask_networks import TINY, blob_masks, one_hot

from anatosynth_components.anatomask import (
    AnatoMaskDiscriminator,
    AnatoMaskGenerator,
    AnatoMaskLoss,
    GTCClassifier,
    GTCLoss,
    VGG19Loss,
    anatomask_train_step,
    gtc_descriptors,
)
from anatosynth_components.data.label_tables import get_label_table
from anatosynth_components.data.remap_labels import remap_labels
from anatosynth_components.errors import ConfigError

#: the four rows of the paper's Table II
ABLATION = {
    "spade": {"use_gnn_sif": False, "use_noise3d": False, "lambda_gtc": 0.0},
    "+gnn_sif": {"use_gnn_sif": True, "use_noise3d": False, "lambda_gtc": 0.0},
    "+noise3d": {"use_gnn_sif": True, "use_noise3d": True, "lambda_gtc": 0.0},
    "+gtc": {"use_gnn_sif": True, "use_noise3d": True, "lambda_gtc": 10.0},
}


def test_gtc_descriptors_match_hand_computation():
    image = torch.zeros(1, 1, 4, 4)
    image[0, 0, :, 2:] = 1.0  # a vertical edge
    masks = one_hot(torch.tensor([[[[0, 0, 1, 1]] * 4]]), 2)[:, :, 0]  # left half class 0, right class 1
    texture, gray, present = gtc_descriptors(image, masks, scales=1)
    assert present.tolist() == [[True, True]]
    # gray: mean, std, max, min per class
    torch.testing.assert_close(gray[0, 0], torch.tensor([0.0, 0.0, 0.0, 0.0]), atol=2e-3, rtol=0)
    torch.testing.assert_close(gray[0, 1], torch.tensor([1.0, 0.0, 1.0, 1.0]), atol=2e-3, rtol=0)
    # texture: Sobel magnitude is 4 on the two columns beside the edge, 0 elsewhere (replicate padding)
    torch.testing.assert_close(texture[0, 0], torch.tensor([2.0, 8**0.5]), atol=1e-3, rtol=0)


def test_gtc_loss_zero_for_identical_larger_for_blur_and_reaches_generator():
    torch.manual_seed(0)
    masks = blob_masks(1, 3, 4)
    real = torch.rand(1, 1, 3, 32, 32)
    gtc = GTCLoss(GTCClassifier(4))
    assert gtc.generator(masks, real.clone(), real).item() == 0.0
    blurred = torch.nn.functional.avg_pool3d(real, (1, 5, 5), stride=1, padding=(0, 2, 2))
    assert gtc.generator(masks, blurred, real).item() > 1e-4
    g = AnatoMaskGenerator(4, 3, use_gnn_sif=True, use_noise3d=True, **TINY)
    gtc.generator(masks, g(masks, torch.arange(3)[None]), real).backward()
    grads = [p.grad.abs().sum() for p in g.parameters() if p.grad is not None]
    assert len(grads) > 10 and sum(grads) > 0


def test_vgg_weights_missing_is_a_clear_startup_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match=r"vgg19-dcbb9e9d.pth.*lambda_vgg: 0"):
        AnatoMaskLoss(lambda_vgg=5.0, lambda_gtc=0.0)
    bogus = tmp_path / "bogus.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bogus)
    with pytest.raises(ConfigError, match=r"bogus.pth: not torchvision VGG19 weights"):
        VGG19Loss(bogus)
    AnatoMaskLoss(lambda_vgg=0.0, lambda_gtc=0.0)  # the documented way out needs no weights
    with pytest.raises(ConfigError, match="lambda_feat must be >= 0"):
        AnatoMaskLoss(lambda_feat=-1.0, lambda_vgg=0.0, lambda_gtc=0.0)
    with pytest.raises(ConfigError, match="lambda_gtc > 0 needs a G-TC loss"):
        AnatoMaskLoss(lambda_vgg=0.0, lambda_gtc=10.0)


@pytest.mark.parametrize("variant", list(ABLATION))
def test_ablation_variant_trains_one_step(variant):
    torch.manual_seed(0)
    cfg = ABLATION[variant]
    k, n = 4, 3
    g = AnatoMaskGenerator(k, n, use_gnn_sif=cfg["use_gnn_sif"], use_noise3d=cfg["use_noise3d"], **TINY)
    d = AnatoMaskDiscriminator(k, num_d=2, num_layers_d=2, channels=8)
    gtc = GTCLoss(GTCClassifier(k)) if cfg["lambda_gtc"] else None
    loss = AnatoMaskLoss(lambda_vgg=0.0, lambda_gtc=cfg["lambda_gtc"], gtc=gtc)
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.1, 0.9))
    opt_d = torch.optim.Adam(
        list(d.parameters()) + (list(gtc.parameters()) if gtc else []), 2e-4, betas=(0.1, 0.9)
    )
    before_g = [p.detach().clone() for p in g.parameters()]
    before_d = [p.detach().clone() for p in d.parameters()]
    masks, images, z = blob_masks(2, n, k), torch.rand(2, 1, n, 32, 32), torch.arange(n).repeat(2, 1)
    terms, fake = anatomask_train_step(masks, images, z, g, d, loss, opt_g, opt_d)
    assert fake.shape == images.shape and not fake.requires_grad
    assert all(np.isfinite(v) for v in terms.values())
    assert ("g_gtc" in terms) == bool(cfg["lambda_gtc"]) and "g_feat" in terms and "d_real" in terms
    assert any(not torch.equal(a, b) for a, b in zip(before_g, g.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(before_d, d.parameters(), strict=True))
    # the G step freezes D (and the G-TC classifier) only while it runs: both stay trainable
    assert all(p.requires_grad for p in d.parameters())
    assert gtc is None or all(p.requires_grad for p in gtc.parameters())


def test_tiny_generator_overfits_a_real_brain_stack(real_brain):
    """Capacity and gradient flow: a tiny full AnatoMaskGAN generator (GNN-SIF + 3D-SNI, fixed noise
    seed) fits one real 3-slice stack of the OASIS brain at 32 x 32 to PSNR > 32 dB within 60 Adam
    steps (L1 loss: the supervised part only, adversarial terms do not converge to a fixed image).
    The best image a function of the label alone can give (each class at its mean intensity) scores
    23.6 dB, so passing requires learning real within-class detail (measured: about 36 dB)."""
    torch.manual_seed(0)
    seg = remap_labels(real_brain["seg"][:, :, 110:113], get_label_table("aseg_to_oasis35"))
    vol = real_brain["vol"][:, :, 110:113]
    labels = torch.from_numpy(seg).long().permute(2, 0, 1)[None]  # (1, 3, 160, 192)
    image = torch.from_numpy(vol).float().permute(2, 0, 1)[None, None]  # (1, 1, 3, 160, 192)
    labels = torch.nn.functional.interpolate(labels[:, None].float(), size=(3, 32, 32), mode="nearest")[
        :, 0
    ].long()
    image = torch.nn.functional.interpolate(image, size=(3, 32, 32), mode="area")
    masks = one_hot(labels, 36)
    g = AnatoMaskGenerator(36, 3, **TINY)
    opt = torch.optim.Adam(g.parameters(), 2e-3)
    z, seed = torch.arange(110, 113)[None], torch.tensor([0])
    for _ in range(60):
        opt.zero_grad()
        loss = (g(masks, z, seed) - image).abs().mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        mse = ((g.eval()(masks, z, seed) - image) ** 2).mean().item()
    psnr = 10 * np.log10(1.0 / mse)
    lab, img = labels[0], image[0, 0]
    class_mean = torch.zeros_like(img)
    for c in lab.unique():
        class_mean[lab == c] = img[lab == c].mean()
    assert 10 * np.log10(1.0 / ((class_mean - img) ** 2).mean().item()) < 25.0
    assert psnr > 32.0, psnr
