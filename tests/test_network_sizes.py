"""Sizes are checked at start-up (issue 17, item 3): every network says, before the first step, when
``spatial_size``, its depth and ``num_slices`` do not fit, which keys to change and to what.  For each
network the smallest size the message names trains, and the size below it really fails in torch (the
check switched off), so the checks refuse exactly the sizes torch cannot run."""

from __future__ import annotations

import pytest
import torch
from bundle_runs import config, run_bundle
from monai.networks.nets import PatchDiscriminator

from anatosynth_components.acis import (
    AcisPairGenerator,
    AcisSynthesisLoss,
    AcisTrainer,
    AnnotationGenerator,
    ImageDiscriminator,
    PseudoMaskCritic,
    WGANGPLoss,
)
from anatosynth_components.acis import pair_generator as pair_module
from anatosynth_components.acis.pseudomask_generator import PseudoMaskGenerator
from anatosynth_components.acis.refinement import (
    AcisRefiner,
    DiffeomorphicRegistration,
    RegistrationLoss,
    RegistrationTrainer,
)
from anatosynth_components.anatomask import (
    AnatoMaskDiscriminator,
    AnatoMaskGenerator,
    AnatoMaskLoss,
    AnatoMaskNet,
    AnatoMaskTrainer,
    GTCClassifier,
    GTCLoss,
)
from anatosynth_components.data.demo.generate import generate_demo
from anatosynth_components.errors import ConfigError
from anatosynth_components.experiments.networks import ESRT, REDCNN
from anatosynth_components.network_size import patch_gan_layers, smallest_size

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: the paper's depth (channel_mults of 6 entries) at the narrowest width
PAPER_DEPTH = {"base_channels": 1, "spade_hidden": 4, "gnn_hidden": 4, "noise_channels": 2}
TORCH_INSTANCE_NORM = "Expected more than 1 spatial element"


def masks_batch(size: tuple[int, int], k: int = 3, n: int = 2, b: int = 1) -> dict[str, torch.Tensor]:
    """A batch of the trainer's format: label ids, images and slice indices of (b, n, *size) stacks."""
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, k, (b, 1, n, *size), generator=g).float()
    return {
        "label": labels,
        "image": torch.rand(b, 1, n, *size, generator=g),
        "z_index": torch.arange(n)[None],
    }


def anatomask_trainer(size: tuple[int, int], disc_layers: int = 3, **generator: object) -> AnatoMaskTrainer:
    """The bundle's trainer (D + G-TC step, then G step) over one batch of ``size`` stacks."""
    torch.manual_seed(0)
    net = AnatoMaskNet(3, 2, size, **generator)
    disc = AnatoMaskDiscriminator(3, num_layers_d=disc_layers, channels=2)
    gtc = GTCLoss(GTCClassifier(3, hidden=4, embed=2))
    loss = AnatoMaskLoss(lambda_vgg=0.0, gtc=gtc)
    opt_g = torch.optim.Adam(net.parameters(), 1e-4)
    opt_d = torch.optim.Adam([*disc.parameters(), *gtc.parameters()], 1e-4)
    return AnatoMaskTrainer("cpu", 1, [masks_batch(size)], net, disc, loss, opt_g, opt_d, amp=False)


def runs_in_torch(step, *args) -> bool:
    """Whether ``step(*args)`` runs; only torch's size errors count as not running."""
    try:
        step(*args)
    except (RuntimeError, ValueError) as err:
        assert "size" in str(err) or "spatial element" in str(err), err
        return False
    return True


def accepts(check, *args) -> bool:
    """Whether the size check ``check(*args)`` passes (False on its ``ConfigError``)."""
    try:
        check(*args)
    except ConfigError:
        return False
    return True


def unchecked(monkeypatch, *targets) -> None:
    """Switch the size checks of ``targets`` (classes with ``check_size``) off, to see what torch does."""
    for cls in targets:
        monkeypatch.setattr(cls, "check_size", lambda self, *args, **kwargs: None)


# ---- AnatoMaskGAN generator ---------------------------------------------------------------------


