"""The same integer model on PyTorch's own int8 kernels (torch.ao quantized modules).

`to_torch(model)` builds eager-mode quantized modules with exactly the grids of
an `IntegerModel` (same scales and zero points, the same int8 weights), so the
two can be compared element by element and timed against each other. torch's
engines requantize in float32 (round half to even) where `IntegerModel` uses a
31-bit fixed-point multiplier and rounds halves up: that is where the last LSB
of any difference comes from.

The engine is the one whose products are exact on this CPU (`engine()`): x86
(fbgemm) where the CPU has VNNI instructions, qnnpack elsewhere. Without VNNI,
fbgemm adds pairs of uint8 x int8 products in saturating 16-bit lanes
(`vpmaddubsw`): 2 x 255 x 127 = 64,770 does not fit in 32,767, so full 8-bit
activation grids come out wrong, by up to 74 steps on the lab's digit CNN (test
accuracy 93.6% against 98.2%, measured on an AVX2 EPYC). PyTorch's own default
for that engine narrows activations to 7 bits instead (`reduce_range`).
"""

import platform
import warnings

import torch
import torch.ao.nn.intrinsic.quantized as nniq
import torch.ao.nn.quantized as nnq
import torch.nn as nn

from efflib.quant.integer import IntegerModel, QuantizedLayer

VNNI = {"avx512_vnni", "avx_vnni"}  # /proc/cpuinfo flags: 8-bit products summed in 32 bits


def _cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux lists them (empty where they cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def engine() -> str:
    """The torch.ao engine whose int8 products are exact on this CPU: "x86" on an x86 CPU
    with VNNI, "qnnpack" elsewhere (see the module's docstring)."""
    supported = torch.backends.quantized.supported_engines
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    if x86 and VNNI & _cpu_flags() and "x86" in supported:
        return "x86"
    return "qnnpack" if "qnnpack" in supported else supported[-1]


def _quiet():
    """torch.ao's quantized tensors warn that they are deprecated on every creation."""
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.filterwarnings("ignore", message=".*deprecated.*")
    return ctx


def _layer(q: QuantizedLayer) -> nn.Module:
    w = torch.quantize_per_channel((q.weight.float() * q.w_scale.reshape(
        (-1,) + (1,) * (q.weight.dim() - 1))), q.w_scale.double(),
        torch.zeros_like(q.weight[:, *([0] * (q.weight.dim() - 1))]), 0, torch.qint8)
    bias = q.bias.float() * q.x.scale * q.w_scale  # the bias the int32 one stands for
    if q.conv is not None:
        c = q.conv
        cls = nniq.ConvReLU2d if q.relu else nnq.Conv2d
        m = cls(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding,
                c.dilation, c.groups)
    else:
        cls = nniq.LinearReLU if q.relu else nnq.Linear
        m = cls(q.weight.shape[1], q.weight.shape[0])
    m.set_weight_bias(w, bias)
    m.scale, m.zero_point = q.y.scale, q.y.zero_point
    return m


class TorchInt8(nn.Module):
    """float input -> quint8 -> torch.ao int8 layers -> dequantized output."""

    def __init__(self, model: IntegerModel):
        super().__init__()
        layers = []
        for kind, layer in model.steps:
            if kind == "quant":
                layers.append(_layer(layer))
            elif kind == "maxpool":
                layers.append(nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding))
            elif kind == "avgpool":
                layers.append(nn.AdaptiveAvgPool2d(1))
            else:
                layers.append(nn.Flatten())
        self.quant = nnq.Quantize(model.input.scale, model.input.zero_point, torch.quint8)
        self.body = nn.Sequential(*layers)
        self.dequant = nnq.DeQuantize()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ctx = _quiet()
        try:
            return self.dequant(self.body(self.quant(x)))
        finally:
            ctx.__exit__(None, None, None)


def to_torch(model: IntegerModel) -> TorchInt8:
    """`model` on torch's int8 kernels (selects the engine that is exact here, `engine()`)."""
    torch.backends.quantized.engine = engine()
    ctx = _quiet()
    try:
        return TorchInt8(model).eval()
    finally:
        ctx.__exit__(None, None, None)
