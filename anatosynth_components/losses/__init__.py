"""Losses: AnatoMaskGAN's objective (Eq. 5): hinge GAN, feature matching, VGG19, G-TC."""

from anatosynth_components.losses.anatomask_loss import AnatoMaskLoss, feature_matching
from anatosynth_components.losses.gtc import GTCClassifier, GTCLoss, gtc_descriptors
from anatosynth_components.losses.vgg import VGG19Loss, vgg19_weights_path

__all__ = [
    "AnatoMaskLoss",
    "GTCClassifier",
    "GTCLoss",
    "VGG19Loss",
    "feature_matching",
    "gtc_descriptors",
    "vgg19_weights_path",
]
