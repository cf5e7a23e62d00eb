"""AnatoSynth components: the Python package that the AnatoSynth MONAI bundles instantiate.

Subpackages:
    anatomask: AnatoMaskGAN (SPADE + GNN-SIF + 3D-SNI generator, discriminator, G-TC / VGG / Eq. 5
        losses, training step and trainer, whole-volume inferer, evaluation report).
    acis: ACIS (pseudo-masks, generators, critic and discriminator, WGAN-GP and synthesis losses, the
        two training phases, evaluator, sampling, refinement, MONAI Label inferer).
    data: dataset readers for the real on-disk layouts, subject splits, MONAI transforms, demo phantoms.
    metrics: PSNR, slice SSIM, inter-slice coherence, LPIPS (only with genuine weights), table scores.
    handlers: best model across resume, final validation, TensorBoard image grids, progress bar.
    bundle: what the bundle configs call (bundle folder, data source, checkpoints, inputs).
    engines: the trainer base both methods share (amp, epoch means, checkpoints) and step helpers.
    experiments: the papers' tables (``anatosynth tables``) and their baseline networks.
    benchmarks: ``anatosynth benchmark``: timings against a baseline in the same run.
    packaging: model-zoo checks, TorchScript / ONNX exports, ``anatosynth package``.
    cli: the ``anatosynth`` command line.
"""

__version__ = "0.4.0"

_SUBPACKAGES = (
    "anatomask",
    "acis",
    "data",
    "metrics",
    "handlers",
    "bundle",
    "engines",
    "experiments",
    "benchmarks",
    "packaging",
    "cli",
    "errors",
    "network_size",
    "atomic",
    "visualize",
)


def __getattr__(name: str):
    """Import subpackages on first use, so ``$anatosynth_components.data.read_dataset(...)`` works
    in bundle configs after ``"imports": ["$import anatosynth_components"]``."""
    if name in _SUBPACKAGES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
