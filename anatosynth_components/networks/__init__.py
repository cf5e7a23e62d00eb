"""Networks: the AnatoMaskGAN generator (SPADE + GNN-SIF + 3D-SNI), its one-tensor bundle wrapper
and the discriminator."""

from anatosynth_components.networks.anatomask_discriminator import AnatoMaskDiscriminator
from anatosynth_components.networks.anatomask_generator import AnatoMaskGenerator
from anatosynth_components.networks.anatomask_net import AnatoMaskNet, one_hot_stack
from anatosynth_components.networks.gnn_sif import GNNSIF
from anatosynth_components.networks.noise3d import NoiseInjection3D, noise3d
from anatosynth_components.networks.slice_graph import mask_similarity, slice_adjacency

__all__ = [
    "GNNSIF",
    "AnatoMaskDiscriminator",
    "AnatoMaskGenerator",
    "AnatoMaskNet",
    "NoiseInjection3D",
    "mask_similarity",
    "noise3d",
    "one_hot_stack",
    "slice_adjacency",
]