def test_generator_at_default_depth_names_the_smallest_size_and_the_longest_channel_mults():
    with pytest.raises(ConfigError) as err:
        AnatoMaskGenerator(3, 2, (32, 32), **PAPER_DEPTH)
    assert str(err.value) == (
        "spatial_size [32, 32] is too small for channel_mults of 6 entries (5 halvings: 1 x 1 at the lowest "
        "level), where instance norm needs more than one value: use spatial_size of at least [64, 64] (each "
        "side a multiple of 32) or at most 5 entries in channel_mults"
    )
    with pytest.raises(ConfigError, match=r"^spatial_size \[64, 64\] is too small .* at most 6 entries in"):
        AnatoMaskNet(3, 2, (64, 64), base_channels=1, channel_mults=(16,) * 7)  # the bundles' network_def
    with pytest.raises(ConfigError, match=r"^spatial_size \[48, 48\]: every size must be divisible by 32 "):
        AnatoMaskGenerator(3, 2, (48, 48), **PAPER_DEPTH)
    with pytest.raises(ConfigError, match=r"\[16, 16\] are not: use \[64, 64\], or a channel_mults with"):
        AnatoMaskGenerator(3, 2, (16, 16), **PAPER_DEPTH)  # [32, 32] is a multiple but too small


def test_generator_minimum_trains_and_the_size_below_fails_in_torch(monkeypatch):
    trainer = anatomask_trainer((64, 64), **PAPER_DEPTH)  # the size the message names
    trainer.run()
    assert trainer.state.iteration == 1 and trainer.state.output["pred"].shape[-2:] == (64, 64)
    unchecked(monkeypatch, AnatoMaskGenerator)
    below = AnatoMaskGenerator(3, 2, (32, 32), **PAPER_DEPTH)
    with pytest.raises(ValueError, match=TORCH_INSTANCE_NORM):
        below(masks_batch((32, 32))["image"].expand(1, 3, 2, 32, 32), torch.arange(2)[None])


@pytest.mark.parametrize("mults", [(2, 1), (4, 2, 1), (4, 4, 2, 1)])
def test_generator_check_agrees_with_torch(monkeypatch, mults):
    """Square and oblong sizes around the limit: the check passes exactly where a forward and backward
    pass runs (1 x 2 at the lowest level is enough: the rule is not stricter than torch)."""
    factor = 2 ** (len(mults) - 1)
    sizes = [(factor * a, factor * b) for a, b in [(1, 1), (1, 2), (2, 1), (2, 2), (1, 3)]]
    kwargs = {"base_channels": 8, "channel_mults": mults, "spade_hidden": 4, "gnn_hidden": 4}
    for size in sizes:
        accepted = accepts(lambda size=size: AnatoMaskGenerator(3, 2, size, **kwargs))
        with monkeypatch.context() as m:
            unchecked(m, AnatoMaskGenerator)
            g = AnatoMaskGenerator(3, 2, size, **kwargs)
            masks = torch.zeros(1, 3, 2, *size)
            runs = runs_in_torch(lambda g=g, masks=masks: g(masks, torch.arange(2)[None]).mean().backward())
        assert accepted == runs, (mults, size)


def test_generator_divisibility_num_slices_and_gnn_channels():
    with pytest.raises(ConfigError) as err:
        AnatoMaskGenerator(3, 2, (100, 100), **PAPER_DEPTH)
    assert str(err.value) == (
        "spatial_size [100, 100]: every size must be divisible by 32 (channel_mults has 6 entries: 5 "
        "halvings down to the lowest level); [100, 100] are not: use [96, 96] or [128, 128], or a "
        "channel_mults with fewer entries"
    )
    with pytest.raises(ConfigError, match=r"^num_slices must be an integer >= 1, got 0$"):
        AnatoMaskGenerator(3, 0, (64, 64), **PAPER_DEPTH)
    with pytest.raises(
        ConfigError, match=r"^use_gnn_sif needs base_channels \* channel_mults\[0\] divisible by 8"
    ):
        AnatoMaskGenerator(3, 2, (32, 32), base_channels=1, channel_mults=(4, 2, 1))
    with pytest.raises(ConfigError, match=r"^spatial_size must be 2 positive sizes, got \[64, 64, 8\]$"):
        AnatoMaskGenerator(3, 2, (64, 64, 8), **PAPER_DEPTH)


