"""ACIS as the paper runs it (issue 16): phase 2's image discriminator cannot tell real from generated
triples by their pseudo-masks (which the generators trained in phase 2 do not control), and both
phases are counted in iterations, the same whatever the number of training volumes."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import REPO
from ignite.engine import Events
from monai.bundle import ConfigParser, ConfigWorkflow
from torch import nn
from torch.utils.data import DataLoader

from anatosynth_components.acis import (
    AcisPairGenerator,
    AcisParts,
    AcisSynthesisLoss,
    AcisTrainer,
    ImageDiscriminator,
    PseudoMaskCritic,
    WGANGPLoss,
    synthesis_step,
)
from anatosynth_components.acis.one_hot import label_one_hot
from anatosynth_components.acis.step import judge
from anatosynth_components.engines import budget_epochs, budget_sampler
from anatosynth_components.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = (16, 16)
C = 3
ACIS_BUNDLES = ("acis_tlobes", "acis_penet")


def real_batch(seed: int = 1, batch: int = 2):
    """Real images (B, 1, 16, 16), label ids (B, 1, 16, 16), piecewise-constant pseudo-masks."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.zeros(batch, 1, *SIZE, dtype=torch.long)
    labels[:, :, 4:12, 3:8], labels[:, :, 4:12, 9:14] = 1, 2
    image = 0.2 + 0.3 * labels.float() + 0.05 * torch.rand(batch, 1, *SIZE, generator=g)
    return image, labels, (image * 4).round() / 4


