"""MobileNetV2: inverted residual blocks with linear bottlenecks.

Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks,
https://arxiv.org/abs/1801.04381
"""

import torch
import torch.nn as nn

from efflib.models.blocks import conv_norm_act

# t: expansion, c: output channels, n: repeats, s: stride of the first repeat
_SETTINGS = [
    # t, c, n, s
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round a width to a multiple of `divisor`, never more than 10% below `v`."""
    rounded = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * v else rounded


def conv_bn_relu6(c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1,
                  relu: bool = True) -> nn.Sequential:
    """MobileNetV2's conv + BatchNorm (+ ReLU6), as one module."""
    return nn.Sequential(*conv_norm_act(c_in, c_out, k, stride, groups,
                                        nn.ReLU6 if relu else None))


class InvertedResidual(nn.Module):
    """1x1 expand by t, 3x3 depthwise, 1x1 linear projection; skip when shapes match."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int):
        super().__init__()
        hidden = int(round(c_in * expand))
        layers = [conv_bn_relu6(c_in, hidden, 1)] if expand != 1 else []
        layers += [
            conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),  # depthwise
            conv_bn_relu6(hidden, c_out, 1, relu=False),              # linear bottleneck
        ]
        self.conv = nn.Sequential(*layers)
        self.use_skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, c_in, H, W)
        out = self.conv(x)                               # (N, c_out, H/s, W/s)
        return x + out if self.use_skip else out


class MobileNetV2(nn.Module):
    """Stem conv, 17 inverted residual blocks, 1x1 conv to 1280, pool, classifier."""

    def __init__(self, width_mult: float = 1.0, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        c_in = make_divisible(32 * width_mult)
        last = make_divisible(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [conv_bn_relu6(3, c_in, 3, 2)]  # (N, 32, 112, 112)
        for t, c, n, s in _SETTINGS:
            c_out = make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(c_in, c_out, s if i == 0 else 1, t))
                c_in = c_out
        layers.append(conv_bn_relu6(c_in, last, 1))                # (N, 1280, 7, 7)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, 224, 224)
        x = self.pool(self.features(x))                  # (N, 1280, 1, 1)
        return self.classifier(torch.flatten(x, 1))      # (N, num_classes)


def mobilenet_v2(*, width_mult: float = 1.0, num_classes: int = 1000,
                 dropout: float = 0.2) -> MobileNetV2:
    """MobileNetV2: 3,504,872 parameters and 0.30 GMACs at width 1.0 and 224x224.

    Args:
        width_mult: multiplies every layer's channels (rounded to multiples of 8).
        num_classes: size of the last layer.
        dropout: dropout probability before the classifier.
    """
    return MobileNetV2(width_mult, num_classes, dropout)