def test_bundle_run_stops_at_start_up_and_names_the_keys(tmp_path):
    """``--spatial_size "[32,32]"`` with the default depth, as the issue reports it, then with a shallow
    generator and the default discriminator: each run stops before its first step, naming the keys."""
    data = generate_demo("brain", tmp_path / "data", subjects=4, shape=(40, 48, 20), progress=False)
    train = config("anatomask_oasis", "train")
    common = {"dataset_dir": str(data), "spatial_size": "[32,32]", "lambda_vgg": "0"}
    proc = run_bundle(tmp_path, train, "training", tmp_path / "a", check=False, **common)
    assert proc.returncode != 0 and TORCH_INSTANCE_NORM not in proc.stderr
    assert (
        "spatial_size [32, 32] is too small for channel_mults of 6 entries (5 halvings: 1 x 1 at the lowest "
        "level), where instance norm needs more than one value: use spatial_size of at least [64, 64] (each "
        "side a multiple of 32) or at most 5 entries in channel_mults"
    ) in proc.stderr
    shallow = {"channel_mults": "[4,2,1]", "base_channels": "8"}
    proc = run_bundle(tmp_path, train, "training", tmp_path / "b", check=False, **common, **shallow)
    assert proc.returncode != 0 and TORCH_INSTANCE_NORM not in proc.stderr
    assert (
        "spatial_size [32, 32] is too small for the discriminator's disc_layers (num_layers_d) 3 at scale 2 "
        "of 2 (16 x 16 input): layer 4 of 5 gives 1 x 1 features (instance norm needs more than one value): "
        "use spatial_size of at least [48, 48] (each side a multiple of 4) or disc_layers 2"
    ) in proc.stderr
    assert not list((tmp_path / "b").glob("models/*.pt"))


# ---- AnatoMaskGAN discriminator and G-TC --------------------------------------------------------


def test_patch_gan_layers_are_monais():
    """The layer list the checks compute with is the one MONAI builds (kernel, stride, padding, norm)."""
    for layers in (1, 3):
        net = PatchDiscriminator(2, 4, 2, num_layers_d=layers, norm="INSTANCE")
        built = [
            (
                c.conv.kernel_size[0],
                c.conv.stride[0],
                c.conv.padding[0],
                hasattr(c, "adn") and "N" in c.adn._modules,
            )
            for c in net.children()
        ]
        assert built == [tuple(layer) for layer in patch_gan_layers(layers)]


def test_discriminator_names_disc_layers_and_the_smallest_size():
    d = AnatoMaskDiscriminator(3, channels=2)
    with pytest.raises(ConfigError) as err:
        d.check_size((32, 32), 4)
    assert str(err.value) == (
        "spatial_size [32, 32] is too small for the discriminator's disc_layers (num_layers_d) 3 at scale 2 "
        "of 2 (16 x 16 input): layer 4 of 5 gives 1 x 1 features (instance norm needs more than one value): "
        "use spatial_size of at least [48, 48] (each side a multiple of 4) or disc_layers 2"
    )
    d.check_size((47, 47))  # the true minimum of the default 3 layers, without the generator's multiple
    with pytest.raises(ConfigError, match=r"at least \[47, 47\] or disc_layers 2$"):
        d.check_size((46, 46))


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_discriminator_check_agrees_with_torch(layers):
    d = AnatoMaskDiscriminator(3, num_layers_d=layers, channels=2)
    for h in range(4, 52):
        for size in ((h, h), (h, h + 3)):
            masks, images = torch.zeros(1, 3, 1, *size), torch.zeros(1, 1, 1, *size)
            runs = runs_in_torch(lambda m=masks, i=images: d(m, i)[0][-1].mean().backward())
            assert accepts(d.check_size, size) == runs, (layers, size)


def test_trainer_checks_the_discriminator_at_start_up_and_the_minimum_trains(monkeypatch):
    expected = (
        r"^spatial_size \[32, 32\] is too small for the discriminator's disc_layers .*: use spatial_size "
        r"of at least \[48, 48\] \(each side a multiple of 4\) or disc_layers 2$"
    )
    with pytest.raises(ConfigError, match=expected):
        anatomask_trainer((32, 32), base_channels=8, channel_mults=(4, 2, 1))
    trainer = anatomask_trainer((48, 48), base_channels=8, channel_mults=(4, 2, 1))
    trainer.run()
    assert trainer.state.iteration == 1
    unchecked(monkeypatch, AnatoMaskDiscriminator)
    trainer = anatomask_trainer((44, 44), base_channels=8, channel_mults=(4, 2, 1))
    with pytest.raises(ValueError, match=TORCH_INSTANCE_NORM):
        trainer.run()


def test_gtc_needs_its_coarsest_pooling():
    with pytest.raises(ConfigError) as err:
        GTCClassifier(3).check_size((2, 8))
    assert str(err.value) == (
        "spatial_size [2, 8] is too small for G-TC's 3 scales (the coarsest average-pools the image by 4): "
        "use spatial_size of at least [4, 8]"
    )
    GTCClassifier(3).check_size((4, 4))


