"""Whole-volume synthesis pieces: the one-tensor network, the slice-stack inferer, the writer, the
inputs, the bundle folder lookup and the trainer's guards."""

from __future__ import annotations

import os
import stat

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow

from anatosynth_components.anatomask import (
    AnatoMaskDiscriminator,
    AnatoMaskLoss,
    AnatoMaskNet,
    AnatoMaskTrainer,
    GTCClassifier,
    GTCLoss,
    SliceStackInferer,
    blend_weights,
    one_hot_stack,
)
from anatosynth_components.atomic import write_nifti
from anatosynth_components.bundle import bundle_root, synthesis_items
from anatosynth_components.bundle.root import _from_argv
from anatosynth_components.data import SaveSynthesisd, stack_starts
from anatosynth_components.data.demo.generate import generate_demo
from anatosynth_components.engines import latest_checkpoint
from anatosynth_components.errors import ConfigError, DataError

TINY = {
    "base_channels": 4,
    "channel_mults": (4, 2, 1),
    "spade_hidden": 8,
    "gnn_hidden": 4,
    "noise_channels": 4,
}


class StackProbe(torch.nn.Module):
    """Returns ``value(z, start)`` for every slice of a stack: shows what the inferer feeds and blends."""

    def __init__(self, value) -> None:
        super().__init__()
        self.value, self.calls = value, []

    def forward(self, x, z_index=None, noise_seed=None):
        self.calls.append((x.shape, z_index.clone(), noise_seed.clone()))
        b, _, n, h, w = x.shape
        v = self.value(z_index.float(), z_index[:, :1].float().expand(b, n))
        return v.view(b, 1, n, 1, 1).expand(b, 1, n, h, w).clone()


def test_inferer_feeds_true_z_and_blends_by_triangular_weights():
    depth, n, stride = 11, 4, 2
    vol = torch.zeros(1, 1, 6, 5, depth)
    probe = StackProbe(lambda z, start: start)  # each stack predicts its own start slice
    out = SliceStackInferer(n, axis=2, stride=stride, batch_size=3)(vol, probe, noise_seed=9)
    starts = stack_starts(depth, n, stride)
    w = blend_weights(n)
    expected = torch.zeros(depth)
    total = torch.zeros(depth)
    for s in starts:  # brute force: weighted mean of the predictions covering each slice
        expected[s : s + n] += w * s
        total[s : s + n] += w
    assert torch.allclose(out[0, 0, 0, 0], expected / total)
    fed = torch.cat([z for _, z, _ in probe.calls])
    assert fed[:, 0].tolist() == starts and torch.equal(fed, fed[:, :1] + torch.arange(n))
    assert all(torch.all(seed == 9) for _, _, seed in probe.calls)
    assert sum(len(z) for _, z, _ in probe.calls) == len(starts)  # batched, each stack once


def test_inferer_is_exact_where_stacks_agree_and_respects_the_axis():
    """A network that predicts a function of z alone must come back unchanged (no seams), on any axis."""
    probe = StackProbe(lambda z, start: torch.sin(z))
    for axis in (0, 1, 2):
        shape = [5, 6, 7]
        shape[axis] = 13
        out = SliceStackInferer(5, axis=axis)(torch.zeros(2, 1, *shape), probe)
        z = torch.sin(torch.arange(13.0)).view([-1 if a == axis else 1 for a in range(3)])
        assert torch.allclose(out, z.expand(2, 1, *shape), atol=1e-6)


def test_inferer_resizes_in_plane_and_back():
    probe = StackProbe(lambda z, start: z * 0 + 0.25)
    inferer = SliceStackInferer(3, spatial_size=(8, 8))
    out = inferer(torch.zeros(1, 1, 20, 12, 6), probe)
    assert out.shape == (1, 1, 20, 12, 6) and torch.allclose(out, torch.tensor(0.25))
    assert {tuple(s[-2:]) for s, _, _ in probe.calls} == {(8, 8)}  # the network sees its own size
    with pytest.raises(DataError, match=r"expected label volumes \(B, 1, X, Y, Z\)"):
        inferer(torch.zeros(1, 20, 12, 6), probe)
    with pytest.raises(ConfigError, match="stride"):
        SliceStackInferer(3, stride=4)


