"""LeNet-5: two conv/subsample pairs and three fully connected layers.

LeCun et al., Gradient-based learning applied to document recognition (1998),
http://yann.lecun.com/exdb/publis/pdf/lecun-98.pdf
"""

import torch
import torch.nn as nn


class LeNet5(nn.Module):
    """LeNet-5 on 32x32 single-channel images, tanh and average pooling as in the paper.

    C3 is fully connected to S2 here (the paper wires a sparse table), which gives the
    usual 61,706 parameters.
    """

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2),   # (N, 6, 14, 14)
            nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),  # (N, 16, 5, 5)
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),                                     # (N, 400)
            nn.Linear(16 * 5 * 5, 120), nn.Tanh(),
            nn.Linear(120, 84), nn.Tanh(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 1, 32, 32)
        return self.classifier(self.features(x))          # (N, num_classes)


def lenet5(*, num_classes: int = 10) -> LeNet5:
    """LeNet-5 (61,706 parameters for 10 classes).

    Args:
        num_classes: size of the last layer.
    """
    return LeNet5(num_classes)
