"""ResNet-50: bottleneck residual blocks (1x1 reduce, 3x3, 1x1 expand) in four stages.

He et al., Deep Residual Learning for Image Recognition, https://arxiv.org/abs/1512.03385
(stride on the 3x3 conv, as torchvision's "v1.5").
"""

import torch
import torch.nn as nn

from efflib.models.blocks import conv_norm_act


def conv_bn(c_in: int, c_out: int, k: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    """ResNet's conv + BatchNorm (+ ReLU), as one module."""
    return nn.Sequential(*conv_norm_act(c_in, c_out, k, stride,
                                        activation=nn.ReLU if relu else None))


class Bottleneck(nn.Module):
    """1x1 reduce to `width`, 3x3 (strided), 1x1 expand to 4 x width, plus the skip."""

    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int = 1):
        super().__init__()
        c_out = width * self.expansion
        self.body = nn.Sequential(
            conv_bn(c_in, width, 1),
            conv_bn(width, width, 3, stride),
            conv_bn(width, c_out, 1, relu=False),
        )
        # the skip needs a 1x1 projection when the shape changes
        self.downsample = (conv_bn(c_in, c_out, 1, stride, relu=False)
                           if stride != 1 or c_in != c_out else nn.Identity())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, c_in, H, W)
        return self.relu(self.body(x) + self.downsample(x))  # (N, 4w, H/s, W/s)


class ResNet(nn.Module):
    """Stem (7x7 conv, max-pool), four bottleneck stages, global average pool, classifier."""

    def __init__(self, blocks: list[int], num_classes: int = 1000):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1))  # (N, 64, 56, 56)
        stages, c_in = [], 64
        for i, n in enumerate(blocks):
            width = 64 * 2**i
            layers = []
            for j in range(n):
                layers.append(Bottleneck(c_in, width, 2 if (j == 0 and i > 0) else 1))
                c_in = width * Bottleneck.expansion
            stages.append(nn.Sequential(*layers))
        self.layers = nn.Sequential(*stages)                  # (N, 2048, 7, 7)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, 224, 224)
        x = self.pool(self.layers(self.stem(x)))         # (N, 2048, 1, 1)
        return self.fc(torch.flatten(x, 1))              # (N, num_classes)


def resnet50(*, num_classes: int = 1000) -> ResNet:
    """ResNet-50: 25,557,032 parameters, 4.09 GMACs at 224x224.

    Args:
        num_classes: size of the last layer.
    """
    return ResNet([3, 4, 6, 3], num_classes)
