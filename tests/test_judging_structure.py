"""judging.structure: a block's structure from its exported graph, blind to the order in
which branches are computed and to views, and the first difference named."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from autograde.judging import graphs, structure
from efflib import models


def of(module: nn.Module, x: torch.Tensor) -> tuple:
    return structure.structure(graphs.rebuild(graphs.describe(module.eval(), (x,))))


class ShortcutFirst(nn.Module):
    """efflib's Bottleneck with its shortcut computed first and a reshape on the way."""

    def __init__(self):
        super().__init__()
        self.inner = models.Bottleneck(64, 16, 2)

    def forward(self, x):
        skip = self.inner.downsample(x)
        body = self.inner.body(x)
        return F.relu(skip + body.reshape(body.shape))


def test_the_order_branches_run_in_and_views_change_nothing():
    x = torch.randn(2, 64, 8, 8)
    reference = models.Bottleneck(64, 16, 2)
    again = ShortcutFirst()
    again.inner.load_state_dict(reference.state_dict())
    assert structure.first_difference(of(again, x), of(reference, x)) is None


def test_a_different_activation_pool_or_join_is_named():
    x = torch.randn(1, 3, 8, 8)
    want = of(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU6(), nn.MaxPool2d(2)), x)
    relu = of(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)), x)
    avg = of(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU6(), nn.AvgPool2d(2)), x)
    assert structure.first_difference(relu, want) == \
        "a ReLU (after conv) where the specification has a ReLU6"
    assert structure.first_difference(avg, want) == \
        "an average pool (after ReLU6, conv) where the specification has a max pool"
    assert structure.first_difference(want, want) is None


def test_a_missing_input_of_a_join_is_named():
    class Residual(nn.Module):
        def __init__(self, skip: bool):
            super().__init__()
            self.conv, self.skip = nn.Conv2d(4, 4, 3, padding=1), skip

        def forward(self, x):
            return self.conv(x) + (x if self.skip else 1.0)
    x = torch.randn(1, 4, 6, 6)
    assert "takes 1 input where the specification's takes 2" in \
        structure.first_difference(of(Residual(False), x), of(Residual(True), x))
