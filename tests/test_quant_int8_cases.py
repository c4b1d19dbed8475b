"""efflib.quant.int8_cases: the random int8 convs that Labs 05 and 06 hold integer kernels to."""

import torch

from efflib.quant import int8_cases
from efflib.quant.integer import ACTIVATIONS


def test_random_conv_is_drawn_from_the_generator_alone():
    one = int8_cases.random_conv(torch.Generator().manual_seed(3), (2, 3, 6, 5), 4, 3, 1, 1)
    torch.manual_seed(99)  # the conv's own initialisation is overwritten
    two = int8_cases.random_conv(torch.Generator().manual_seed(3), (2, 3, 6, 5), 4, 3, 1, 1)
    for a, b in ((one[0].weight, two[0].weight), (one[0].bias, two[0].bias), (one[1], two[1])):
        assert torch.equal(a, b)


def test_random_conv_codes_use_the_uint8_grid_and_outputs_go_negative():
    g = torch.Generator().manual_seed(0)
    layer, qx = int8_cases.random_conv(g, (1, 5, 7, 7), 6, 3, 2, 1, relu=True)
    assert qx.shape == (1, 5, 7, 7)
    assert ACTIVATIONS.qmin <= int(qx.min()) and int(qx.max()) <= ACTIVATIONS.qmax
    assert int(qx.max()) - int(qx.min()) > 200  # the input's own range, on the whole grid
    assert 0 < layer.y.zero_point < 255  # negatives: a ReLU's clamp at z_y matters
    assert layer(qx).shape == (1, 6, 4, 4)


def test_halfway_lands_a_quarter_of_the_results_exactly_halfway_of_both_signs():
    g = torch.Generator().manual_seed(1)
    layer, _ = int8_cases.random_conv(g, (2, 3, 6, 6), 4, 3, 1, 1)
    layer, qx = int8_cases.halfway(layer, (2, 3, 6, 6), g)
    acc = layer.accumulate(qx)
    assert acc.abs().max() < 60  # nothing saturates around z_y = 128
    assert int(layer.m0[0]) == 2**30 and int(layer.shift[0]) == 1  # M = 2^30 2^-31 2^-1 = 1/4
    halves = acc[acc % 4 == 2]  # acc / 4 ends in .5
    assert 0.15 < halves.numel() / acc.numel() < 0.35
    assert (halves > 0).any() and (halves < 0).any()
    assert torch.equal(layer(qx), (torch.floor(acc / 4 + 0.5) + 128).to(layer(qx).dtype))
