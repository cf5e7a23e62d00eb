"""Baseline networks of the ACIS reconstruction table (Table 2): EDSR-style ResNet, RED-CNN, ESRT."""

from anatosynth_components.experiments.networks.esrt import ESRT
from anatosynth_components.experiments.networks.redcnn import REDCNN
from anatosynth_components.experiments.networks.resnet import EDSRNet

__all__ = ["EDSRNet", "ESRT", "REDCNN"]
