"""ACIS pseudo-masks (paper Sec. 2.1): Canny edges, edge-density KDE (Eq. 1), density-weighted seeds,
Voronoi cells filled with the image value at their seed (Eq. 2); 2D and 3D, spacing-aware.

Modules: :mod:`.edges` (Canny 2D / 3D), :mod:`.density` (exact grid KDE, floor), :mod:`.sampling`
(weighted sampling without replacement), :mod:`.voronoi` (exact nearest-seed cells),
:mod:`.pseudomask` (end to end), :mod:`.transforms` (MONAI dictionary transforms for configs).
"""

from anatosynth_components.acis.pseudomask.density import (
    DEFAULT_BANDWIDTH_MM,
    DEFAULT_FLOOR,
    edge_density,
    kde_direct,
    sampling_weights,
)
from anatosynth_components.acis.pseudomask.edges import canny_edges, canny_nd
from anatosynth_components.acis.pseudomask.pseudomask import PseudoMask, pseudo_mask
from anatosynth_components.acis.pseudomask.sampling import sample_without_replacement
from anatosynth_components.acis.pseudomask.transforms import PseudoMaskDensityd, RandPseudoMaskd
from anatosynth_components.acis.pseudomask.voronoi import nearest_seed, voronoi_cells, voronoi_fill

__all__ = [
    "DEFAULT_BANDWIDTH_MM",
    "DEFAULT_FLOOR",
    "PseudoMask",
    "PseudoMaskDensityd",
    "RandPseudoMaskd",
    "canny_edges",
    "canny_nd",
    "edge_density",
    "kde_direct",
    "nearest_seed",
    "pseudo_mask",
    "sample_without_replacement",
    "sampling_weights",
    "voronoi_cells",
    "voronoi_fill",
]
