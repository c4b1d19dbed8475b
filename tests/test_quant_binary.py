"""efflib.quant.binary: binary and ternary weights with per-channel scales, by hand."""

import pytest
import torch

from efflib.quant.binary import binarize, ternarize


def test_binary_weights_are_plus_minus_the_mean_magnitude_per_channel():
    w = torch.tensor([[1.0, -3.0, 0.0, 2.0], [0.5, 0.5, -0.5, -0.5]])
    b = binarize(w)
    assert b.tolist() == [[1.5, -1.5, 1.5, 1.5], [0.5, 0.5, -0.5, -0.5]]
    conv = torch.randn(8, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    assert binarize(conv).abs().reshape(8, -1).unique(dim=1).shape[1] == 1


def test_ternary_weights_zero_the_small_ones_and_scale_the_rest():
    w = torch.tensor([[1.0, -1.0, 0.1, 2.0]])  # mean |w| 1.025, threshold 0.7175
    t = ternarize(w)
    alpha = (1 + 1 + 2) / 3
    assert torch.allclose(t, torch.tensor([[alpha, -alpha, 0.0, alpha]]))
    conv = torch.randn(4, 8, 3, 3, generator=torch.Generator().manual_seed(1))
    values = ternarize(conv)[0].unique()
    assert len(values) == 3 and 0.0 in values.tolist()


@pytest.mark.parametrize("fn", [binarize, ternarize])
def test_bad_weights_are_named(fn):
    with pytest.raises(ValueError, match=f"{fn.__name__}: w has 1 NaN"):
        fn(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ValueError, match=f"{fn.__name__}: w is empty"):
        fn(torch.zeros(0, 3))


def test_ternarize_refuses_a_negative_ratio():
    with pytest.raises(ValueError, match="ratio"):
        ternarize(torch.randn(2, 3), ratio=-0.5)
