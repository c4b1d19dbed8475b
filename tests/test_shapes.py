"""efflib.shapes against PyTorch: layers on the meta device and measured gradients."""

import itertools
import random

import pytest
import torch
import torch.nn.functional as F

from autograde.checks.lab01_layers import measured_receptive_field
from efflib import shapes
from efflib.graded import GradedAnswerError, blocked


def meta(*shape):
    return torch.empty(*shape, device="meta")


@pytest.mark.parametrize("size,k,s,p,d", [
    (size, k, s, p, d)
    for size, k, s, p, d in itertools.product([1, 2, 5, 7, 32, 224], [1, 2, 3, 5, 11],
                                              [1, 2, 4], [0, 1, 2], [1, 2])
    if size + 2 * p >= d * (k - 1) + 1])
def test_conv_output_size_matches_torch(size, k, s, p, d):
    expected = F.conv1d(meta(1, 1, size), meta(1, 1, k), stride=s, padding=p, dilation=d)
    assert shapes.conv_output_size(size, k, s, p, d) == expected.shape[-1]


def test_conv_output_size_lecture_alexnet():
    assert shapes.conv_output_size(224, 11, 4, 2) == 55
    assert shapes.pool_output_size(55, 3, 2) == 27
    assert shapes.conv_output_size(13, 3, 1, 1) == 13
    assert shapes.pool_output_size(13, 3, 2) == 6


def test_conv_transpose_output_size_matches_torch():
    r = random.Random(0)
    checked = 0
    while checked < 300:
        s, d = r.randint(1, 4), r.choice([1, 2, 3])
        kw = dict(size=r.randint(1, 30), kernel=r.randint(1, 7), stride=s,
                  padding=r.randint(0, 3), output_padding=r.randrange(max(s, d)), dilation=d)
        try:
            out = F.conv_transpose1d(meta(1, 1, kw["size"]), meta(1, 1, kw["kernel"]),
                                     stride=s, padding=kw["padding"],
                                     output_padding=kw["output_padding"], dilation=d)
        except RuntimeError:
            with pytest.raises(ValueError):
                shapes.conv_transpose_output_size(**kw)
            continue
        assert shapes.conv_transpose_output_size(**kw) == out.shape[-1], kw
        checked += 1


def test_autoencoder_decoder_restores_32():
    size = 4
    for k in (5, 9, 17):
        size = shapes.conv_transpose_output_size(size, k)
    assert size == 32


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_pool_output_size_matches_torch(ceil_mode):
    for size, k, s, p in itertools.product(range(1, 20), [1, 2, 3, 4], [None, 1, 2, 3], [0, 1]):
        if 2 * p > k or size + 2 * p < k:
            continue
        out = F.max_pool1d(torch.zeros(1, 1, size), k, stride=s, padding=p, ceil_mode=ceil_mode)
        assert shapes.pool_output_size(size, k, s, p, ceil_mode=ceil_mode) == out.shape[-1], (
            size, k, s, p)


def test_receptive_field_lecture_values():
    assert shapes.receptive_field([(3, 1)] * 2) == 5
    assert shapes.receptive_field([(3, 1)] * 3) == 7
    assert shapes.receptive_field([]) == 1
    assert shapes.receptive_fields([(3, 1), (3, 2), (3, 1)]) == [3, 5, 9]


def test_receptive_field_matches_backprop():
    r = random.Random(1)
    for _ in range(100):
        layers = [(r.choice([1, 2, 3, 5, 7]), r.choice([1, 2, 3])) for _ in range(r.randint(1, 6))]
        assert shapes.receptive_field(layers) == measured_receptive_field(layers), layers


def test_dilated_receptive_field_matches_backprop():
    x = torch.ones(1, 1, 64, dtype=torch.float64, requires_grad=True)
    y = F.conv1d(x, torch.ones(1, 1, 3, dtype=torch.float64), dilation=2)
    y = F.conv1d(y, torch.ones(1, 1, 3, dtype=torch.float64), stride=2)
    y = F.conv1d(y, torch.ones(1, 1, 3, dtype=torch.float64), dilation=3)
    y[0, 0, 0].backward()
    measured = int(torch.nonzero(x.grad[0, 0]).max()) + 1
    assert shapes.receptive_field([(3, 1, 2), (3, 2), {"kernel": 3, "dilation": 3}]) == measured


@pytest.mark.parametrize("call,message", [
    (lambda: shapes.conv_output_size(4, 7), "kernel spans 7"),
    (lambda: shapes.conv_output_size(4.0, 3), "size must be an int"),
    (lambda: shapes.conv_output_size(8, 3, stride=0), "stride must be >= 1"),
    (lambda: shapes.conv_output_size(8, 3, padding=-1), "padding must be >= 0"),
    (lambda: shapes.conv_transpose_output_size(4, 3, stride=2, output_padding=2),
     "output_padding must be smaller"),
    (lambda: shapes.receptive_field([(3, 1, 1, 1)]), "a layer is (kernel, stride"),
    (lambda: shapes.receptive_field(["3x3"]), "kernel must be an int"),
])
def test_bad_input_names_the_problem(call, message):
    with pytest.raises((TypeError, ValueError), match=message.replace("(", r"\(")):
        call()


def test_guard_blocks_reference_only_inside_block():
    with blocked("conv_output_size"):
        with pytest.raises(GradedAnswerError, match="write conv_output_size yourself"):
            shapes.conv_output_size(8, 3)
        with pytest.raises(GradedAnswerError):  # reached through another efflib function
            shapes.pool_output_size(8, 2)
        assert shapes.receptive_field([(3, 1)]) == 3  # other topics stay usable
    assert shapes.conv_output_size(8, 3) == 6