def test_net_takes_ids_or_one_hot_and_names_unknown_ids():
    torch.manual_seed(0)
    net = AnatoMaskNet(5, 3, (16, 16), **TINY).eval()
    ids = torch.randint(0, 5, (2, 1, 3, 16, 16)).float()
    with torch.no_grad():
        a, b = net(ids), net(one_hot_stack(ids, 5))
        c = net(ids, z_index=torch.arange(3).expand(2, 3), noise_seed=torch.zeros(2, dtype=torch.long))
        d = net(ids, noise_seed=torch.tensor([1, 1]))
    assert a.shape == (2, 1, 3, 16, 16) and torch.equal(a, b) and torch.equal(a, c)
    assert not torch.allclose(a, d)  # another noise volume
    with pytest.raises(DataError, match=r"label stack: label ids \[6\] are outside 0..4 \(num_classes=5\)"):
        net(ids + 2 * (ids == 4))


def test_whole_volume_noise_is_shared_between_overlapping_stacks():
    """3D-SNI indexes the noise by the slice's z in the volume: the inferer passes true z, so two
    strides of the same volume synthesize the same noise (only GNN context differs); with GNN-SIF off
    every stride gives the same volume."""
    torch.manual_seed(0)
    net = AnatoMaskNet(4, 4, (16, 16), use_gnn_sif=False, **TINY).eval()
    vol = torch.randint(0, 4, (1, 1, 16, 16, 12)).float()
    with torch.no_grad():
        a = SliceStackInferer(4, stride=1)(vol, net, noise_seed=5)
        b = SliceStackInferer(4, stride=4)(vol, net, noise_seed=5)
        c = SliceStackInferer(4, stride=4)(vol, net, noise_seed=6)
    assert torch.allclose(a, b, atol=1e-5)
    assert (a - c).abs().max() > 1e-3


def test_save_synthesis_keeps_grid_and_writes_readable_files(tmp_path):
    from monai.data import MetaTensor

    affine = np.diag([1.5, 1.5, 3.0, 1.0])
    meta = {
        "filename_or_obj": "/x/case_7.nii.gz",
        "original_affine": affine,
        "spatial_shape": np.array([4, 5, 6]),
    }
    item = {"image": MetaTensor(torch.zeros(1, 4, 5, 6), meta=meta), "pred": torch.full((1, 4, 5, 6), 0.5),
            "sample": 1}  # fmt: skip
    out = SaveSynthesisd("pred", tmp_path, num_samples=2, output_range=[-100, 100])(item)
    path = tmp_path / "case_7_synth_s1.nii.gz"
    assert out["pred_path"] == str(path)
    img = nib.load(str(path))
    assert np.allclose(img.affine, affine) and np.allclose(np.asarray(img.dataobj), 0.0)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~_umask()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left over
    item["pred"] = torch.zeros(1, 4, 5, 7)
    with pytest.raises(
        DataError, match=r"case_7.nii.gz: synthesized pred has shape \(4, 5, 7\), input \(4, 5, 6\)"
    ):
        SaveSynthesisd("pred", tmp_path)(item)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_synthesis_items_from_file_folder_and_dataset(tmp_path):
    for name in ("b.nii.gz", "a.nii"):
        write_nifti(tmp_path / "labels" / name, np.zeros((4, 4, 4), np.uint8), np.eye(4))
    (tmp_path / "labels" / "notes.txt").write_text("x")
    items = synthesis_items(tmp_path / "labels", num_samples=2, seed=5)
    assert [(os.path.basename(i["image"]), i["noise_seed"], i["sample"]) for i in items] == [
        ("a.nii", 5, 0), ("a.nii", 6, 1), ("b.nii.gz", 5, 0), ("b.nii.gz", 6, 1)]  # fmt: skip
    assert len(synthesis_items(tmp_path / "labels" / "b.nii.gz")) == 1
    demo = generate_demo("brain", tmp_path / "demo", subjects=3, shape=(16, 16, 16), progress=False)
    split = tmp_path / "split.json"
    split.write_text('{"subjects": {"training": ["OASIS_0001"], "validation": [], "test": ["OASIS_0003"]}}')
    assert [os.path.basename(i["image"]) for i in synthesis_items(demo, split_file=split)] == [
        "OASIS_0003_0000.nii.gz"
    ]
    with pytest.raises(DataError, match="holds no NIfTI label files"):
        synthesis_items(tmp_path)
    with pytest.raises(DataError, match="no such file or folder"):
        synthesis_items(tmp_path / "missing")
    with pytest.raises(ConfigError, match="num_samples must be >= 1"):
        synthesis_items(tmp_path / "labels", num_samples=0)


