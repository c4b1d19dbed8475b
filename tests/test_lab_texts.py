"""Facts the lab texts state, held to their sources (the TA review's corrections)."""

import re

import pytest
import torch.nn as nn

from autograde.checks import lab03_architectures as C3
from autograde.checks.api import CheckFailed
from autograde.course import build


def text(lab: str) -> str:
    return "\n".join(c.source for c in build.source_notebook(lab).cells
                     if c.cell_type == "markdown")


def test_channel_pruning_credits_li_et_al_with_the_l1_norm():
    t = text("lab04_pruning")
    assert re.search(r"Li et\s+al\..*?\*\*L1\*\* norm", t, re.S)
    assert "this course ranks them by the **L2** norm" in t


def test_resnet_stride_on_the_3x3_is_named_torchvisions_variant():
    assert "v1.5" in text("lab03_architectures")


def test_labs_01_and_03_factorise_in_inception_v3s_order():
    t = text("lab01_layers")
    assert "$1 \\times k$ convolution $c_i \\to c_o$ followed by a" in t
    assert "$k \\times 1$ convolution $c_i \\to c_o$ followed by" not in t


def test_meta_device_profiling_is_not_said_to_count_everything():
    t = text("lab03_architectures")
    assert "counts everything" not in t and "activation counts need real tensors" in t


def test_smaller_slips():
    assert "after each block" not in text("lab03_architectures")
    assert "The edge-deployment notes (after Sze et al." in text("lab01_layers")
    assert "to within 0.1%" in text("lab02_metrics")


class Paper(nn.Module):
    """ResNet's bottleneck as the paper draws it: the stride on the first 1x1 conv."""

    def __init__(self, c_in, width, stride=1):
        super().__init__()
        out = 4 * width
        self.body = nn.Sequential(
            nn.Conv2d(c_in, width, 1, stride, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, out, 1, bias=False), nn.BatchNorm2d(out))
        self.skip = nn.Identity() if stride == 1 and c_in == out else nn.Sequential(
            nn.Conv2d(c_in, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x):
        return nn.functional.relu(self.body(x) + self.skip(x))


def test_a_paper_bottleneck_is_told_which_variant_the_lab_wants():
    with pytest.raises(CheckFailed, match="v1.5"):
        C3.check_bottleneck(Paper)


def test_lab_03_accepts_either_order_of_the_factorised_pair():
    def n_by_1_first(c_in, c_out, n):
        return nn.Sequential(nn.Conv2d(c_in, c_out, (n, 1), padding=(n // 2, 0), bias=False),
                             nn.Conv2d(c_out, c_out, (1, n), padding=(0, n // 2), bias=False))
    C3.check_factorised(n_by_1_first)

    def square(c_in, c_out, n):
        return nn.Sequential(nn.Conv2d(c_in, c_out, n, padding=n // 2, bias=False),
                             nn.Identity())
    with pytest.raises(CheckFailed, match="conv"):
        C3.check_factorised(square)
