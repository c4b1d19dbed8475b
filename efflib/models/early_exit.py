"""A digit CNN with an early exit: easy images stop after the first block.

Teerapittayanon et al., BranchyNet: Fast Inference via Early Exiting from Deep
Neural Networks, ICPR 2016 (https://arxiv.org/abs/1709.01686).
"""

import torch
import torch.nn as nn

from efflib.models.blocks import conv_norm_act


class EarlyExitCNN(nn.Module):
    """block1 -> exit1 (a linear classifier) and block1 -> block2 -> head (the full network).

    `forward` is the full network; `exits` returns both classifiers' logits (for
    training both at once). Which images may stop at exit1 is decided at inference.
    """

    def __init__(self, num_classes: int = 10, width: int = 16):
        super().__init__()
        w = width
        self.block1 = nn.Sequential(*conv_norm_act(1, w, 3), *conv_norm_act(w, 2 * w, 3),
                                    nn.MaxPool2d(2))                 # (N, 2w, 4, 4)
        self.exit1 = nn.Sequential(nn.Flatten(), nn.Linear(2 * w * 16, num_classes))
        self.block2 = nn.Sequential(*conv_norm_act(2 * w, 4 * w, 3),
                                    *conv_norm_act(4 * w, 4 * w, 3))    # (N, 4w, 4, 4)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(4 * w, num_classes))     # (N, num_classes)

    def exits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (N, 1, 8, 8)
        h = self.block1(x)
        return self.exit1(h), self.head(self.block2(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 1, 8, 8)
        return self.head(self.block2(self.block1(x)))


def early_exit_cnn(*, num_classes: int = 10, width: int = 16) -> EarlyExitCNN:
    """EarlyExitCNN for 1x8x8 inputs: the exit after two convs, the head after four."""
    return EarlyExitCNN(num_classes, width)
