"""TorchScript and ONNX exports of a bundle's ``network_def``, each checked against the eager network.

- TorchScript goes through MONAI's own ``ckpt_export`` as the model zoo's CI runs it
  (``python -m monai.bundle ckpt_export``, no ``--use_trace``): every bundle's ``network_def`` is
  scripted.  AnatoMaskGAN's networks fold their spectral norm into plain weights when scripted
  (``__prepare_scriptable__``, :mod:`anatosynth_components.anatomask.spectral`), so the file holds the
  whole forward, with the optional slice indices and noise seed.
- ONNX goes through ``torch.onnx.export`` (the ``torch.export`` based exporter, which needs the
  ``onnx`` and ``onnxscript`` packages; the check needs ``onnxruntime``: the ``export`` extra) on a
  copy of the network whose spectral-norm parametrizations are folded into plain weights (the same
  function in eval mode: ``W / sigma`` with the stored power-iteration vectors).  The ONNX graph is
  the default forward: one stack of n slices, slice indices 0..n-1, noise seed 0.

Example::

    net, meta = load_network("bundles/acis_penet", "models/model.pt")
    x = example_input(meta)
    export_onnx(net, "model.onnx", x)
    x1 = example_input(meta, seed=1)
    assert np.allclose(run_onnx("model.onnx", x1), eager(net, x1), atol=1e-4)
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anatosynth_components.anatomask.spectral import fold_spectral_norm as fold_parametrizations
from anatosynth_components.errors import ConfigError

logger = logging.getLogger(__name__)


def parse_inference(bundle_dir: str | os.PathLike, overrides: Mapping[str, Any] | None = None):
    """The ``ConfigParser`` of ``configs/inference.json`` with ``bundle_root`` and ``overrides`` set."""
    from monai.bundle import ConfigParser

    root = Path(bundle_dir).resolve()
    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "inference.json"))
    parser["bundle_root"] = str(root)
    parser.update(dict(overrides or {}))
    return parser


def load_network(
    bundle_dir: str | os.PathLike,
    ckpt_file: str | os.PathLike | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """``(network_def in eval mode, metadata)``; weights from ``ckpt_file`` (``checkpoint.get("model",
    checkpoint)``, as MONAI Label reads them) when given."""
    root = Path(bundle_dir).resolve()
    net = parse_inference(root, overrides).get_parsed_content("network_def", lazy=False)
    if ckpt_file is not None:
        state = torch.load(ckpt_file, map_location="cpu", weights_only=True)
        net.load_state_dict(state.get("model", state))
    meta = json.loads((root / "configs" / "metadata.json").read_text())
    return net.eval(), meta


def input_shape(meta: Mapping[str, Any], batch: int = 1) -> list[int]:
    """(batch, channels, *spatial_shape) of the metadata's first network input."""
    spec = next(iter(meta["network_data_format"]["inputs"].values()))
    return [batch, int(spec["num_channels"]), *(int(s) for s in spec["spatial_shape"])]


def example_input(meta: Mapping[str, Any], seed: int = 0) -> torch.Tensor:
    """A random input of :func:`input_shape`: integer ids in ``value_range`` for ``"labels"`` inputs,
    standard normal otherwise (latent noise)."""
    spec = next(iter(meta["network_data_format"]["inputs"].values()))
    gen = torch.Generator().manual_seed(int(seed))
    shape = input_shape(meta)
    if spec.get("format") == "labels":
        low, high = (int(v) for v in spec["value_range"])
        return torch.randint(low, high + 1, shape, generator=gen).float()
    return torch.randn(shape, generator=gen)


def export_torchscript(
    bundle_dir: str | os.PathLike,
    ckpt_file: str | os.PathLike,
    filepath: str | os.PathLike,
    overrides: Mapping[str, Any] | None = None,
) -> Path:
    """``monai.bundle.ckpt_export`` of ``network_def`` to ``filepath``, scripted as the model zoo's CI
    exports it (no tracing fallback: a network the zoo cannot script fails here too)."""
    from monai.bundle import ckpt_export

    root = Path(bundle_dir).resolve()
    meta_file = root / "configs" / "metadata.json"
    args = {
        "net_id": "network_def",
        "filepath": str(filepath),
        "ckpt_file": str(ckpt_file),
        "meta_file": str(meta_file),
        "config_file": str(root / "configs" / "inference.json"),
        "bundle_root": str(root),
        **dict(overrides or {}),
    }
    ckpt_export(**args)
    return Path(filepath)