# ---- ACIS ---------------------------------------------------------------------------------------

TINY_ACIS = {"latent_channels": 2, "pm_channels": (4,) * 5, "annotation_channels": (4,) * 5,
             "image_channels": (4,) * 5, "num_res_units": 1}  # fmt: skip


def test_acis_generators_name_every_key_too_deep_for_the_size():
    with pytest.raises(ConfigError) as err:
        AcisPairGenerator(2, (16, 16), 3, **TINY_ACIS)
    assert str(err.value) == (
        "spatial_size [16, 16] is too small for pm_channels of 5 entries (4 x2 upsamplings: 1 x 1 at the "
        "lowest level), annotation_channels of 5 entries (4 halvings: 1 x 1 at the lowest level) and "
        "image_channels of 5 entries (4 halvings: 1 x 1 at the lowest level), where instance norm needs more "
        "than one value: use spatial_size of at least [32, 32] (each side a multiple of 16) or at most 4 "
        "entries in pm_channels, annotation_channels and image_channels"
    )
    with pytest.raises(ConfigError) as err:
        AcisPairGenerator(3, (24, 32, 32), 3, **TINY_ACIS)
    assert str(err.value) == (
        "spatial_size [24, 32, 32]: every size must be divisible by 16 (pm_channels: 4 x2 upsamplings; "
        "annotation_channels: 4 halvings; image_channels: 4 halvings); [24] are not: use [16, 32, 32] or "
        "[32, 32, 32], or fewer levels in these keys"
    )
    AcisPairGenerator(2, (16, 32), 3, **TINY_ACIS)  # 1 x 2 at the lowest level runs
    AcisPairGenerator(2, (16, 16), 3, **TINY_ACIS, norm="batch")  # batch norm: no per-item limit
    with pytest.raises(ConfigError, match=r"^spatial_size \[16, 16\] is too small for pm_channels of 5"):
        PseudoMaskGenerator(2, (16, 16), channels=(4,) * 5)
    with pytest.raises(
        ConfigError, match=r"^spatial_size \[8, 8\] is too small for annotation_channels of 4"
    ):
        AnnotationGenerator(2, 3, channels=(4,) * 4).check_size((8, 8))


def test_acis_generators_minimum_trains_and_the_size_below_fails_in_torch(monkeypatch):
    def step(size):
        net = AcisPairGenerator(2, size, 3, **TINY_ACIS)
        out = net.synthesize(net.sample_latent(1, seed=0), straight_through=True)
        (out["image"].mean() + out["pseudo_mask"].mean()).backward()

    step((32, 32))
    monkeypatch.setattr(pair_module, "check_depths_fit", lambda *args, **kwargs: None)
    unchecked(monkeypatch, PseudoMaskGenerator)
    with pytest.raises(ValueError, match=TORCH_INSTANCE_NORM):
        step((16, 16))


def acis_trainer(size, critic_layers=3, disc_layers=3) -> AcisTrainer:
    torch.manual_seed(0)
    net = AcisPairGenerator(2, size, 3, latent_channels=2, pm_channels=(4, 4), annotation_channels=(4, 4),
                            image_channels=(4, 4), num_res_units=1)  # fmt: skip
    critic = PseudoMaskCritic(2, channels=2, num_layers=critic_layers)
    disc = ImageDiscriminator(2, 3, channels=2, num_layers=disc_layers)
    g = torch.Generator().manual_seed(0)
    batch = {
        "image": torch.rand(2, 1, *size, generator=g),
        "label": torch.randint(0, 3, (2, 1, *size), generator=g),
        "pseudo_mask": torch.rand(2, 1, *size, generator=g),
    }
    adam = lambda m: torch.optim.Adam(m.parameters(), 1e-4)  # noqa: E731
    return AcisTrainer("cpu", 1, [batch], net, critic, disc, AcisSynthesisLoss(3), WGANGPLoss(), adam(net),
                       adam(disc), adam(net.pseudo_mask_generator), adam(critic), amp=False)  # fmt: skip


