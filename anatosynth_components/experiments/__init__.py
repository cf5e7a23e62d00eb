"""The papers' tables (``anatosynth tables``): AnatoMaskGAN's ablation (Table II), ACIS's few-shot
segmentation (Table 1) and reconstruction (Table 2), with the reconstruction baselines in
:mod:`.networks`.  The methods never import this package."""
