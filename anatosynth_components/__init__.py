"""AnatoSynth components: the Python package that the AnatoSynth MONAI bundles instantiate.

Subpackages:
    data: dataset readers for the real on-disk layouts, subject splits, MONAI transforms, demo phantoms.
    pseudomask: ACIS pseudo-masks (Canny edges, edge-density KDE, weighted seeds, exact Voronoi).
    networks: the AnatoMaskGAN generator (SPADE + GNN-SIF + 3D-SNI), its bundle wrapper, discriminator.
    losses: AnatoMaskGAN's objective (hinge GAN, feature matching, VGG19, G-TC).
    engines: the training step, the Ignite trainer, evaluation batch preparation and report.
    inferers: whole-volume synthesis from overlapping slice stacks.
    metrics: PSNR, slice SSIM, inter-slice coherence, LPIPS (only with genuine weights).
    handlers: TensorBoard image grids, a progress bar with losses.
    bundle: what the bundle configs call (bundle folder, data source, checkpoints, inputs).
    acis: ACIS workflow parts (2-D slices, PENet threshold labels, data grid, sampling, report).
    refinement: ACIS refinement (registration network and trainer, Eq. 3 uncertainty, REINFORCE refiner).
    serving: MONAI Label glue (label-conditioned ACIS inferer, resampling to the request's grid).
    packaging: model-zoo checks, TorchScript / ONNX exports, ``anatosynth package``.
    experiments: the papers' tables (``anatosynth tables``): ablation, segmentation, reconstruction.
"""

__version__ = "0.1.0"

_SUBPACKAGES = (
    "data",
    "pseudomask",
    "networks",
    "losses",
    "engines",
    "inferers",
    "metrics",
    "handlers",
    "bundle",
    "acis",
    "refinement",
    "serving",
    "packaging",
    "experiments",
    "errors",
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
