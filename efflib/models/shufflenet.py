"""ShuffleNet V2: channel split, a cheap branch, concatenation and channel shuffle.

Ma et al., ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design,
https://arxiv.org/abs/1807.11164
"""

import torch
import torch.nn as nn

from efflib.graded import reference
from efflib.models.blocks import conv_norm_act

# table 5 of the paper: output channels of conv1, stage2, stage3, stage4, conv5
_WIDTHS = {
    0.5: (24, 48, 96, 192, 1024),
    1.0: (24, 116, 232, 464, 1024),
    1.5: (24, 176, 352, 704, 1024),
    2.0: (24, 244, 488, 976, 2048),
}
_REPEATS = (4, 8, 4)  # units in stages 2, 3, 4 (the first of each has stride 2)


@reference("channel_shuffle")
def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of `groups` groups: (g, c/g) -> (c/g, g)."""
    n, c, h, w = x.shape
    if c % groups:
        raise ValueError(f"channel_shuffle: {c} channels do not split into {groups} groups")
    x = x.view(n, groups, c // groups, h, w).transpose(1, 2)  # (N, C/g, g, H, W)
    return x.reshape(n, c, h, w)


class ShuffleUnit(nn.Module):
    """Stride 1: split the channels, transform one half. Stride 2: two downsampling branches."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        if stride == 1 and c_in != c_out:
            raise ValueError("a stride-1 ShuffleUnit keeps its channel count")
        half = c_out // 2
        self.stride = stride
        self.branch1 = (nn.Sequential(*conv_norm_act(c_in, c_in, 3, stride, c_in, None),
                                      *conv_norm_act(c_in, half, 1))
                        if stride > 1 else nn.Identity())
        self.branch2 = nn.Sequential(
            *conv_norm_act(c_in if stride > 1 else half, half, 1),
            *conv_norm_act(half, half, 3, stride, half, None),
            *conv_norm_act(half, half, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, c_in, H, W)
        if self.stride == 1:
            a, b = x.chunk(2, dim=1)                     # (N, c/2, H, W) each
            out = torch.cat((a, self.branch2(b)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)                   # (N, c_out, H/s, W/s)


class ShuffleNetV2(nn.Module):
    """Stem conv and max-pool, three stages of ShuffleUnits, 1x1 conv5, pool, classifier."""

    def __init__(self, width: float = 1.0, num_classes: int = 1000):
        super().__init__()
        if width not in _WIDTHS:
            raise ValueError(f"ShuffleNetV2 width must be one of {sorted(_WIDTHS)}, got {width}")
        c = _WIDTHS[width]
        self.stem = nn.Sequential(*conv_norm_act(3, c[0], 3, 2), nn.MaxPool2d(3, 2, 1))
        stages, c_in = [], c[0]  # (N, 24, 56, 56) after the stem
        for c_out, n in zip(c[1:4], _REPEATS, strict=True):
            stages.append(nn.Sequential(*(ShuffleUnit(c_in if i == 0 else c_out, c_out,
                                                      2 if i == 0 else 1) for i in range(n))))
            c_in = c_out
        self.stages = nn.Sequential(*stages)                       # (N, c[3], 7, 7)
        self.conv5 = nn.Sequential(*conv_norm_act(c_in, c[4], 1))
        self.fc = nn.Linear(c[4], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, 224, 224)
        x = self.conv5(self.stages(self.stem(x)))        # (N, c[4], 7, 7)
        return self.fc(x.mean((2, 3)))                   # (N, num_classes)


def shufflenet_v2(*, width: float = 1.0, num_classes: int = 1000) -> ShuffleNetV2:
    """ShuffleNet V2 at 0.5x/1x/1.5x/2x: 41M/146M/299M/591M MACs in the paper's table 5.

    Args:
        width: channel multiplier, one of 0.5, 1.0, 1.5, 2.0.
        num_classes: size of the last layer.
    """
    return ShuffleNetV2(width, num_classes)
