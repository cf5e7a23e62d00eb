"""ACIS networks (paper Sec. 2.2): shapes and ranges in 2-D and 3-D, the discriminator's use of every
channel of the triple, seeded latents, TorchScript export of the one-tensor chain, bad sizes."""

from __future__ import annotations

import pytest
import torch

from anatosynth_components.acis import (
    AcisPairGenerator,
    AnnotationGenerator,
    ImageDiscriminator,
    ImageGenerator,
    PseudoMaskCritic,
    PseudoMaskGenerator,
    label_one_hot,
)
from anatosynth_components.errors import ConfigError, DataError

TINY = {
    "latent_channels": 3,
    "pm_channels": (8, 8, 4),
    "annotation_channels": (4, 8, 8),
    "image_channels": (4, 8, 8),
    "num_res_units": 1,
}
SIZES = {2: (32, 24), 3: (16, 16, 16)}
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("dims", [2, 3])
def test_chain_shapes_ranges_and_latent(dims):
    size = SIZES[dims]
    net = AcisPairGenerator(dims, size, num_classes=4, **TINY).eval()
    assert net.latent_shape(2) == (2, 3, *(s // 4 for s in size))  # two x2 levels: latent = size / 4
    z = net.sample_latent(2, seed=11)
    assert torch.equal(z, net.sample_latent(2, seed=11)) and not torch.equal(z, net.sample_latent(2, seed=12))
    with torch.no_grad():
        out = net(z)
        stages = net.synthesize(z)
    assert out.shape == (2, 2, *size)
    image, ids = out[:, :1], out[:, 1:]
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert torch.equal(ids, ids.round()) and set(ids.unique().tolist()) <= {0.0, 1.0, 2.0, 3.0}
    # forward equals the stages of synthesize, and the one-hot given to the image generator is the saved ids'
    assert torch.equal(out[:, :1], stages["image"]) and torch.equal(ids.long(), stages["labels"])
    assert torch.equal(stages["annotation"], label_one_hot(stages["labels"], 4))
    pm = stages["pseudo_mask"]
    assert pm.shape == (2, 1, *size) and 0.0 <= float(pm.min()) and float(pm.max()) <= 1.0
    # a different latent gives a different pair
    with torch.no_grad():
        other = net(net.sample_latent(2, seed=12))
    assert not torch.allclose(other[:, 0], out[:, 0])


@pytest.mark.parametrize("dims", [2, 3])
def test_parts_shapes(dims):
    size = SIZES[dims]
    x = torch.rand(2, 1, *size)
    g = PseudoMaskGenerator(dims, size, latent_channels=2, channels=(4, 4))
    assert g(torch.randn(g.latent_shape(2))).shape == (2, 1, *size)
    assert AnnotationGenerator(dims, 5, channels=(4, 8), strides=(2,))(x).shape == (2, 5, *size)
    y = ImageGenerator(dims, 5, channels=(4, 8), strides=(2,))(torch.cat([x, torch.rand(2, 5, *size)], 1))
    assert y.shape == (2, 1, *size) and 0 <= float(y.min()) and float(y.max()) <= 1
    assert PseudoMaskCritic(dims, channels=4, num_layers=2)(x).shape == (2,)
    critic = PseudoMaskCritic(dims, channels=4, num_layers=2)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in critic.modules())


@pytest.mark.parametrize("dims", [2, 3])
def test_discriminator_judges_every_member_of_the_triple(dims):
    size = SIZES[dims]
    d = ImageDiscriminator(dims, num_classes=3, channels=4, num_layers=2).eval()
    image, pm = torch.rand(1, 1, *size), torch.rand(1, 1, *size)
    labels = torch.zeros(1, 1, *size, dtype=torch.long)
    labels[..., : size[-1] // 2] = 2
    onehot = label_one_hot(labels, 3)
    with torch.no_grad():
        base = d(image, pm, onehot)
        swapped = labels.clone()
        swapped[labels == 2], swapped[labels == 0] = 1, 2  # same image, contradicting annotation
        assert not torch.allclose(base, d(image, pm, label_one_hot(swapped, 3)))
        assert not torch.allclose(base, d(image, torch.rand_like(pm), onehot))
        assert not torch.allclose(base, d(torch.rand_like(image), pm, onehot))
    with pytest.raises(ValueError, match="annotation has 2 channels, expected 3"):
        d(image, pm, onehot[:, :2])


def test_torchscript_export_matches_eager(tmp_path):
    """``torch.jit.script`` (compiling MONAI's UNet takes seconds, so 2-D only) and ``torch.jit.trace``
    (3-D) of the bundle's network_def give the eager output exactly."""
    net = AcisPairGenerator(2, SIZES[2], num_classes=3, **TINY).eval()
    z = net.sample_latent(1, seed=3)
    torch.jit.save(torch.jit.script(net), str(tmp_path / "net.ts"))
    loaded = torch.jit.load(str(tmp_path / "net.ts"))
    net3 = AcisPairGenerator(3, SIZES[3], num_classes=3, **TINY).eval()
    z3 = net3.sample_latent(1, seed=3)
    with torch.no_grad():
        assert torch.equal(loaded(z), net(z))
        assert torch.equal(torch.jit.trace(net3, z3)(z3), net3(z3))


def test_bad_sizes_are_config_errors():
    with pytest.raises(ConfigError, match=r"spatial_size \[30, 32\]: every size must be divisible by 4"):
        AcisPairGenerator(2, (30, 32), num_classes=3, **TINY)
    with pytest.raises(ConfigError, match="spatial_size must be 3 positive sizes"):
        AcisPairGenerator(3, (32, 32), num_classes=3, **TINY)
    with pytest.raises(ConfigError, match="spatial_dims must be 2 or 3"):
        PseudoMaskGenerator(1, (32,))
    with pytest.raises(ConfigError, match="num_classes must be >= 2"):
        AnnotationGenerator(2, 1)
    with pytest.raises(DataError, match=r"annotation: label ids \[5\] are outside 0..2 \(num_classes=3\)"):
        label_one_hot(torch.tensor([[[0, 5]]]), 3)
