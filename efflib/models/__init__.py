"""The course's CNNs, written layer by layer (torchvision does not import beside torch 2.13)."""

from efflib.models.alexnet import AlexNet, alexnet
from efflib.models.blocks import conv_norm_act
from efflib.models.digits import DigitCNN, digit_cnn
from efflib.models.early_exit import EarlyExitCNN, early_exit_cnn
from efflib.models.inception import InceptionFactorised, inception_block
from efflib.models.lenet import LeNet5, lenet5
from efflib.models.mobilenet import InvertedResidual, MobileNetV2, mobilenet_v2
from efflib.models.resnet import Bottleneck, ResNet, resnet50
from efflib.models.shufflenet import ShuffleNetV2, ShuffleUnit, channel_shuffle, shufflenet_v2
from efflib.models.vgg import VGG, vgg16

__all__ = [
    "AlexNet", "alexnet", "DigitCNN", "digit_cnn", "EarlyExitCNN", "early_exit_cnn",
    "InceptionFactorised", "inception_block",
    "LeNet5", "lenet5", "InvertedResidual", "MobileNetV2", "mobilenet_v2", "Bottleneck",
    "ResNet", "resnet50", "ShuffleNetV2", "ShuffleUnit", "channel_shuffle", "shufflenet_v2",
    "VGG", "vgg16", "conv_norm_act",
]
