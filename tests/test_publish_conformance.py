"""Model-zoo conformance of every bundle: the zoo's files and keys, ``verify_metadata``,
``verify_net_in_out`` (MONAI's command line), TorchScript (``ckpt_export``) and ONNX exports that
load and give the eager network's output.

Exports and ``verify_net_in_out`` run on a copy of each bundle shrunk to a tiny network
(:func:`tiny_bundle`: the configs' own keys, and the metadata's shapes to match), with random weights:
the checks are about the export path, not the trained values.  The default sizes are checked by the
commands in the README ("Publishing and serving")."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO

import anatosynth_components
from anatosynth_components.anatomask.spectral import is_parametrized
from anatosynth_components.packaging import META_SCHEMA, bundle_problems, read_large_files
from anatosynth_components.packaging.export import check_export, parse_inference

BUNDLES = REPO / "bundles"
NAMES = ["anatomask_oasis", "anatomask_abdomen", "acis_penet", "acis_tlobes"]
ANATOMASK = ["anatomask_oasis", "anatomask_abdomen"]
SCHEMA = META_SCHEMA  # the zoo's metadata schema, shipped in the package
ANATOMASK_TINY = {"spatial_size": [32, 32], "num_slices": 4, "base_channels": 8, "channel_mults": [4, 2, 1]}
ACIS_TINY = {
    "pm_channels": [16, 8],
    "annotation_channels": [8, 16],
    "image_channels": [8, 16],
    "latent_channels": 4,
    "num_res_units": 1,
    "num_points": 64,
}
TINY = {
    "anatomask_oasis": ANATOMASK_TINY,
    "anatomask_abdomen": ANATOMASK_TINY,
    "acis_penet": ACIS_TINY | {"spatial_size": [32, 32]},
    "acis_tlobes": ACIS_TINY | {"spatial_size": [32, 32, 32]},
}
RUN_OUTPUTS = shutil.ignore_patterns("models", "runs", "synth", "eval", "logs", "demo_data", "__pycache__")


def tiny_bundle(name: str, dest: Path, seed: int = 0) -> Path:
    """A copy of ``bundles/<name>`` with a tiny network (its inference.json keys and the metadata's
    network shapes changed to match) and random weights in ``models/model.pt``."""
    root = dest / name
    shutil.copytree(BUNDLES / name, root, ignore=RUN_OUTPUTS)
    infer_file, meta_file = root / "configs" / "inference.json", root / "configs" / "metadata.json"
    infer, meta = json.loads(infer_file.read_text()), json.loads(meta_file.read_text())
    tiny = TINY[name]
    infer.update(tiny)
    image = meta["network_data_format"]["inputs"]["image"]
    pred = meta["network_data_format"]["outputs"]["pred"]
    if name.startswith("anatomask"):
        image["spatial_shape"] = pred["spatial_shape"] = [tiny["num_slices"], *tiny["spatial_size"]]
    else:
        levels = len(tiny["pm_channels"]) - 1
        image["num_channels"] = tiny["latent_channels"]
        image["spatial_shape"] = [s // 2**levels for s in tiny["spatial_size"]]
        pred["spatial_shape"] = tiny["spatial_size"]
    infer_file.write_text(json.dumps(infer, indent=4))
    meta_file.write_text(json.dumps(meta, indent=4))
    torch.manual_seed(seed)
    net = parse_inference(root).get_parsed_content("network_def")
    (root / "models").mkdir()
    torch.save(net.state_dict(), root / "models" / "model.pt")
    return root


@pytest.mark.parametrize("name", NAMES)
def test_committed_bundles_meet_the_zoo_rules(name):
    assert bundle_problems(BUNDLES / name) == []  # the metadata validated against the shipped schema
    meta = json.loads((BUNDLES / name / "configs" / "metadata.json").read_text())
    assert meta["required_packages_version"]["anatosynth-components"] == anatosynth_components.__version__
    assert read_large_files(BUNDLES / name / "large_files.yml") == []  # no weights are published yet
    # trained weights (all over 25 MB at the default size) are never committed
    weights = [f"bundles/{name}/models/model.pt", f"bundles/{name}/models/model.ts"]
    ignored = subprocess.run(["git", "check-ignore", *weights], cwd=REPO, capture_output=True, text=True)
    assert ignored.stdout.split() == weights, "models/model.pt and model.ts must be ignored by git"


def test_rule_breaks_are_named(tmp_path):
    root = tmp_path / "anatomask_oasis"
    shutil.copytree(BUNDLES / "anatomask_oasis", root, ignore=RUN_OUTPUTS)
    (root / "LICENSE").unlink()
    meta = json.loads((root / "configs" / "metadata.json").read_text())
    meta["changelog"] = {"0.0.1": "older"}
    del meta["required_packages_version"]["anatosynth-components"]
    (root / "configs" / "metadata.json").write_text(json.dumps(meta))
    train = json.loads((root / "configs" / "train.json").read_text())
    del train["train"]["handlers"], train["val_interval"]
    (root / "configs" / "train.json").write_text(json.dumps(train))
    infer = json.loads((root / "configs" / "inference.json").read_text())
    del infer["inferer"]
    (root / "configs" / "inference.json").write_text(json.dumps(infer))
    problems = bundle_problems(root)
    assert problems == [
        f"{root}/LICENSE: missing",
        f"{root}/configs/metadata.json: version {meta['version']} is not a key of 'changelog'",
        f"{root}/configs/metadata.json: 'required_packages_version' does not pin anatosynth-components",
        f"{root}/configs/inference.json: no key 'inferer'",
        f"{root}/configs/train.json: no key 'train#handlers'",
    ]
    train["train"]["handlers"] = [{"_target_": "ValidationHandler", "validator": "@validate#evaluator"}]
    (root / "configs" / "train.json").write_text(json.dumps(train))
    assert bundle_problems(root)[-1] == (
        f"{root}/configs/train.json: train#handlers validate but there is no 'val_interval'"
    )


def test_verify_net_in_out_command_line(tmp_path):
    """``python -m monai.bundle verify_net_in_out network_def`` on each (tiny) bundle, as the zoo runs it."""
    procs = {}
    for name in NAMES:
        root = tiny_bundle(name, tmp_path)
        cmd = [sys.executable, "-m", "monai.bundle", "verify_net_in_out", "network_def",
               "--meta_file", str(root / "configs" / "metadata.json"),
               "--config_file", str(root / "configs" / "inference.json"), "--device", "cpu"]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
        procs[name] = subprocess.Popen(
            cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        if len(procs) % 2 == 0:  # two at a time on a 2-core machine
            for p in procs.values():
                p.wait(timeout=300)
    for name, proc in procs.items():
        out = proc.communicate(timeout=300)[0].decode()
        assert proc.returncode == 0 and "data shape of network is verified with no error" in out, (
            f"{name}:\n{out[-3000:]}"
        )


@pytest.mark.parametrize("name", NAMES)
def test_torchscript_export_loads_and_matches_the_eager_network(name, tmp_path):
    """MONAI's ``ckpt_export``, scripted as the zoo's CI runs it (no tracing, for every bundle) ->
    ``torch.jit.load`` -> the same output as the eager network on a new input."""
    torch.set_num_threads(1)
    root = tiny_bundle(name, tmp_path)
    diff = check_export(root, root / "models" / "model.pt", "torchscript", tmp_path / "model.ts")
    assert diff < 1e-4
    assert torch.jit.load(str(tmp_path / "model.ts")).training is False


@pytest.mark.parametrize(
    "name",
    [
        "anatomask_oasis",
        "acis_penet",
        "acis_tlobes",
    ],
)
def test_onnx_export_runs_in_onnxruntime_and_matches(name, tmp_path):
    pytest.importorskip(
        "onnxruntime", reason="ONNX checks need the export extra (onnx, onnxscript, onnxruntime)"
    )
    pytest.importorskip(
        "onnxscript", reason="ONNX checks need the export extra (onnx, onnxscript, onnxruntime)"
    )
    torch.set_num_threads(1)
    root = tiny_bundle(name, tmp_path)
    diff = check_export(root, root / "models" / "model.pt", "onnx", tmp_path / "model.onnx")
    assert diff < 1e-4


def tiny_anatomask_net(root: Path) -> torch.nn.Module:
    """The tiny bundle's ``network_def`` with its ``models/model.pt`` weights, in eval mode."""
    net = parse_inference(root).get_parsed_content("network_def")
    net.load_state_dict(torch.load(root / "models" / "model.pt", weights_only=True))
    return net.eval()


