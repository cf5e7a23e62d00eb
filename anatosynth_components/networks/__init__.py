"""Networks: the AnatoMaskGAN generator (SPADE + GNN-SIF + 3D-SNI), its one-tensor bundle wrapper
and the discriminator; the ACIS generators, critic, image discriminator and their one-tensor chain."""

from anatosynth_components.networks.acis_annotation_generator import AnnotationGenerator
from anatosynth_components.networks.acis_image_discriminator import ImageDiscriminator
from anatosynth_components.networks.acis_image_generator import ImageGenerator
from anatosynth_components.networks.acis_one_hot import hard_one_hot, label_one_hot, straight_through_one_hot
from anatosynth_components.networks.acis_pair_generator import AcisPairGenerator
from anatosynth_components.networks.acis_pseudomask_critic import PseudoMaskCritic
from anatosynth_components.networks.acis_pseudomask_generator import PseudoMaskGenerator, sample_latent
from anatosynth_components.networks.anatomask_discriminator import AnatoMaskDiscriminator
from anatosynth_components.networks.anatomask_generator import AnatoMaskGenerator
from anatosynth_components.networks.anatomask_net import AnatoMaskNet, one_hot_stack
from anatosynth_components.networks.gnn_sif import GNNSIF
from anatosynth_components.networks.noise3d import NoiseInjection3D, noise3d
from anatosynth_components.networks.slice_graph import mask_similarity, slice_adjacency

__all__ = [
    "GNNSIF",
    "AcisPairGenerator",
    "AnnotationGenerator",
    "ImageDiscriminator",
    "ImageGenerator",
    "PseudoMaskCritic",
    "PseudoMaskGenerator",
    "hard_one_hot",
    "label_one_hot",
    "sample_latent",
    "straight_through_one_hot",
    "AnatoMaskDiscriminator",
    "AnatoMaskGenerator",
    "AnatoMaskNet",
    "NoiseInjection3D",
    "mask_similarity",
    "noise3d",
    "one_hot_stack",
    "slice_adjacency",
]

# reconstruction networks of the ACIS Table 2 experiment (anatosynth tables reconstruction)
from anatosynth_components.networks.recon_esrt import ESRT  # noqa: E402
from anatosynth_components.networks.recon_redcnn import REDCNN  # noqa: E402
from anatosynth_components.networks.recon_resnet import EDSRNet  # noqa: E402

__all__ += ["EDSRNet", "ESRT", "REDCNN"]
