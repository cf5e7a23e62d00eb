"""Losses: AnatoMaskGAN's objective (Eq. 5): hinge GAN, feature matching, VGG19, G-TC; ACIS's WGAN-GP
and synthesis objectives."""

from anatosynth_components.losses.acis_synthesis_loss import AcisSynthesisLoss
from anatosynth_components.losses.anatomask_loss import AnatoMaskLoss, feature_matching
from anatosynth_components.losses.gtc import GTCClassifier, GTCLoss, gtc_descriptors
from anatosynth_components.losses.vgg import VGG19Loss, vgg19_weights_path
from anatosynth_components.losses.wgan_gp import WGANGPLoss, gradient_penalty

__all__ = [
    "AcisSynthesisLoss",
    "AnatoMaskLoss",
    "GTCClassifier",
    "GTCLoss",
    "VGG19Loss",
    "WGANGPLoss",
    "feature_matching",
    "gradient_penalty",
    "gtc_descriptors",
    "vgg19_weights_path",
]
