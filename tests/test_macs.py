"""Every MAC formula against a count by hand (and FlopCounterMode where it is right)."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from efflib import macs
from efflib.profiler import profile

aten = torch.ops.aten


class Call(nn.Module):
    """A module around a functional call, so that profile() can run it."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *xs):
        return self.fn(*xs)


def flop_counter_macs(model, *xs) -> int:
    """FlopCounterMode's MACs on the slow (autograd) path, where it is right."""
    model.train()
    with FlopCounterMode(display=False) as counter:
        model(*xs)
    return counter.get_total_flops() // 2


class Capture(TorchDispatchMode):
    """Keeps the arguments of every call of one ATen op."""

    def __init__(self, op):
        super().__init__()
        self.op, self.calls = op, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is self.op:
            self.calls.append((args, out))
        return out


def fused_macs(module, op, *xs) -> int:
    """The formula's MACs over the calls of a fused op in an eval, no_grad forward pass."""
    module.eval()
    with torch.no_grad(), Capture(op) as capture:
        module(*xs)
    assert capture.calls, f"{op} was not called"
    return sum(macs.formula(op)(args, out) for args, out in capture.calls)


@pytest.mark.parametrize(("fn", "args", "hand"), [
    (torch.mv, (torch.randn(5, 7), torch.randn(7)), 35),
    (torch.dot, (torch.randn(9), torch.randn(9)), 9),
    (torch.vdot, (torch.randn(9), torch.randn(9)), 9),
    (torch.addmv, (torch.randn(5), torch.randn(5, 7), torch.randn(7)), 35),
    (torch.mm, (torch.randn(3, 4), torch.randn(4, 5)), 60),
    (torch.addmm, (torch.randn(5), torch.randn(3, 4), torch.randn(4, 5)), 60),
    (torch.bmm, (torch.randn(2, 3, 4), torch.randn(2, 4, 5)), 120),
    (torch.baddbmm, (torch.randn(2, 3, 5), torch.randn(2, 3, 4), torch.randn(2, 4, 5)), 120),
    (torch.addbmm, (torch.randn(3, 5), torch.randn(2, 3, 4), torch.randn(2, 4, 5)), 120),
    (lambda a, b: torch.einsum("bij,bjk->bik", a, b), (torch.randn(2, 3, 4), torch.randn(2, 4, 5)),
     120),
])
def test_products(fn, args, hand):
    assert profile(Call(fn), *args).macs == hand


def test_bilinear_counts_every_product():
    layer = nn.Bilinear(4, 5, 6)
    p = profile(layer, torch.randn(3, 4), torch.randn(3, 5))
    assert p.macs == 3 * 6 * 4 * 5
    assert p.elementwise_ops < p.macs  # booked as MACs, not as elementwise work


def test_attention_kernel():
    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 4)
    p = profile(Call(F.scaled_dot_product_attention), q, k, v)
    assert p.macs == 2 * 3 * 5 * 7 * (8 + 4)  # Q K^T, then A V


@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_attention_fast_and_slow_paths(batch_first):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 2, batch_first=batch_first)
    x = torch.randn(2, 5, 16) if batch_first else torch.randn(5, 2, 16)
    b, l, e = 2, 5, 16
    hand = b * (3 * l * e * e + 2 * l * l * e + l * e * e)  # q/k/v, attention, out
    assert profile(mha, x, x, x).macs == hand
    assert flop_counter_macs(mha, x, x, x) == hand
    if batch_first:
        assert fused_macs(mha, aten._native_multi_head_attention.default, x, x, x) == hand


@pytest.mark.parametrize("batch_first", [True, False])
def test_transformer_encoder_layer(batch_first):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=batch_first)
    x = torch.randn(2, 5, 16) if batch_first else torch.randn(5, 2, 16)
    b, l, e, f = 2, 5, 16, 32
    hand = b * (4 * l * e * e + 2 * l * l * e + 2 * l * e * f)
    p = profile(layer, x)
    assert p.macs == hand
    assert flop_counter_macs(layer, x) == hand
    if batch_first:  # without profile's hooks, eval + no_grad takes the fused kernel
        assert fused_macs(layer, aten._transformer_encoder_layer_fwd.default, x) == hand


def test_lstm_and_gru():
    torch.manual_seed(0)
    x = torch.randn(7, 3, 10)  # (T, B, in)
    lstm = nn.LSTM(10, 16, num_layers=2)
    steps = 7 * 3
    hand = steps * (4 * 16 * 10 + 4 * 16 * 16) + steps * (4 * 16 * 16 + 4 * 16 * 16)
    assert profile(lstm, x).macs == hand
    gru = nn.GRU(10, 16)
    assert profile(gru, x).macs == steps * (3 * 16 * 10 + 3 * 16 * 16)
    assert flop_counter_macs(gru, x) == steps * (3 * 16 * 10 + 3 * 16 * 16)


def test_convolutions_grouped_and_transposed():
    conv = nn.Conv2d(8, 16, 3, padding=1, groups=4)
    assert profile(conv, torch.randn(1, 8, 6, 6)).macs == 16 * 36 * (8 // 4) * 9
    up = nn.ConvTranspose2d(8, 4, 2, stride=2)
    assert profile(up, torch.randn(1, 8, 3, 3)).macs == 8 * 9 * 4 * 4  # each input meets 4x2x2


def test_every_formula_is_tested_and_others_are_zero():
    """Each op with a formula is either exercised above or a CUDA-only kernel."""
    cuda_only = {aten._scaled_dot_product_flash_attention.default,
                 aten._scaled_dot_product_efficient_attention.default,
                 aten._scaled_dot_product_cudnn_attention.default,
                 aten._flash_attention_forward.default, aten._efficient_attention_forward.default,
                 aten._convolution.default}
    assert cuda_only < set(macs.FORMULAS)
    assert macs.formula(aten.relu.default) is None and macs.formula(aten.add.Tensor) is None
    # the CUDA kernels share the tested CPU formula's layout rules
    q, k, v = torch.empty(2, 3, 5, 8), torch.empty(2, 3, 7, 8), torch.empty(2, 3, 7, 4)
    assert macs.formula(aten._scaled_dot_product_efficient_attention.default)(
        (q, k, v), None) == 2 * 3 * 5 * 7 * 12
    ql, kl, vl = (t.transpose(1, 2) for t in (q, k, v))  # (B, L, H, E)
    assert macs.formula(aten._flash_attention_forward.default)(
        (ql, kl, vl), None) == 2 * 3 * 5 * 7 * 12