def test_bundle_root_from_the_running_workflow_and_from_argv(tmp_path):
    bundle = tmp_path / "bundles" / "demo"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "configs" / "c.json").write_text(
        '{"imports": ["$import anatosynth_components"], '
        '"bundle_root": "$anatosynth_components.bundle.bundle_root()", "run": ["$@bundle_root"]}'
    )
    wf = ConfigWorkflow(
        config_file=str(bundle / "configs" / "c.json"), workflow_type=None, logging_file=False
    )
    wf.initialize()
    assert wf.run() == [str(bundle.resolve())]
    cfg = str(bundle / "configs" / "c.json")
    assert _from_argv(["x", "--config_file", cfg]) == bundle.resolve()
    assert _from_argv(["x", f"--config_file=['{cfg}', 'other.json']"]) == bundle.resolve()
    assert bundle_root(default=tmp_path) in (str(tmp_path.resolve()), str(_from_argv(__import__("sys").argv)))


def test_latest_checkpoint_picks_the_highest_epoch(tmp_path):
    with pytest.raises(ConfigError, match="holds no latest_checkpoint_epoch=N.pt"):
        latest_checkpoint(tmp_path)
    for e in (2, 10, 9):
        (tmp_path / f"latest_checkpoint_epoch={e}.pt").write_bytes(b"")
    assert latest_checkpoint(tmp_path).endswith("latest_checkpoint_epoch=10.pt")


def test_trainer_stops_on_non_finite_losses():
    torch.manual_seed(0)
    net = AnatoMaskNet(3, 2, (16, 16), **TINY)
    disc = AnatoMaskDiscriminator(3, num_d=1, num_layers_d=2, channels=4)
    loss = AnatoMaskLoss(lambda_vgg=0.0, lambda_gtc=0.0)
    opt = torch.optim.Adam(net.parameters())
    image = torch.rand(1, 1, 2, 16, 16)
    image[0, 0, 0, 0, 0] = float("nan")
    batch = {"label": torch.zeros(1, 1, 2, 16, 16), "image": image, "z_index": torch.arange(2)[None]}
    trainer = AnatoMaskTrainer("cpu", 1, [batch], net, disc, loss, opt, torch.optim.Adam(disc.parameters()))
    with pytest.raises(FloatingPointError, match=r"epoch 1, iteration 1: non-finite losses \['d_real'"):
        trainer.run()


def test_trainer_step_under_bf16_autocast():
    """amp: the networks run in bfloat16 (asked for explicitly: on a CPU ``amp: true`` stays float32), the
    loss terms are finite, both networks are updated and the output stacks are float32 again."""
    torch.manual_seed(0)
    net = AnatoMaskNet(3, 2, (16, 16), **TINY)
    disc = AnatoMaskDiscriminator(3, num_d=1, num_layers_d=2, channels=4)
    loss = AnatoMaskLoss(lambda_vgg=0.0, lambda_gtc=0.0)
    labels = torch.zeros(2, 1, 2, 16, 16)
    labels[:, :, :, 4:12, 4:12] = 2
    batch = {"label": labels, "image": torch.rand(2, 1, 2, 16, 16), "z_index": torch.arange(2).repeat(2, 1)}
    g0, d0 = [next(m.parameters()).detach().clone() for m in (net, disc)]
    trainer = AnatoMaskTrainer("cpu", 1, [batch], net, disc, loss, torch.optim.Adam(net.parameters(), 1e-3),
                               torch.optim.Adam(disc.parameters(), 1e-3), amp="bf16")  # fmt: skip
    assert trainer.precision.dtype == torch.bfloat16
    trainer.run()
    out = trainer.state.output
    assert all(np.isfinite(v) for v in out["losses"].values()) and out["pred"].dtype == torch.float32
    assert not torch.equal(g0, next(net.parameters())) and not torch.equal(d0, next(disc.parameters()))
    assert trainer.state.metrics["mean_g_total"] == pytest.approx(out["losses"]["g_total"])


def test_gtc_gradient_is_finite_when_a_class_is_absent():
    """Regression: the texture descriptor's root had an infinite derivative at 0 for absent classes."""
    torch.manual_seed(0)
    gtc = GTCLoss(GTCClassifier(4))
    masks = one_hot_stack(torch.zeros(1, 1, 2, 16, 16), 4)  # classes 1..3 absent
    fake = torch.rand(1, 1, 2, 16, 16, requires_grad=True)
    gtc.generator(masks, fake, torch.rand(1, 1, 2, 16, 16)).backward()
    assert torch.isfinite(fake.grad).all()
