"""AnatoMaskGAN (Wu et al.): SPADE mask-to-image synthesis on stacks of adjacent slices, with GNN
slice-feature fusion (GNN-SIF), 3-D spatial noise injection (3D-SNI) and a grayscale-texture
classifier loss (G-TC).

Modules (one concept each):
    generator: ``AnatoMaskGenerator``, the SPADE decoder with GNN-SIF and 3D-SNI.
    gnn_sif: ``GNNSIF``, multi-scale aggregation, graph fusion and the Eq. 1 attention.
    slice_graph: ``slice_adjacency``, ``mask_similarity``: the slice graph of GNN-SIF.
    noise3d: ``noise3d``, ``NoiseInjection3D``: the Eq. 2 noise volume and its injection.
    spade: ``SPADENorm``, ``SPADEResBlock``: SPADE's normalisation and residual block.
    spectral: spectral normalisation of the networks' convolutions.
    discriminator: ``AnatoMaskDiscriminator``, multi-scale patch discriminator on (mask, image).
    net: ``AnatoMaskNet``, the one-tensor network of the bundles; ``one_hot_stack``.
    loss: ``AnatoMaskLoss``, the Eq. 5 objective; ``feature_matching``, SPADE's hinge terms.
    gtc: ``GTCClassifier``, ``GTCLoss``, ``gtc_descriptors`` (Eqs. 3-4).
    vgg: ``VGG19Loss`` (perceptual term of Eq. 5) and where its weights are found.
    step: ``anatomask_train_step`` (D step, then G step), ``judge``.
    trainer: ``AnatoMaskTrainer``, the bundles' trainer.
    label_mean: ``LabelMeans``, ``LabelMeanImaged``: the label-mean baseline image of the evaluation.
    inferer: ``SliceStackInferer``, whole volumes from overlapping slice stacks.
    prepare_batch: ``MaskToImageBatch``, evaluator batches (label volume in, image volume as target).
    report: ``SynthesisReport``, per-subject metrics and montage of an evaluation.
"""

from anatosynth_components.anatomask.discriminator import AnatoMaskDiscriminator
from anatosynth_components.anatomask.generator import AnatoMaskGenerator
from anatosynth_components.anatomask.gnn_sif import GNNSIF
from anatosynth_components.anatomask.gtc import GTCClassifier, GTCLoss, gtc_descriptors
from anatosynth_components.anatomask.inferer import SliceStackInferer, blend_weights
from anatosynth_components.anatomask.label_mean import LabelMeanImaged, LabelMeans
from anatosynth_components.anatomask.loss import (
    AnatoMaskLoss,
    feature_matching,
    hinge_discriminator,
    hinge_generator,
)
from anatosynth_components.anatomask.net import AnatoMaskNet, one_hot_stack
from anatosynth_components.anatomask.noise3d import NoiseInjection3D, noise3d
from anatosynth_components.anatomask.prepare_batch import MaskToImageBatch
from anatosynth_components.anatomask.report import SynthesisReport
from anatosynth_components.anatomask.slice_graph import mask_similarity, slice_adjacency
from anatosynth_components.anatomask.spade import SPADENorm, SPADEResBlock
from anatosynth_components.anatomask.step import anatomask_train_step, judge
from anatosynth_components.anatomask.trainer import AnatoMaskTrainer
from anatosynth_components.anatomask.vgg import VGG19Loss, vgg19_weights_path

__all__ = [
    "GNNSIF",
    "AnatoMaskDiscriminator",
    "AnatoMaskGenerator",
    "AnatoMaskLoss",
    "AnatoMaskNet",
    "AnatoMaskTrainer",
    "GTCClassifier",
    "GTCLoss",
    "LabelMeanImaged",
    "LabelMeans",
    "MaskToImageBatch",
    "NoiseInjection3D",
    "SPADENorm",
    "SPADEResBlock",
    "SliceStackInferer",
    "SynthesisReport",
    "VGG19Loss",
    "anatomask_train_step",
    "blend_weights",
    "feature_matching",
    "gtc_descriptors",
    "hinge_discriminator",
    "hinge_generator",
    "judge",
    "mask_similarity",
    "noise3d",
    "one_hot_stack",
    "slice_adjacency",
    "vgg19_weights_path",
]
