"""efflib.quant.linear against PyTorch's quantize, fake-quantize and observer ops."""


import pytest
import torch
from torch.ao.quantization.observer import MinMaxObserver, PerChannelMinMaxObserver

from efflib.quant import linear
from efflib.quant.linear import (
    QuantSpec,
    dequantize,
    fake_quantize,
    qparams,
    quantization_error,
    quantize,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated")


def with_ties(seed: int, shape=(8, 400)) -> torch.Tensor:
    """Random values, a quarter of them exactly halfway between two grid points of scale 1/16."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * 3
    x[:, : shape[1] // 4] = (torch.randint(-60, 60, (shape[0], shape[1] // 4), generator=g)
                             + 0.5) / 16
    return x


def test_grids():
    assert (QuantSpec(8).qmin, QuantSpec(8).qmax) == (-128, 127)
    assert (QuantSpec(4, signed=False).qmin, QuantSpec(4, signed=False).qmax) == (0, 15)
    assert (QuantSpec(1, signed=False).qmin, QuantSpec(1, signed=False).qmax) == (0, 1)
    for bad in (0, 17, 2.0, True):
        with pytest.raises(ValueError, match="bits"):
            QuantSpec(bad)


@pytest.mark.parametrize("dtype, spec, scheme", [
    (torch.quint8, QuantSpec(8, signed=False), torch.per_tensor_affine),
    (torch.qint8, QuantSpec(8, signed=True, symmetric=True), torch.per_tensor_symmetric),
    (torch.quint8, QuantSpec(8, signed=False, symmetric=True), torch.per_tensor_symmetric),
])
def test_scale_and_zero_point_equal_torchs_observers(dtype, spec, scheme):
    for seed in range(5):
        x = with_ties(seed) + seed - 2  # ranges that are not centred on zero
        ob = MinMaxObserver(dtype=dtype, qscheme=scheme)
        ob(x)
        scale, zp = ob.calculate_qparams()
        got = qparams(x, spec)
        assert torch.equal(got[0].reshape(1), scale) and torch.equal(got[1].reshape(1), zp)


def test_per_channel_parameters_equal_torchs_observer():
    x = with_ties(3, (16, 72))
    ob = PerChannelMinMaxObserver(ch_axis=0, dtype=torch.qint8,
                                  qscheme=torch.per_channel_symmetric)
    ob(x)
    scale, zp = ob.calculate_qparams()
    got = qparams(x, QuantSpec(8, True, True), axis=0)
    assert torch.equal(got[0], scale) and torch.equal(got[1], zp)


@pytest.mark.parametrize("bits", [2, 3, 4, 8, 12, 16])
@pytest.mark.parametrize("signed", [True, False])
def test_fake_quantize_is_bit_exact_with_torch_at_every_width(bits, signed):
    spec = QuantSpec(bits, signed)
    x = with_ties(bits)
    s, z = qparams(x, spec)
    ref = torch.fake_quantize_per_tensor_affine(x, float(s), int(z), spec.qmin, spec.qmax)
    assert torch.equal(fake_quantize(x, s, z, spec), ref)
    s, z = qparams(x, spec, axis=0)
    ref = torch.fake_quantize_per_channel_affine(x, s, z.int(), 0, spec.qmin, spec.qmax)
    assert torch.equal(fake_quantize(x, s, z, spec, axis=0), ref)
    # the integers behind it: quantize then dequantize is the same function
    assert torch.equal(dequantize(quantize(x, s, z, spec, 0), s, z, 0), ref)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_fake_quantize_in_half_precision_rounds_as_quantize_does(dtype):
    """Issue 28: in fp16 / bf16 the product x * (1/s) rounded in half precision, and 0.9% /
    6.5% of the values landed one step off quantize-then-dequantize (and torch)."""
    spec = QuantSpec(8, signed=True)
    x = (torch.randn(64, 512, generator=torch.Generator().manual_seed(0)) * 2).to(dtype)
    s, z = qparams(x.float(), spec)
    got = fake_quantize(x, s, z, spec)
    assert got.dtype == dtype
    assert torch.equal(got, dequantize(quantize(x, s, z, spec), s, z).to(dtype))
    ref = torch.fake_quantize_per_tensor_affine(x.float(), float(s), int(z), spec.qmin,
                                                spec.qmax).to(dtype)
    assert torch.equal(got, ref)


def test_quantize_is_bit_exact_with_torch_where_the_zero_point_is_zero():
    """Weights (symmetric, z = 0): equal to torch.quantize_per_tensor / _per_channel, ties
    included (round half to even)."""
    spec = QuantSpec(8, True, True)
    for seed in range(10):
        x = with_ties(seed)
        s, z = qparams(x, spec)
        ref = torch.quantize_per_tensor(x, float(s), 0, torch.qint8).int_repr().long()
        assert torch.equal(quantize(x, s, z, spec), ref)
        s, z = qparams(x, spec, axis=0)
        ref = torch.quantize_per_channel(x, s.double(), z, 0, torch.qint8).int_repr().long()
        assert torch.equal(quantize(x, s, z, spec, axis=0), ref)
    tie = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, 300.0, -300.0])
    assert quantize(tie, 1.0, 0, spec).tolist() == [0, 2, 2, 0, -2, 127, -128]


def test_where_the_zero_point_is_not_zero_torchs_own_ops_disagree():
    """quantize rounds x/s, then adds z (as fake_quantize does). torch.quantize_per_tensor
    adds z first in one fused float32 multiply-add, quantize_per_channel adds it in a
    second float32 rounding: near a tie they can land one step apart. Every element where
    efflib differs from them is one where emulating their arithmetic predicts it, by 1."""
    spec = QuantSpec(8, signed=False)
    differed = 0
    for seed in range(20):
        x = with_ties(seed, (8, 2000)) * 3.3
        s, z = qparams(x, spec)
        ours = quantize(x, s, z, spec)
        torch_pt = torch.quantize_per_tensor(x, float(s), int(z), torch.quint8).int_repr().long()
        fused = torch.round((x.double() * (1.0 / s).double() + int(z)).float()).long()
        assert torch.equal(torch_pt, fused.clamp(0, 255))  # torch's rule, emulated
        assert (ours - torch_pt).abs().max() <= 1
        differed += int((ours != torch_pt).sum())
        fq = torch.fake_quantize_per_tensor_affine(x, float(s), int(z), 0, 255)
        assert torch.equal(dequantize(ours, s, z), fq)  # ...and fake_quantize agrees with us
        s, z = qparams(x, spec, axis=0)
        torch_pc = torch.quantize_per_channel(x, s.double(), z, 0, torch.quint8)
        two_roundings = torch.round(z.reshape(-1, 1).float() + x * (1.0 / s).reshape(-1, 1))
        assert torch.equal(torch_pc.int_repr().long(), two_roundings.long().clamp(0, 255))
        assert (quantize(x, s, z, spec, axis=0) - torch_pc.int_repr().long()).abs().max() <= 1
    assert differed > 0  # the disagreement is real, not hypothetical


def test_straight_through_gradient_is_one_inside_the_range_and_zero_outside():
    spec = QuantSpec(4, signed=True)
    x = torch.linspace(-3, 3, 61, requires_grad=True)
    fake_quantize(x, 0.25, 0, spec).sum().backward()
    inside = (torch.round(x.detach() / 0.25) >= -8) & (torch.round(x.detach() / 0.25) <= 7)
    assert torch.equal(x.grad, inside.float())
    ref = x.detach().clone().requires_grad_()
    torch.fake_quantize_per_tensor_affine(ref, 0.25, 0, -8, 7).sum().backward()
    assert torch.equal(x.grad, ref.grad)


def test_percentile_calibration_clips_outliers_and_error_falls_with_bits():
    x = torch.randn(10_000, generator=torch.Generator().manual_seed(0))
    x[0] = 100.0
    s_max, _ = qparams(x, QuantSpec(8, True, True))
    s_pct, _ = qparams(x, QuantSpec(8, True, True), percentile=99.9)
    assert s_pct < s_max / 10
    errors = [quantization_error(x[1:], QuantSpec(b)) for b in (2, 4, 6, 8)]
    assert errors == sorted(errors, reverse=True) and errors[-1] < errors[0] / 100
    with pytest.raises(ValueError, match="percentile"):
        qparams(x, percentile=0)


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_per_channel_never_zeroes_a_channel_that_per_tensor_loses(bits):
    """Lab 05 Q3's claim, on channels whose ranges spread 1000x."""
    g = torch.Generator().manual_seed(3)
    w = torch.randn(32, 8, 3, 3, generator=g) * (1000 ** torch.linspace(0, 1, 32)).view(-1, 1, 1, 1)
    spec = QuantSpec(bits, signed=True, symmetric=True)

    def zeroed(axis):
        scale, zero = qparams(w, spec, axis)
        q = quantize(w, scale, zero, spec, axis) - (zero if axis is None else
                                                         zero.view(-1, 1, 1, 1))
        return int((q.reshape(32, -1) == 0).all(dim=1).sum())

    assert zeroed(0) == 0
    assert zeroed(None) > 0


@pytest.mark.parametrize("call, match", [
    (lambda: qparams(torch.tensor([1.0, NAN, -2.0])), "qparams: x has 1 NaN and 0 infinite"),
    (lambda: qparams(torch.tensor([1.0, INF])), "qparams: x has 0 NaN and 1 infinite"),
    (lambda: qparams(torch.tensor([1e39, -1.0], dtype=torch.float64)), "beyond float32"),
    (lambda: qparams(torch.tensor([])), "qparams: x is empty"),
    (lambda: qparams(torch.randn(3, 4), axis=2), "axis 2 is out of range"),
    (lambda: qparams(torch.randn(10), percentile=0), "percentile"),
    (lambda: quantize(torch.tensor([1.0, NAN]), 0.1, 0), "quantize: x has 1 NaN"),
    (lambda: quantize(torch.tensor([1.0, -1.0]), 0.0, 0), "positive finite"),
    (lambda: quantize(torch.tensor([1.0, -1.0]), -0.1, 0), "positive finite"),
    (lambda: quantize(torch.tensor([1.0]), NAN, 0), "positive finite"),
    (lambda: quantize(torch.tensor([1.0, -1.0]), 0.1, 300),
     r"zero point must lie on the grid \[-128, 127\]"),
    (lambda: quantize(torch.tensor([1.0]), 0.1, 0.5), "zero point must be an integer"),
    (lambda: quantize(torch.randn(2, 3), torch.tensor([0.1, 0.2]), 0), "without an axis"),
    (lambda: quantize(torch.randn(2, 3), torch.tensor([0.1, 0.2, 0.0]), 0, axis=1),
     r"positive finite number \(channel 2\)"),
    (lambda: quantize(torch.randn(2, 3), torch.tensor([0.1, 0.2]), 0, axis=1),
     "2 scale values for 3 channels"),
    (lambda: fake_quantize(torch.tensor([1.0, -1.0]), 0.1, 300), "fake_quantize: the zero point"),
    (lambda: fake_quantize(torch.tensor([1.0, -1.0]), 0.0, 0), "fake_quantize: every scale"),
    (lambda: fake_quantize(torch.tensor([INF]), 0.1, 0), "fake_quantize: x has 0 NaN and 1"),
    (lambda: dequantize(torch.tensor([1, 2]), 0.0, 0), "dequantize: every scale"),
])
def test_bad_input_is_named_never_a_nan_or_a_clamped_result(call, match):
    """Issue 28: NaN or infinite inputs dequantized to NaN, a scale of 0 sent positive
    values to the minimum, a zero point off the grid clamped everything (torch refuses),
    an empty tensor crashed inside torch."""
    with pytest.raises(ValueError, match=match):
        call()


def test_an_empty_tensor_quantizes_to_an_empty_one():
    assert quantize(torch.tensor([]), 0.1, 0).shape == (0,)


def test_percentile_is_torchs_quantile_to_the_bit_and_has_no_size_limit():
    """torch.quantile refuses more than 16M elements (issue 28): the order statistics that
    replace it give its values exactly below that, and work beyond it."""
    for seed, shape in enumerate([(1, 1000), (3, 777), (1, 5), (2, 100_000)]):
        flat = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
        for p in (99.9, 99.99, 50.0, 100.0):
            q = torch.tensor([1 - p / 100, p / 100])
            assert torch.equal(linear._quantiles(flat, q), torch.quantile(flat, q, dim=1))
    big = torch.randn(2**24 + 1, generator=torch.Generator().manual_seed(0))
    with pytest.raises(RuntimeError, match="too large"):
        torch.quantile(big, 0.5)
    scale, zero_point = qparams(big, percentile=99.9)
    assert 0.02 < float(scale) < 0.03  # +-3.3 sigma over 255 steps
