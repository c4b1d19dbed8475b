"""efflib.quant.integer: fixed-point requantization by hand, BN folding, and the integer
model against PyTorch's own int8 kernels (torch.ao, on the engine exact on this CPU)."""

import copy
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import efflib
from efflib import models
from efflib.quant import integer as I
from efflib.quant.torch_int8 import to_torch

sys.path.insert(0, str(Path(__file__).parent))
from fake_cuda import fake_cuda, on_cuda  # noqa: E402 - a helper next to the tests

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated")


@pytest.mark.parametrize("m", [0.75, 0.5, 0.999999999, 3.2e-4, 1.5, 2**-20])
def test_multiplier_is_m0_times_a_power_of_two(m):
    m0, n = I.quantize_multiplier(m)
    assert 2**30 <= m0 < 2**31
    assert m0 * 2.0 ** -(31 + n) == pytest.approx(m, rel=2**-30)
    with pytest.raises(ValueError, match="positive"):
        I.quantize_multiplier(0.0)


def test_requantize_rounds_halves_up_and_clamps():
    m0, n = I.quantize_multiplier(0.5)  # exactly 2^30 * 2^-31
    acc = torch.tensor([1, 3, -1, -3, 5, 1000, -1000])
    assert I.requantize(acc, m0, n, 0, -128, 127).tolist() == [1, 2, 0, -1, 3, 127, -128]
    assert I.requantize(acc, m0, n, 10, 10, 255).tolist() == [11, 12, 10, 10, 13, 255, 10]


def test_requantize_matches_a_real_valued_multiply_but_for_ties():
    g = torch.Generator().manual_seed(0)
    acc = torch.randint(-2**20, 2**20, (10_000,), generator=g)
    m = 0.0123456
    m0, n = I.quantize_multiplier(m)
    ours = I.requantize(acc, m0, n, 0, -2**31, 2**31 - 1)
    exact = torch.floor(acc.double() * (m0 * 2.0 ** -(31 + n)) + 0.5).long()
    assert torch.equal(ours, exact)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "circular"])
def test_folded_batch_norm_gives_the_same_outputs(mode):
    conv, bn = nn.Conv2d(3, 8, 3, padding=1, bias=False, padding_mode=mode), nn.BatchNorm2d(8)
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)
        bn.weight.normal_()
        bn.bias.normal_()
    bn.eval()
    x = torch.randn(2, 3, 6, 6)
    assert torch.allclose(I.fold_bn(conv, bn)(x), bn(conv(x)), atol=1e-5)


def test_integer_average_pool_rounds_halves_to_even():
    q = torch.tensor([1, 2, 2, 2, 3, 3, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0]).reshape(1, 1, 4, 4)
    assert int(I.avg_pool_int(q + 10, 10)) == 10 + 1  # 22 / 16 = 1.375 -> 1
    two = torch.tensor([1, 0, 0, 0]).reshape(1, 1, 2, 2)
    assert int(I.avg_pool_int(two * 2, 0)) == 0       # 0.5 -> 0 (even)
    assert int(I.avg_pool_int(two * 6, 0)) == 2       # 1.5 -> 2 (even)


@pytest.fixture(scope="module")
def trained():
    """A digit CNN with trained-looking statistics (random weights, BN statistics set)."""
    torch.manual_seed(0)
    model = models.digit_cnn(width=8)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    model.eval()
    x = torch.randn(600, 1, 8, 8)
    return model, x


def test_integer_model_matches_torchs_int8_kernels_layer_by_layer(trained):
    model, x = trained
    im = I.convert(model, x[:400])
    tm = to_torch(im)
    q, scale, zp = im.quantize_input(x[400:]), im.input.scale, im.input.zero_point
    compared = differing = 0
    for (kind, layer), theirs in zip(im.steps, tm.body, strict=True):
        if kind == "quant":
            ours = layer(q)
        elif kind == "maxpool":
            ours = torch.nn.functional.max_pool2d(q.double(), 2).long()
        elif kind == "avgpool":
            ours = I.avg_pool_int(q, zp)
        else:
            ours = torch.flatten(q, 1)
        x_q = torch._make_per_tensor_quantized_tensor(q.to(torch.uint8), scale, zp)
        ref = theirs(x_q).int_repr().long()
        assert (ours - ref).abs().max() <= 1, kind
        compared += ours.numel()
        differing += int((ours != ref).sum())
        q = ours
        if kind == "quant":
            scale, zp = layer.y.scale, layer.y.zero_point
    assert differing / compared <= 0.001


def test_integer_model_predicts_like_the_float_model(trained):
    model, x = trained
    im = I.convert(model, x[:400])
    agree = (im.predict(x[400:]) == model(x[400:]).argmax(1)).float().mean()
    assert agree > 0.9
    err = (im(x[400:]) - model(x[400:])).abs().max()
    assert err < 0.2 * model(x[400:]).abs().max()
    assert torch.equal(to_torch(im)(x[400:]).argmax(1), im.predict(x[400:]))


def test_convert_refuses_what_it_cannot_run():
    with pytest.raises(TypeError, match="does not support"):
        I.convert(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sigmoid()), torch.randn(2, 1, 8, 8))
    with pytest.raises(TypeError, match="chain of layers"):
        I.convert(nn.LSTM(2, 2), torch.randn(2, 2))
    # issue 28: its border outputs were 88-102 steps off, without a word
    with pytest.raises(ValueError, match="layer 0 .Conv2d. pads with 'reflect'.*zeros only"):
        I.convert(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"),
                                nn.Flatten()), torch.randn(2, 1, 8, 8))


def test_stored_bytes_count_every_integer_and_grid(trained):
    model, x = trained
    im = I.convert(model, x[:100])
    layers = [layer for kind, layer in im.steps if kind == "quant"]
    weights = sum(layer.weight.numel() for layer in layers)
    channels = sum(layer.m0.numel() for layer in layers)
    assert weights == sum(p.numel() for n, p in model.named_parameters()
                          if n.endswith("weight") and p.dim() > 1)
    expected_bits = 8 * weights + 32 * channels + (32 + 8) * channels + 40 * (len(layers) + 1)
    assert im.stored_bytes() == -(-expected_bits // 8)
    assert im.stored_bytes() < efflib.model_size(model, 32) / 3


def test_convert_takes_a_model_on_cuda(trained):
    """A model trained on CUDA converts to the same CPU integer model (tried with the
    mismatch detector that stands in for a GPU in tests/fake_cuda.py)."""
    model, x = trained
    on_cpu = I.convert(model, x[:400])
    with fake_cuda():
        twin = copy.deepcopy(model).to("cuda")
        assert on_cuda(next(twin.parameters()))
        im = I.convert(twin, x[:400].to("cuda"))
        assert not any(on_cuda(t) for t in (im.steps[0][1].weight, im.steps[0][1].bias))
    assert all(torch.equal(a.weight, b.weight) for (k, a), (_, b) in
               zip(on_cpu.steps, im.steps, strict=True) if k == "quant")
    assert torch.equal(im.predict(x[400:]), on_cpu.predict(x[400:]))
    assert on_cuda(next(twin.parameters()))  # the caller's model did not move


def test_convert_names_a_calibration_batch_with_nan():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2))
    x = torch.randn(2, 1, 4, 4)
    x[1, 0, 2, 3] = float("nan")
    with pytest.raises(ValueError, match=r"convert: calibration has 1 NaN .*\(1, 0, 2, 3\)"):
        I.convert(model, x)
