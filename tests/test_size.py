"""efflib.size: bytes of dense, bitmask and CSR storage at any bit width."""

import pytest
import torch
import torch.nn as nn

from efflib.size import model_size, tensor_bits


def test_dense_is_params_times_bits():
    m = nn.Linear(10, 3)  # 33 params
    assert [model_size(m, b) for b in (32, 16, 8, 4)] == [132, 66, 33, 17]  # 4 bits: 16.5 -> 17


def test_alexnet_fp32_is_244_mb_not_224():
    assert 61_100_840 * 4 / 1e6 == pytest.approx(244.4, abs=0.05)
    m = nn.Linear(1000, 61_100)  # same order of magnitude, quick
    assert model_size(m, 32) == 4 * (1000 * 61_100 + 61_100)


def test_default_width_is_each_tensors_own():
    net = nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 2))
    assert model_size(net) == (110 + 22) * 4
    net[0].half()
    assert model_size(net) == 110 * 2 + 22 * 4
    assert model_size(net.bfloat16()) == (110 + 22) * 2
    assert model_size(net, 8) == 110 + 22


def test_mixed_widths_longest_prefix_wins():
    m = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))  # 0: 16 + 4, 1: 8 + 2
    assert model_size(m, {"": 8, "1": 32}) == 20 + 40
    assert model_size(m, {"": 8, "1": 32, "1.bias": 16}) == 20 + 32 + 4
    with pytest.raises(KeyError, match="0.weight"):
        model_size(m, {"1": 8})


def test_sparse_formats_count_index_overhead():
    w = torch.zeros(4, 8)
    w[0, :3] = 1.0
    w[2, 5] = 2.0  # 4 nonzeros in 32 elements
    assert tensor_bits(w, 8) == 32 * 8
    assert tensor_bits(w, 8, "bitmask") == 4 * 8 + 32
    assert tensor_bits(w, 8, "csr", index_bits=16) == 4 * (8 + 16) + 5 * 16
    # a dense tensor costs more in either sparse format than stored plainly
    d = torch.ones(4, 8)
    assert tensor_bits(d, 8, "bitmask") > tensor_bits(d, 8)
    assert tensor_bits(d, 8, "csr") > tensor_bits(d, 8)


def test_csr_of_conv_weight_has_one_row_per_filter():
    w = torch.zeros(6, 3, 3, 3)
    w[:, 0, 0, 0] = 1.0
    assert tensor_bits(w, 32, "csr", 32) == 6 * 64 + 7 * 32


@pytest.mark.parametrize("kwargs,err", [
    ({"bits": 0}, "positive"), ({"bits": 2.5}, "positive"), ({"fmt": "coo"}, "format"),
])
def test_bad_arguments(kwargs, err):
    with pytest.raises(ValueError, match=err):
        tensor_bits(torch.ones(3), **kwargs)


def test_params_that_are_not_a_model_or_pairs_are_named():
    with pytest.raises(TypeError, match="model_size: params must be a model or"):
        model_size("fc")
    with pytest.raises(TypeError, match=r"model_size: params must be \(name, tensor\) pairs"):
        model_size([torch.zeros(3)])
    assert model_size([("w", torch.zeros(3))], 8) == 3
