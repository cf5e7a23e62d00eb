"""ACIS (Chu et al., MICCAI 2024): anatomy-constrained synthesis of image-annotation pairs.

Subpackages:
    pseudomask: the anatomical prior (Sec. 2.1): Canny edges, edge-density KDE, weighted seeds, Voronoi.
    refinement: registration uncertainty (Eq. 3) as a REINFORCE reward (Sec. 2.3).

Modules (one concept each):
    pseudomask_generator, pseudomask_critic: ``PseudoMaskGenerator`` (z -> pseudo-mask) and its
        WGAN-GP critic ``PseudoMaskCritic``; wgan_gp: ``WGANGPLoss``.
    annotation_generator, image_generator, image_discriminator: ``AnnotationGenerator``,
        ``ImageGenerator`` (pix2pix), ``ImageDiscriminator``; synthesis_loss: ``AcisSynthesisLoss``.
    pair_generator: ``AcisPairGenerator``, the one-tensor chain z -> (image, annotation) of the bundles.
    one_hot: straight-through one-hot of generated annotations.
    shapes: checks of ``spatial_dims`` / ``spatial_size`` / channels.
    step, trainer: one training iteration and ``AcisTrainer`` (phases 1 and 2, Sec. 2.2).
    evaluator, validation, report, realism, image_grid, panels: evaluation and what it shows.
    sampling, data_grid: pairs sampled from noise, written on the training data's grid.
    slices, chest_labels, check_headers, seeded_pseudomask: data parts of the ACIS bundles.
    label_inferer: ``AcisLabelInferer``, an image for a given label volume (MONAI Label serving).
"""

from anatosynth_components.acis import pseudomask, refinement
from anatosynth_components.acis.annotation_generator import AnnotationGenerator
from anatosynth_components.acis.check_headers import check_headers
from anatosynth_components.acis.chest_labels import (
    CHEST_THRESHOLD_LABELS,
    ChestThresholdLabelsd,
    chest_threshold_labels,
)
from anatosynth_components.acis.data_grid import DataGridWriter, grid_of, read_data_grid
from anatosynth_components.acis.evaluator import AcisEvaluator
from anatosynth_components.acis.image_discriminator import ImageDiscriminator
from anatosynth_components.acis.image_generator import ImageGenerator
from anatosynth_components.acis.image_grid import AcisImageGrid, grid_image
from anatosynth_components.acis.label_inferer import AcisLabelInferer, class_statistics, label_pseudo_mask
from anatosynth_components.acis.one_hot import hard_one_hot, label_one_hot, straight_through_one_hot
from anatosynth_components.acis.pair_generator import AcisPairGenerator
from anatosynth_components.acis.pseudomask_critic import PseudoMaskCritic
from anatosynth_components.acis.pseudomask_generator import PseudoMaskGenerator, sample_latent
from anatosynth_components.acis.realism import class_intensities, label_fractions, realism_statistics
from anatosynth_components.acis.report import AcisReport
from anatosynth_components.acis.sampling import (
    LatentNoised,
    PairDatalistWriter,
    SavePaird,
    sample_items,
    sample_pairs,
    to_range,
)
from anatosynth_components.acis.seeded_pseudomask import SeededPseudoMaskd
from anatosynth_components.acis.slices import RandSlicesd, Slicesd, cut_slice, slice_affine
from anatosynth_components.acis.step import AcisParts, pseudo_mask_gan_step, synthesis_step
from anatosynth_components.acis.synthesis_loss import AcisSynthesisLoss
from anatosynth_components.acis.trainer import AcisTrainer
from anatosynth_components.acis.validation import PhaseValidationHandler
from anatosynth_components.acis.wgan_gp import WGANGPLoss, gradient_penalty

__all__ = [
    "pseudomask",
    "refinement",
    "AnnotationGenerator",
    "AcisEvaluator",
    "ImageDiscriminator",
    "ImageGenerator",
    "AcisLabelInferer",
    "class_statistics",
    "label_pseudo_mask",
    "hard_one_hot",
    "label_one_hot",
    "straight_through_one_hot",
    "AcisPairGenerator",
    "PseudoMaskCritic",
    "PseudoMaskGenerator",
    "sample_latent",
    "AcisParts",
    "pseudo_mask_gan_step",
    "synthesis_step",
    "AcisSynthesisLoss",
    "AcisTrainer",
    "WGANGPLoss",
    "gradient_penalty",
    "CHEST_THRESHOLD_LABELS",
    "AcisImageGrid",
    "AcisReport",
    "ChestThresholdLabelsd",
    "DataGridWriter",
    "LatentNoised",
    "PairDatalistWriter",
    "PhaseValidationHandler",
    "RandSlicesd",
    "SavePaird",
    "SeededPseudoMaskd",
    "Slicesd",
    "check_headers",
    "chest_threshold_labels",
    "class_intensities",
    "cut_slice",
    "grid_image",
    "grid_of",
    "label_fractions",
    "read_data_grid",
    "realism_statistics",
    "sample_items",
    "sample_pairs",
    "slice_affine",
    "to_range",
]