@pytest.mark.parametrize("name", ANATOMASK)
def test_anatomask_network_def_scripts_and_equals_the_eager_network(name, tmp_path):
    """``torch.jit.script(network_def)``, what the zoo's ``ckpt_export`` runs, compiles a copy whose
    spectral norm is folded into plain weights: the same output as the eager network (label ids or the
    one-hot mask; default or given slice indices and noise seeds), while ``network_def`` keeps its
    spectral norm (training is unchanged)."""
    torch.set_num_threads(1)
    root = tiny_bundle(name, tmp_path)
    net = tiny_anatomask_net(root)
    k, n, size = net.num_classes, ANATOMASK_TINY["num_slices"], ANATOMASK_TINY["spatial_size"]
    gen = torch.Generator().manual_seed(3)
    labels = torch.randint(0, k, (2, 1, n, *size), generator=gen).float()
    with torch.no_grad():
        net.train()(labels)  # a power-iteration step: the stored vectors are not the initial ones
    net.eval()
    before = {key: value.clone() for key, value in net.state_dict().items()}
    scripted = torch.jit.script(net)
    after = net.state_dict()  # the network itself is untouched: same keys and values
    assert is_parametrized(net) and not is_parametrized(scripted) and set(after) == set(before)
    assert all(torch.equal(after[key], value) for key, value in before.items())
    keys = set(before)
    assert any(".parametrizations.weight.original" in key for key in keys)
    onehot = torch.nn.functional.one_hot(labels[:, 0].long(), k).permute(0, 4, 1, 2, 3).float()
    z_index = torch.tensor([[40, 41, 42, 43], [2, 3, 5, 8]])[:, :n]
    seed = torch.tensor([7, 123456789])
    with torch.no_grad():
        for args in [(labels,), (labels, z_index, seed), (onehot, z_index, seed)]:
            ref = net(*args)
            for _ in range(3):  # TorchScript's profiling executor optimises after the first runs
                torch.testing.assert_close(scripted(*args), ref, rtol=0, atol=1e-5)
        assert not torch.allclose(scripted(labels, z_index, seed), scripted(labels, z_index, seed + 1))


