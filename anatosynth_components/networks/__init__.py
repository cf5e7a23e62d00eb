"""Networks: the AnatoMaskGAN generator (SPADE + GNN-SIF + 3D-SNI) and discriminator."""

from anatosynth_components.networks.anatomask_discriminator import AnatoMaskDiscriminator
from anatosynth_components.networks.anatomask_generator import AnatoMaskGenerator
from anatosynth_components.networks.gnn_sif import GNNSIF
from anatosynth_components.networks.noise3d import NoiseInjection3D, noise3d
from anatosynth_components.networks.slice_graph import mask_similarity, slice_adjacency

__all__ = [
    "GNNSIF",
    "AnatoMaskDiscriminator",
    "AnatoMaskGenerator",
    "NoiseInjection3D",
    "mask_similarity",
    "noise3d",
    "slice_adjacency",
]
