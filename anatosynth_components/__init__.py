"""AnatoSynth components: the Python package that the AnatoSynth MONAI bundles instantiate.

Subpackages:
    data: dataset readers for the real on-disk layouts, subject splits, MONAI transforms, demo phantoms.
"""

__version__ = "0.1.0"