def fold_spectral_norm(net: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``net`` in eval mode with every parametrization (spectral norm) folded into a plain
    weight (:func:`anatosynth_components.anatomask.spectral.fold_spectral_norm`)."""
    return fold_parametrizations(net).eval()


def export_onnx(net: torch.nn.Module, filepath: str | os.PathLike, example: torch.Tensor) -> Path:
    """``torch.onnx.export`` of ``net`` (spectral norm folded) for inputs shaped like ``example``."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ModuleNotFoundError as err:
        raise ConfigError(
            f"ONNX export needs {err.name}: pip install 'anatosynth-components[export]'"
        ) from None
    with torch.no_grad():
        torch.onnx.export(
            fold_spectral_norm(net), (example,), str(filepath), dynamo=True,
            input_names=["image"], output_names=["pred"], verbose=False,
        )  # fmt: skip
    return Path(filepath)


def run_onnx(filepath: str | os.PathLike, x: torch.Tensor) -> np.ndarray:
    """The ONNX file's output for ``x`` with onnxruntime on the CPU."""
    try:
        import onnxruntime as ort
    except ModuleNotFoundError:
        raise ConfigError(
            "checking an ONNX file needs onnxruntime: pip install 'anatosynth-components[export]'"
        ) from None
    session = ort.InferenceSession(str(filepath), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def eager(net: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return net(x).numpy()


def run_torchscript(filepath: str | os.PathLike, x: torch.Tensor) -> np.ndarray:
    module = torch.jit.load(str(filepath), map_location="cpu").eval()
    with torch.no_grad():
        return module(x).numpy()


ATOL = 2e-4
#: logits this close are a tie: an export may pick either class there
TIE = 1e-3


def chain_difference(net: torch.nn.Module, x: torch.Tensor, out: np.ndarray) -> float:
    """Largest image difference between an exported ACIS pair generator's output ``out`` and the eager
    chain, given the exported annotation.

    The chain takes an argmax between its generators: where two logits of the annotation generator
    tie (random weights give many near-ties), float differences of another runtime may pick the other
    class, and the image generator then draws that voxel's neighbourhood for it.  So the labels must
    agree except at ties (logit gap < ``TIE``), and the image is compared with the eager image
    generator's for the exported labels.
    """
    with torch.no_grad():
        pm = net.pseudo_mask_generator(x)
        logits = net.annotation_generator(pm)
        labels = torch.as_tensor(out[:, 1:2]).round().long()
        best = logits.argmax(dim=1, keepdim=True)
        gap = logits.gather(1, best) - logits.gather(1, labels.clamp(0, logits.shape[1] - 1))
        if bool((labels < 0).any() or (labels >= logits.shape[1]).any()) or float(gap.max()) >= TIE:
            raise ConfigError(
                f"exported annotation differs from the eager one beyond ties (gap {float(gap.max()):.3g})"
            )
        annotation = torch.zeros_like(logits).scatter_(1, labels, 1.0)
        image = net.image_generator(torch.cat([pm, annotation], dim=1)).numpy()
    return float(np.abs(image[:, 0] - out[:, 0]).max())


def check_export(
    bundle_dir: str | os.PathLike, ckpt_file: str | os.PathLike, kind: str, filepath: str | os.PathLike
) -> float:
    """Export ``kind`` (``"torchscript"`` or ``"onnx"``) of the bundle's network with the weights of
    ``ckpt_file`` to ``filepath`` and compare it with the eager network on a fresh random input.

    Returns the largest absolute difference (for an ACIS pair generator: of the image, given the
    exported annotation, see :func:`chain_difference`).  Raises ``ConfigError`` when it exceeds
    ``ATOL`` or the shapes differ.
    """
    net, meta = load_network(bundle_dir, ckpt_file)
    if kind == "torchscript":
        export_torchscript(bundle_dir, ckpt_file, filepath)
        run = run_torchscript
    elif kind == "onnx":
        export_onnx(net, filepath, example_input(meta))
        run = run_onnx
    else:
        raise ConfigError(f"export must be 'torchscript' or 'onnx', got {kind!r}")
    x = example_input(meta, seed=1)
    ref, out = eager(net, x), run(filepath, x)
    if ref.shape != out.shape:
        raise ConfigError(f"{filepath}: output shape {out.shape}, the eager network gives {ref.shape}")
    chain = all(hasattr(net, a) for a in ("pseudo_mask_generator", "annotation_generator", "image_generator"))
    diff = chain_difference(net, x, out) if chain else float(np.abs(out - ref).max())
    if diff > ATOL:
        raise ConfigError(f"{filepath}: differs from the eager network (max |diff| {diff:.3g})")
    logger.info("%s: %s export matches the eager network, max |diff| %.3g", filepath, kind, diff)
    return diff
