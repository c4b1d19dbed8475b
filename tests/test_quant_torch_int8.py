"""efflib.quant.torch_int8's engine: the one whose int8 products are exact on this CPU
(tests/test_quant_integer.py compares the whole model layer by layer on it)."""

import platform
import warnings

import pytest
import torch
import torch.ao.nn.quantized as nnq

from efflib.quant import torch_int8

EXACT = round(8 * 255 * 127 / 1024) * 1024  # eight products of 255 and 127, on a grid of 1024


def _widest_sum(engine: str) -> float:
    """A 1x1 conv of eight uint8 255s with eight int8 127s on `engine`: each pair of
    products is 64,770, past a 16-bit lane's 32,767."""
    torch.backends.quantized.engine = engine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's quantized tensors are deprecated
        conv = nnq.Conv2d(8, 1, 1)
        conv.set_weight_bias(torch.quantize_per_tensor(torch.full((1, 8, 1, 1), 127.0), 1.0,
                                                       0, torch.qint8), None)
        conv.scale, conv.zero_point = 1024.0, 0
        x = torch.quantize_per_tensor(torch.full((1, 8, 2, 2), 255.0), 1.0, 0, torch.quint8)
        return float(conv(x).dequantize().flatten()[0])


def test_the_chosen_engine_sums_full_8_bit_products_exactly_here():
    assert _widest_sum(torch_int8.engine()) == EXACT


@pytest.mark.skipif(torch_int8.engine() != "qnnpack" or platform.machine() != "x86_64",
                    reason="this CPU has VNNI: the x86 engine is exact here")
def test_without_vnni_the_x86_engine_saturates_which_is_why_it_is_not_chosen():
    assert _widest_sum("x86") < EXACT / 1.9  # four pairs of 32,767: about half the sum


@pytest.mark.parametrize("machine, flags, expected", [
    ("x86_64", {"avx2", "avx512_vnni"}, "x86"), ("x86_64", {"avx2", "avx_vnni"}, "x86"),
    ("x86_64", {"avx2", "fma"}, "qnnpack"), ("x86_64", set(), "qnnpack"),
    ("aarch64", {"asimd"}, "qnnpack"),
])
def test_the_engine_follows_the_cpus_flags(monkeypatch, machine, flags, expected):
    monkeypatch.setattr(platform, "machine", lambda: machine)
    monkeypatch.setattr(torch_int8, "_cpu_flags", lambda: flags)
    assert torch_int8.engine() == expected