def test_acis_trainer_checks_critic_and_discriminator_at_start_up(monkeypatch):
    with pytest.raises(ConfigError) as err:
        acis_trainer((16, 16))
    assert str(err.value) == (
        "spatial_size [16, 16] is too small for the pseudo-mask critic's critic_layers (num_layers) 3: "
        "layer 5 of 5 gets 1 x 1 features, less than its 4 x 4 kernel with padding 1: use spatial_size of at "
        "least [24, 24] (each side a multiple of 2) or critic_layers 2"
    )
    expected = (
        r"^spatial_size \[16, 16\] is too small for the image discriminator's disc_layers \(num_layers\) 3: "
        r"layer 4 of 5 gives 1 x 1 features"
    )
    with pytest.raises(ConfigError, match=expected):
        acis_trainer((16, 16), critic_layers=2)
    trainer = acis_trainer((24, 24))  # the size the messages name: a critic, D and G step
    trainer.run()
    assert trainer.state.iteration == 1
    unchecked(monkeypatch, PseudoMaskCritic, ImageDiscriminator)
    with pytest.raises(RuntimeError, match="Kernel size can't be greater than actual input size"):
        acis_trainer((22, 22)).run()


@pytest.mark.parametrize("dims", [2, 3])
def test_acis_critic_and_discriminator_checks_agree_with_torch(dims):
    sides = range(4, 40) if dims == 2 else range(8, 27, 3)
    for layers in (1, 2, 3):
        critic = PseudoMaskCritic(dims, channels=2, num_layers=layers)
        disc = ImageDiscriminator(dims, 2, channels=2, num_layers=layers)
        for h in sides:
            size = (h,) * (dims - 1) + (h + 1,)
            x, annotation = torch.zeros(1, 1, *size), torch.zeros(1, 2, *size)
            runs = runs_in_torch(lambda net, x: net(x).mean().backward(), critic, x)
            assert accepts(critic.check_size, size) == runs, ("critic", layers, size)
            runs = runs_in_torch(lambda net, x, a: net(x, x, a).mean().backward(), disc, x, annotation)
            assert accepts(disc.check_size, size) == runs, ("discriminator", layers, size)


def test_registration_names_registration_channels():
    net = DiffeomorphicRegistration(2, channels=(8, 8, 8, 8), final_conv_channels=(8,))
    with pytest.raises(ConfigError) as err:
        net(torch.rand(1, 1, 18, 16), torch.rand(1, 1, 18, 16))
    assert str(err.value) == (
        "spatial_size [18, 16]: every size must be divisible by 4 (registration_channels has 4 entries: 2 "
        "halvings); [18] are not: use [16, 16] or [20, 16], or fewer registration_channels"
    )
    net(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4))  # no norm: 1 x 1 at the bottom runs
    pm_generator = PseudoMaskGenerator(2, (20, 20), channels=(4, 4))
    expected = (
        r"^spatial_size \[20, 20\]: every size must be divisible by 8 \(registration_channels has 6 entries"
    )
    with pytest.raises(ConfigError, match=expected):  # the refiner checks at start-up, before any loading
        AcisRefiner("cpu", 1, [], pm_generator, None, None, DiffeomorphicRegistration(2), None)
    registration = DiffeomorphicRegistration(2)
    with pytest.raises(ConfigError, match=expected):  # its trainer too, when the bundle gives the size
        RegistrationTrainer("cpu", 1, [], registration, None, RegistrationLoss(2), spatial_size=(20, 20))


# ---- the reconstruction experiments' networks ---------------------------------------------------


def test_reconstruction_networks_name_their_minimum():
    red = REDCNN(features=2)
    expected = (
        r"^train_patch \[20, 32\] is too small for RED-CNN's five unpadded 5 x 5 convolutions, which trim 20 "
        r"pixels: use train_patch of at least \[21, 32\]$"
    )
    with pytest.raises(ConfigError, match=expected):
        red.check_size((20, 32), key="train_patch")
    red(torch.zeros(1, 1, 21, 21))
    esrt = ESRT(scale=2, channels=8, num_heads=2, low_repeats=1)
    expected = (
        r"^spatial_size \[2, 2\] is too small for ESRT at scale 2 .* use spatial_size of at least \[4, 4\] "
        r"\(each side a multiple of 2\)$"
    )
    with pytest.raises(ConfigError, match=expected):
        esrt.check_size((2, 2))
    esrt(torch.zeros(1, 1, 2, 2))
    with pytest.raises(RuntimeError, match="too small"):
        esrt(torch.zeros(1, 1, 1, 1))


def test_smallest_size_raises_every_side_together():
    assert smallest_size(lambda s: min(s) >= 64, (32, 96), 32) == (64, 96)
    assert smallest_size(lambda s: False, (8, 8), 8, limit=64) is None