def test_zoo_ckpt_export_command_line_scripts_the_anatomask_bundles(tmp_path):
    """The zoo CI's export, ``python -m monai.bundle ckpt_export network_def`` without ``--use_trace``,
    on the committed configs of both AnatoMaskGAN bundles (tiny sizes given as command-line overrides;
    the checkpoint is the state dict of the tiny ``network_def``, as the zoo makes its fake weights):
    it exports, and the file loads and equals the eager network for given slice indices and seeds."""
    procs = {}
    overrides = [arg for key, value in ANATOMASK_TINY.items() for arg in (f"--{key}", json.dumps(value))]
    for name in ANATOMASK:
        root = tiny_bundle(name, tmp_path)
        configs = BUNDLES / name / "configs"
        ckpt, ts = root / "models" / "model.pt", tmp_path / f"{name}.ts"
        files = {"filepath": ts, "ckpt_file": ckpt, "meta_file": configs / "metadata.json"}
        files |= {"config_file": configs / "inference.json", "bundle_root": root}
        args = [arg for key, path in files.items() for arg in (f"--{key}", str(path))]
        cmd = [sys.executable, "-m", "monai.bundle", "ckpt_export", "network_def", *args, *overrides]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
        procs[name] = subprocess.Popen(
            cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
    torch.set_num_threads(1)
    for name, proc in procs.items():
        out = proc.communicate(timeout=300)[0].decode()
        assert proc.returncode == 0 and "exported to file" in out, f"{name}:\n{out[-3000:]}"
        net = tiny_anatomask_net(tmp_path / name)
        exported = torch.jit.load(str(tmp_path / f"{name}.ts"))
        assert exported.training is False
        labels = torch.randint(
            0, net.num_classes, (1, 1, 4, 32, 32), generator=torch.Generator().manual_seed(1)
        )
        z_index, seed = torch.tensor([[9, 10, 11, 12]]), torch.tensor([5])
        with torch.no_grad():
            torch.testing.assert_close(exported(labels.float()), net(labels.float()), rtol=0, atol=1e-5)
            torch.testing.assert_close(
                exported(labels.float(), z_index, seed), net(labels.float(), z_index, seed), rtol=0, atol=1e-5
            )
