"""AlexNet, in the lecture's grouped form and in torchvision's single-tower form.

Krizhevsky et al., ImageNet Classification with Deep Convolutional Neural Networks
(NeurIPS 2012); torchvision follows Krizhevsky, One weird trick,
https://arxiv.org/abs/1404.5997
"""

import torch
import torch.nn as nn

# out channels, kernel, stride, padding, groups, max-pool after
_LAYERS = {
    "lecture": [
        (96, 11, 4, 2, 1, True),
        (256, 5, 1, 2, 2, True),
        (384, 3, 1, 1, 1, False),
        (384, 3, 1, 1, 2, False),
        (256, 3, 1, 1, 2, True),
    ],
    "torchvision": [
        (64, 11, 4, 2, 1, True),
        (192, 5, 1, 2, 1, True),
        (384, 3, 1, 1, 1, False),
        (256, 3, 1, 1, 1, False),
        (256, 3, 1, 1, 1, True),
    ],
}


class AlexNet(nn.Module):
    """Five conv layers (ReLU, three max-pools) and three fully connected layers."""

    def __init__(self, variant: str = "torchvision", num_classes: int = 1000,
                 dropout: float = 0.5):
        super().__init__()
        if variant not in _LAYERS:
            raise ValueError(f"AlexNet variant must be one of {sorted(_LAYERS)}, got {variant!r}")
        layers: list[nn.Module] = []
        c_in = 3
        for c_out, k, s, p, g, pool in _LAYERS[variant]:
            layers += [nn.Conv2d(c_in, c_out, k, s, p, groups=g), nn.ReLU(inplace=True)]
            if pool:
                layers.append(nn.MaxPool2d(3, 2))
            c_in = c_out
        self.features = nn.Sequential(*layers)                   # (N, 256, 6, 6) at 224x224
        # torchvision pools to 6x6 so other input sizes work; the lecture's table has no such layer
        self.avgpool = nn.AdaptiveAvgPool2d(6) if variant == "torchvision" else nn.Identity()
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(c_in * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, 224, 224)
        x = self.avgpool(self.features(x))               # (N, 256, 6, 6)
        return self.classifier(torch.flatten(x, 1))      # (N, num_classes)


def alexnet(*, variant: str = "torchvision", num_classes: int = 1000,
            dropout: float = 0.5) -> AlexNet:
    """AlexNet: 61,100,840 parameters (torchvision) or 60,965,224 (lecture, 60,954,656 weights).

    Args:
        variant: "torchvision" (64/192/384/256/256 channels, one tower) or "lecture"
            (96/256/384/384/256 channels, layers 2, 4, 5 in two groups as on two GPUs).
        num_classes: size of the last layer.
        dropout: dropout probability before the first two fully connected layers.
    """
    return AlexNet(variant, num_classes, dropout)
