"""Demo datasets: procedural 3-D phantoms written in the exact on-disk layouts of the real data.

``anatosynth demo-data --kind brain|abdomen|chest|penet --out DIR`` (or :func:`generate_demo`)
writes:

- ``brain``: Learn2Reg OASIS layout (``OASIS_dataset.json``, ``imagesTr/``, ``labelsTr/``,
  ``masksTr/``), T1-like MRI in [0, 1], the 35 OASIS labels;
- ``abdomen``: Learn2Reg AbdomenCTCT layout, CT in HU, the 13 organs;
- ``chest``: datalist layout (``dataset.json``), CT in HU, 5 lung lobes + heart, with vessels and airways;
- ``penet``: PENet layout (``data.hdf5`` int16 HU [z, y, x] per study, ``series_list.pkl``), CTPA contrast.
"""

from anatosynth_components.data.demo.generate import DEMO_KINDS, generate_demo

__all__ = ["DEMO_KINDS", "generate_demo"]
