"""A small CNN for scikit-learn's 8x8 handwritten digits, trainable on a CPU in seconds."""

import torch
import torch.nn as nn

from efflib.models.blocks import conv_norm_act


class DigitCNN(nn.Module):
    """Three 3x3 conv layers with BatchNorm, one 2x2 pool, global average pool, linear."""

    def __init__(self, num_classes: int = 10, width: int = 16):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            *conv_norm_act(1, w, 3), *conv_norm_act(w, 2 * w, 3),
            nn.MaxPool2d(2),                                                    # (N, 2w, 4, 4)
            *conv_norm_act(2 * w, 4 * w, 3),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 1, 8, 8)
        x = self.pool(self.features(x))                  # (N, 4w, 1, 1)
        return self.fc(torch.flatten(x, 1))              # (N, num_classes)


def digit_cnn(*, num_classes: int = 10, width: int = 16) -> DigitCNN:
    """DigitCNN for 1x8x8 inputs (width 16: 24,058 parameters).

    Args:
        num_classes: size of the last layer.
        width: channels of the first conv; later convs use 2x and 4x.
    """
    return DigitCNN(num_classes, width)