class Fixed(nn.Module):
    """A stand-in generator whose output is ``value`` repeated over the input batch (its parameter gets
    a zero gradient, so the step's optimizer has something to update)."""

    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.value = value
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (
            self.value.repeat(x.shape[0] // self.value.shape[0], *[1] * (self.value.dim() - 1))
            + 0 * self.weight
        )


class Recording(nn.Module):
    """The image discriminator, recording the pseudo-mask each call gets and the logits it returns."""

    def __init__(self, disc: nn.Module) -> None:
        super().__init__()
        self.disc, self.calls = disc, []

    def forward(self, image, pm, annotation):
        logits = self.disc(image, pm, annotation)
        self.calls.append({"pm": pm.detach().clone(), "logits": logits.detach().clone()})
        return logits


def test_phase2_discriminator_judges_without_the_pseudo_mask():
    """Triples identical but for their pseudo-masks: phase 2's D scores them the same; the same D shown
    the pseudo-masks (phase 1's path, the old phase-2 behaviour) scores them differently."""
    torch.manual_seed(0)
    disc = ImageDiscriminator(2, C, channels=8, num_layers=2)
    image, labels, pm = real_batch()
    other_pm = torch.rand_like(pm)  # as a G_pm(z) would be: nothing to do with the image
    onehot = label_one_hot(labels, C)
    both = dict(
        image=torch.cat([image, image]), pm=torch.cat([pm, other_pm]), annotation=torch.cat([onehot] * 2)
    )
    real, fake = judge(disc, **both, phase2=True).split(2)
    assert torch.equal(real, fake)
    real, fake = judge(disc, **both, phase2=False).split(2)
    assert not torch.allclose(real, fake)


@pytest.mark.parametrize("anchor", [1.0, 0.0])
def test_phase2_step_scores_real_and_generated_alike_when_the_trained_generators_match(anchor):
    """The phase-2 step with annotation and image generators whose outputs equal the real annotation
    and image: everything D sees of a generated triple that the trained generators control matches the
    real triple, and only the pseudo-masks (real Voronoi vs G_pm(z)) differ.  D's real and fake logits
    must then be equal, in its own update and in the generators' adversarial terms (the anchor's on the
    real pairs included); the raw triples, as the step used to show them, score differently."""
    torch.manual_seed(0)
    image, labels, pm = real_batch()
    generated_pm = torch.rand_like(pm)
    onehot = label_one_hot(labels, C)
    disc = Recording(ImageDiscriminator(2, C, channels=8, num_layers=2))
    ann, img = Fixed(20.0 * onehot - 10.0), Fixed(image)  # G_ann logits -> the real one-hot; G_img -> x
    parts = AcisParts(nn.Identity(), ann, img, nn.Identity(), disc)
    opt_g = torch.optim.SGD([ann.weight, img.weight], 0.1)
    opt_d = torch.optim.SGD(disc.parameters(), 0.0)  # D unchanged between its two calls
    loss = AcisSynthesisLoss(C, phase2_anchor=anchor)

    out, outputs = synthesis_step(parts, loss, opt_g, opt_d, image, labels, pm, generated_pm)

    assert torch.equal(outputs["generated_image"], image) and len(disc.calls) == 2
    d_update, g_update = disc.calls
    assert all(not call["pm"].any() for call in disc.calls)  # zeros: D never sees a pseudo-mask
    real, fake = d_update["logits"].split(2)
    assert torch.equal(real, fake)
    assert out["d_real"] == pytest.approx(
        float(loss.adversarial(real, target_is_real=True, for_discriminator=True))
    )
    generated = g_update["logits"][:2]
    assert torch.equal(generated, real)
    if anchor:
        assert torch.equal(g_update["logits"][2:], real)  # the anchor's reconstructions of the real pairs
    # the old behaviour: D shown (x, pm, y) against (x^, G_pm(z), y^) separates them on the pseudo-mask
    with torch.no_grad():
        shown = disc.disc(torch.cat([image, image]), torch.cat([pm, generated_pm]), torch.cat([onehot] * 2))
    assert not torch.allclose(*shown.split(2))


def test_phase1_discriminator_still_sees_the_real_pseudo_mask():
    torch.manual_seed(0)
    image, labels, pm = real_batch()
    net = AcisPairGenerator(
        2, SIZE, C, latent_channels=2, pm_channels=(8, 4), annotation_channels=(8, 8), image_channels=(8, 8)
    )
    disc = Recording(ImageDiscriminator(2, C, channels=4, num_layers=1))
    parts = AcisParts(
        net.pseudo_mask_generator, net.annotation_generator, net.image_generator, nn.Identity(), disc
    )
    opt = torch.optim.SGD([*net.annotation_generator.parameters(), *net.image_generator.parameters()], 0.0)
    synthesis_step(
        parts, AcisSynthesisLoss(C), opt, torch.optim.SGD(disc.parameters(), 0.0), image, labels, pm
    )
    d_update, g_update = disc.calls
    assert torch.equal(d_update["pm"], torch.cat([pm, pm])) and torch.equal(g_update["pm"], pm)


# ---------------------------------------------------------------------------------------------------
# iteration budgets


def bundle_parser(bundle: str, **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles" / bundle / "configs" / "train.json"))
    parser.update(overrides)
    return parser


@pytest.mark.parametrize("bundle", ACIS_BUNDLES)
def test_bundle_budget_defaults_and_loader_length_do_not_depend_on_the_training_set(bundle):
    """train.json: phase 1 8000 and phase 2 2000 iterations in epochs of 100, and an epoch of the
    training loader is epoch_length batches of batch_size, for 2 volumes as for 6."""
    parser = bundle_parser(bundle)
    assert (parser["epoch_length"], parser["phase1_iterations"], parser["phase2_iterations"]) == (
        100,
        8000,
        2000,
    )
    assert "phase1_epochs" not in parser and "phase2_epochs" not in parser
    assert parser.get_parsed_content("train#trainer#max_epochs") == 80
    assert parser.get_parsed_content("train#phase2#trainer#max_epochs") == 20
    for n in (2, 6):
        parser = bundle_parser(
            bundle, **{"train#dataset": f"$[{{'i': k}} for k in range({n})]", "epoch_length": 3}
        )
        loader = parser.get_parsed_content("train#dataloader")
        batches = list(loader)
        assert len(loader) == len(batches) == 3
        assert all(len(b["i"]) == parser["batch_size"] for b in batches)
        assert set(torch.cat([b["i"] for b in batches]).tolist()) <= set(range(n))


@pytest.mark.parametrize("key", ["phase1_iterations", "phase2_iterations"])
def test_a_budget_that_is_not_a_multiple_of_epoch_length_names_the_key(key):
    other = "train#trainer#max_epochs" if key == "phase1_iterations" else "train#phase2#trainer#max_epochs"
    parser = bundle_parser("acis_tlobes", **{key: 250, "epoch_length": 100})
    with pytest.raises(Exception) as info:
        parser.get_parsed_content(other)
    cause = info.value if isinstance(info.value, ConfigError) else info.value.__cause__
    assert isinstance(cause, ConfigError)
    assert f"{key}=250 is not a multiple of epoch_length=100" in str(cause) and "use 200 or 300" in str(cause)


def test_a_removed_epoch_key_on_the_command_line_stops_the_run(tmp_path):
    """``--phase1_epochs 200`` (the key before iteration budgets) is an error naming its replacement,
    raised when the phase-1 trainer is built (before any data is read)."""
    workflow = ConfigWorkflow(
        config_file=str(REPO / "bundles" / "acis_tlobes" / "configs" / "train.json"),
        workflow_type="train",
        run_id="phase1",
        bundle_root=str(tmp_path),
        phase1_epochs=200,
    )
    workflow.initialize()
    with pytest.raises(Exception) as info:
        workflow.run()
    cause = info.value
    while cause is not None and not isinstance(cause, ConfigError):
        cause = cause.__cause__
    assert cause is not None, info.value
    assert (
        "phase1_epochs is no longer a key of this bundle, use phase1_iterations (the phases are counted"
        in str(cause)
    )
    assert not any(tmp_path.iterdir())  # nothing read or written


def _net():
    torch.manual_seed(0)
    net = AcisPairGenerator(
        2, SIZE, C, latent_channels=2, pm_channels=(8, 4), annotation_channels=(8, 8), image_channels=(8, 8)
    )
    return (
        net,
        PseudoMaskCritic(2, channels=4, num_layers=1),
        ImageDiscriminator(2, C, channels=4, num_layers=1),
    )


def _phases(tmp_path, n: int, epoch_length: int = 2, iterations: tuple[int, int] = (4, 2)):
    """Phase 1 then phase 2 of AcisTrainer on ``n`` real items, the loaders and epochs as train.json
    wires them; the two trainers, and the network phase 2 started from."""
    image, labels, pm = real_batch(batch=n)
    items = [{"image": image[k], "label": labels[k], "pseudo_mask": pm[k]} for k in range(n)]
    net, critic, disc = _net()
    loader = DataLoader(items, batch_size=2, sampler=budget_sampler(items, epoch_length, 2))
    adam = lambda *ms: torch.optim.Adam([p for m in ms for p in m.parameters()], 1e-3)  # noqa: E731
    common = dict(
        network=net, critic=critic, discriminator=disc, loss=AcisSynthesisLoss(C), wgan_loss=WGANGPLoss()
    )
    first = AcisTrainer(
        "cpu", budget_epochs(iterations[0], epoch_length, "phase1_iterations"), loader, **common,
        opt_g=adam(net.annotation_generator, net.image_generator), opt_d=adam(disc),
        opt_pm=adam(net.pseudo_mask_generator), opt_critic=adam(critic), phase=1,
        checkpoint_dir=str(tmp_path / "phase1"),
    )  # fmt: skip
    first.run()
    second = AcisTrainer(
        "cpu", budget_epochs(iterations[1], epoch_length, "phase2_iterations"), loader, **common,
        opt_g=adam(net.annotation_generator, net.image_generator), opt_d=adam(disc), phase=2,
        checkpoint_dir=str(tmp_path / "phase2"), init_dir=str(tmp_path / "phase1"),
    )  # fmt: skip
    started = {}
    second.add_event_handler(
        Events.ITERATION_STARTED(once=1),
        lambda e: started.update(
            copy.deepcopy({"network": net.state_dict(), "discriminator": disc.state_dict()})
        ),
    )
    phase1_end = copy.deepcopy({"network": net.state_dict(), "discriminator": disc.state_dict()})
    second.run()
    return first, second, started, phase1_end


def test_both_phases_run_the_same_iterations_on_2_and_on_6_volumes(tmp_path):
    """The budget, not the data, sets the updates: 4 + 2 iterations in epochs of 2 for 2 volumes and for
    6; phase 2 starts from phase 1's networks, the discriminator included (warm start)."""
    counts = {}
    for n in (2, 6):
        first, second, started, phase1_end = _phases(tmp_path / str(n), n)
        counts[n] = [(t.state.epoch, t.state.iteration, t.state.epoch_length) for t in (first, second)]
        saved = torch.load(tmp_path / str(n) / "phase1" / "latest_checkpoint_epoch=2.pt", weights_only=False)
        assert saved["trainer"]["iteration"] == 4
        for part in ("network", "discriminator"):
            assert all(torch.equal(started[part][k], phase1_end[part][k]) for k in phase1_end[part])
            assert all(torch.equal(started[part][k], saved[part][k]) for k in saved[part])
    assert counts[2] == counts[6] == [(2, 4, 2), (1, 2, 2)]
