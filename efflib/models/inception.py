"""An Inception block whose 7x7 convs are factorised into 1x7 and 7x1 pairs.

Szegedy et al., Rethinking the Inception Architecture for Computer Vision (figure 6),
https://arxiv.org/abs/1512.00567
"""

import torch
import torch.nn as nn

from efflib.models.blocks import conv_norm_act


def conv_bn(c_in: int, c_out: int, k: tuple[int, int]) -> nn.Sequential:
    """Inception's conv + BatchNorm (eps 1e-3) + ReLU, as one module."""
    return nn.Sequential(*conv_norm_act(c_in, c_out, k, eps=1e-3))


class InceptionFactorised(nn.Module):
    """Four parallel branches concatenated: 1x1; 1x1-1x7-7x1; 1x1-(7x1-1x7)x2; pool-1x1."""

    def __init__(self, c_in: int = 768, c_mid: int = 128, c_branch: int = 192, n: int = 7):
        super().__init__()
        self.branch1 = conv_bn(c_in, c_branch, (1, 1))
        self.branch7 = nn.Sequential(conv_bn(c_in, c_mid, (1, 1)), conv_bn(c_mid, c_mid, (1, n)),
                                     conv_bn(c_mid, c_branch, (n, 1)))
        self.branch7x2 = nn.Sequential(
            conv_bn(c_in, c_mid, (1, 1)), conv_bn(c_mid, c_mid, (n, 1)),
            conv_bn(c_mid, c_mid, (1, n)), conv_bn(c_mid, c_mid, (n, 1)),
            conv_bn(c_mid, c_branch, (1, n)),
        )
        self.branch_pool = nn.Sequential(nn.AvgPool2d(3, 1, 1), conv_bn(c_in, c_branch, (1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, c_in, H, W)
        branches = (self.branch1, self.branch7, self.branch7x2, self.branch_pool)
        return torch.cat([b(x) for b in branches], dim=1)  # (N, 4 * c_branch, H, W)


def inception_block(*, in_channels: int = 768, mid_channels: int = 128,
                    branch_channels: int = 192, n: int = 7) -> InceptionFactorised:
    """Inception-v3's 17x17 block (figure 6 of the paper) with n x n convs factorised.

    Args:
        in_channels: input channels (768 in Inception-v3).
        mid_channels: width inside the factorised branches (128-192 in Inception-v3).
        branch_channels: output channels of each of the four branches.
        n: the factorised kernel is 1 x n followed by n x 1.
    """
    return InceptionFactorised(in_channels, mid_channels, branch_channels, n)
