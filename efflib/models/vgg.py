"""VGG-16: thirteen 3x3 convs in five stages, then three fully connected layers.

Simonyan and Zisserman, Very Deep Convolutional Networks for Large-Scale Image
Recognition, https://arxiv.org/abs/1409.1556
"""

import torch
import torch.nn as nn

from efflib.graded import reference

# configuration D of the paper: channels of each 3x3 conv, "M" a 2x2 max-pool
_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
          512, 512, 512, "M"]


@reference("vgg_stage")
def vgg_stage(c_in: int, c_out: int, convs: int, batch_norm: bool = False) -> nn.Sequential:
    """`convs` 3x3 same-padding convs with ReLU, then a 2x2 max-pool halving H and W."""
    layers: list[nn.Module] = []
    for i in range(convs):
        layers.append(nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(nn.ReLU(inplace=True))
    layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """VGG network from a list of stage widths and conv counts."""

    def __init__(self, cfg: list, num_classes: int = 1000, dropout: float = 0.5,
                 batch_norm: bool = False):
        super().__init__()
        stages, c_in, widths = [], 3, []
        for item in cfg:
            if item == "M":  # close the stage of the widths seen since the last pool
                stages.append(vgg_stage(c_in, widths[-1], len(widths), batch_norm))
                c_in, widths = widths[-1], []
            else:
                widths.append(item)
        self.features = nn.Sequential(*stages)          # (N, 512, 7, 7) at 224x224
        self.avgpool = nn.AdaptiveAvgPool2d(7)
        self.classifier = nn.Sequential(
            nn.Linear(c_in * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, 224, 224)
        x = self.avgpool(self.features(x))               # (N, 512, 7, 7)
        return self.classifier(torch.flatten(x, 1))      # (N, num_classes)


def vgg16(*, num_classes: int = 1000, dropout: float = 0.5, batch_norm: bool = False) -> VGG:
    """VGG-16 (configuration D): 138,357,544 parameters, 15.47 GMACs at 224x224.

    Args:
        num_classes: size of the last layer.
        dropout: dropout probability in the classifier.
        batch_norm: add BatchNorm after every conv (VGG-16-BN).
    """
    return VGG(_VGG16, num_classes, dropout, batch_norm)
