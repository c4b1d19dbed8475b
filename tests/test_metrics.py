"""efflib.metrics against the lecture's AlexNet tables and torch's FlopCounterMode."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from efflib.metrics import profile


def lecture_alexnet() -> nn.Sequential:
    """AlexNet as tabulated in lecture 02 (96/256/384/384/256, groups of 2), no biases."""
    def conv(ci, co, k, s=1, p=0, g=1):
        return [nn.Conv2d(ci, co, k, s, p, groups=g, bias=False), nn.ReLU(inplace=True)]
    return nn.Sequential(
        *conv(3, 96, 11, 4, 2), nn.MaxPool2d(3, 2),
        *conv(96, 256, 5, 1, 2, 2), nn.MaxPool2d(3, 2),
        *conv(256, 384, 3, 1, 1), *conv(384, 384, 3, 1, 1, 2), *conv(384, 256, 3, 1, 1, 2),
        nn.MaxPool2d(3, 2), nn.Flatten(),
        nn.Linear(256 * 6 * 6, 4096, bias=False), nn.ReLU(inplace=True),
        nn.Linear(4096, 4096, bias=False), nn.ReLU(inplace=True),
        nn.Linear(4096, 1000, bias=False),
    ).eval()


@pytest.fixture(scope="module")
def alexnet_profile():
    return profile(lecture_alexnet(), torch.randn(1, 3, 224, 224))


def test_lecture_alexnet_totals(alexnet_profile):
    p = alexnet_profile
    assert p.weights == 60_954_656
    assert p.macs == 724_406_816
    assert p.flops == 2 * 724_406_816
    assert p.activations == 932_264
    assert p.peak_activations == 440_928


def test_lecture_alexnet_per_layer(alexnet_profile):
    rows = {r.name: r for r in alexnet_profile.rows}
    weights = [rows[n].weights for n in ("0", "3", "6", "8", "10", "14", "16", "18")]
    assert weights == [34_848, 307_200, 884_736, 663_552, 442_368, 37_748_736, 16_777_216,
                       4_096_000]
    assert rows["0"].macs == 105_415_200 and rows["0"].output_shape == (1, 96, 55, 55)
    assert rows["1"].macs == 0 and rows["1"].activations == 0  # in-place ReLU: nothing new
    assert rows["1"].elementwise_ops == 290_400


def test_model_size_bytes(alexnet_profile):
    assert alexnet_profile.model_size(32) == 60_954_656 * 4  # ~244 MB, not the slides' 224
    assert alexnet_profile.model_size(8) == 60_954_656


class Functional(nn.Module):
    """Functional calls and a residual add inside one module's forward."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 4, 3, 3))
        self.fc = nn.Linear(8 * 6 * 6, 10)

    def forward(self, x):
        y = F.conv2d(x, self.w, padding=1, groups=1)  # (N, 8, 6, 6)
        y = y + F.relu(y)  # residual add: elementwise, never MACs
        z = y.flatten(1) @ self.fc.weight.T  # matmul without the module
        return z + self.fc(y.flatten(1))


def test_functional_calls_and_flop_counter_parity():
    model, x = Functional().eval(), torch.randn(2, 4, 6, 6)
    p = profile(model, x)
    with FlopCounterMode(display=False) as fc:
        model(x)
    assert p.flops == fc.get_total_flops()
    assert p.macs == 2 * 8 * 6 * 6 * 4 * 9 + 2 * 2 * 288 * 10
    assert p.elementwise_ops >= 2 * 8 * 6 * 6 * 2  # relu and the residual add at least


def test_zero_cost_ops_are_listed(alexnet_profile):
    assert "aten.view.default" in alexnet_profile.zero_cost_ops  # Flatten
    assert not any("convolution" in op or "addmm" in op for op in alexnet_profile.zero_cost_ops)
    text = str(alexnet_profile)
    assert "724,406,816 MACs" in text and "peak 440,928" in text


def test_rows_record_input_and_output_shapes(alexnet_profile):
    first = alexnet_profile.rows[1]
    assert (first.name, first.input_shape, first.output_shape) == (
        "0", (1, 3, 224, 224), (1, 96, 55, 55))
    assert alexnet_profile.row("14").input_shape == (1, 9216)
    assert alexnet_profile.row("(model)").output_shape == (1, 1000)
    with pytest.raises(KeyError, match="nope"):
        alexnet_profile.row("nope")
    assert "1x96x55x55" in str(alexnet_profile)


def test_model_size_follows_pruning_of_the_live_model():
    m = nn.Sequential(nn.Linear(64, 32, bias=False))
    p = profile(m, torch.randn(1, 64))
    assert p.model_size(32) == 64 * 32 * 4
    assert p.model_size(8) == 64 * 32
    with torch.no_grad():
        m[0].weight[:, 8:] = 0  # 256 nonzeros left
    assert p.model_size(8, "bitmask") == 256 + 64 * 32 // 8
    assert p.model_size(8, "csr", index_bits=8) == 256 * 2 + 33


def test_elementwise_ops_kept_apart_from_macs():
    m = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU()).eval()
    p = profile(m, torch.randn(1, 3, 10, 10))
    assert p.macs == 4 * 8 * 8 * 27
    assert p.row("1").elementwise_ops == 4 * 8 * 8 and p.row("1").macs == 0
    assert p.row("2").elementwise_ops == 4 * 8 * 8


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="nn.Module, got function"):
        profile(lambda x: x, torch.zeros(1))
    with pytest.raises(TypeError, match="example input tensor"):
        profile(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="list"):
        profile(nn.Linear(2, 2), [1.0, 2.0])
