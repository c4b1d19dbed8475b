"""Integer-only inference: int8 weights and activations, int32 accumulators, fixed-point rescaling.

Jacob et al., Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference, CVPR 2018 (https://arxiv.org/abs/1712.05877),
the scheme of gemmlowp and TensorFlow Lite. With x ~ s_x (q_x - z_x),
w ~ s_w q_w (symmetric, per output channel) and y ~ s_y (q_y - z_y):

    acc   = sum (q_x - z_x) q_w + q_b            int32, q_b = round(b / (s_x s_w))
    q_y   = clamp(z_y + M acc, qmin, qmax)       M = s_x s_w / s_y = M0 2^-n

M0 in [0.5, 1) is stored as a 31-bit integer m0 = round(M0 2^31), so M acc is one
64-bit product and one rounding shift: (acc m0 + 2^(30+n)) >> (31+n), which rounds
halves up. ReLU is folded into the clamp (qmin = z_y), and batch norm into the
conv before quantizing. Every step is integer arithmetic: C code that follows the
same rules (efflib.quant's Lab 06 export) gets the same integers.
"""

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from efflib import inputs
from efflib.devices import model_device
from efflib.graded import reference
from efflib.quant.linear import QuantSpec, qparams, quantize
from efflib.size import tensor_bits

ACTIVATIONS = QuantSpec(8, signed=False)               # uint8, asymmetric
WEIGHTS = QuantSpec(8, signed=True, symmetric=True)    # int8, zero point 0


@reference("requantization")
def quantize_multiplier(m: float) -> tuple[int, int]:
    """(m0, n) with m ~ m0 2^-31 2^-n and m0 in [2^30, 2^31): M0 = m0 / 2^31 in [0.5, 1)."""
    if not m > 0 or not math.isfinite(m):
        raise ValueError(f"the multiplier must be a positive number, got {m}")
    mantissa, exponent = math.frexp(m)  # m = mantissa 2^exponent, mantissa in [0.5, 1)
    m0 = round(mantissa * 2**31)
    if m0 == 2**31:  # the mantissa rounded up to 1.0
        m0, exponent = m0 // 2, exponent + 1
    return m0, -exponent


@reference("requantization")
def requantize(acc: torch.Tensor, m0, shift, zero_point: int, qmin: int,
               qmax: int) -> torch.Tensor:
    """clamp(z + round_half_up(acc m0 2^-(31+n)), qmin, qmax), in 64-bit integers."""
    m0 = torch.as_tensor(m0, dtype=torch.int64)
    total = 31 + torch.as_tensor(shift, dtype=torch.int64)
    if bool((total < 1).any()) or bool((total > 62).any()):
        raise ValueError("the multiplier's shift is out of range")
    rounding = torch.ones_like(total) << (total - 1)
    y = (acc.to(torch.int64) * m0 + rounding) >> total
    return torch.clamp(y + zero_point, qmin, qmax)


@reference("batchnorm_folding")
def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A conv computing bn(conv(x)) in eval mode: w g / sigma, beta + (b - mu) g / sigma."""
    folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                       conv.padding, conv.dilation, conv.groups, bias=True,
                       padding_mode=conv.padding_mode)
    with torch.no_grad():
        gamma = bn.weight if bn.affine else torch.ones_like(bn.running_var)
        beta = bn.bias if bn.affine else torch.zeros_like(bn.running_var)
        factor = gamma / torch.sqrt(bn.running_var + bn.eps)          # (c_out,)
        folded.weight.copy_(conv.weight * factor.reshape(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        folded.bias.copy_(beta + (bias - bn.running_mean) * factor)
    return folded.eval()


@dataclass
class QParams:
    """Scale and zero point of one activation tensor on the uint8 grid."""

    scale: float
    zero_point: int

    @classmethod
    def observe(cls, x: torch.Tensor) -> "QParams":
        s, z = qparams(x, ACTIVATIONS)
        return cls(float(s), int(z))


class QuantizedLayer:
    """int8 conv or linear: integer input (uint8 grid) -> integer output, ReLU in the clamp."""

    def __init__(self, layer: nn.Conv2d | nn.Linear, x: QParams, y: QParams, relu: bool):
        w = layer.weight.detach().float()
        self.w_scale, _ = qparams(w, WEIGHTS, axis=0)                 # (c_out,)
        self.weight = quantize(w, self.w_scale, 0, WEIGHTS, axis=0)   # int64 in [-128, 127]
        b = layer.bias.detach().float() if layer.bias is not None else torch.zeros(w.shape[0])
        self.bias = torch.round(b / (x.scale * self.w_scale)).to(torch.int64)  # int32 range
        pairs = [quantize_multiplier(x.scale * float(s) / y.scale) for s in self.w_scale]
        self.m0 = torch.tensor([p[0] for p in pairs], dtype=torch.int64)
        self.shift = torch.tensor([p[1] for p in pairs], dtype=torch.int64)
        self.x, self.y, self.relu = x, y, relu
        self.conv = layer if isinstance(layer, nn.Conv2d) else None

    def accumulate(self, q: torch.Tensor) -> torch.Tensor:
        """int32 accumulators: sum (q_x - z_x) q_w + q_b (exact: float64 holds these sums)."""
        x = (q - self.x.zero_point).double()
        w = self.weight.double()
        if self.conv is not None:
            c = self.conv
            acc = F.conv2d(x, w, None, c.stride, c.padding, c.dilation, c.groups)
            return acc.round().to(torch.int64) + self.bias.reshape(1, -1, 1, 1)
        return (x @ w.T).round().to(torch.int64) + self.bias

    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        acc = self.accumulate(q)
        shape = (1, -1, 1, 1) if self.conv is not None else (1, -1)
        qmin = self.y.zero_point if self.relu else ACTIVATIONS.qmin
        return requantize(acc, self.m0.reshape(shape), self.shift.reshape(shape),
                          self.y.zero_point, qmin, ACTIVATIONS.qmax)


def avg_pool_int(q: torch.Tensor, zero_point: int) -> torch.Tensor:
    """Global average pool on the grid (same scale and zero point), halves to even."""
    n = q.shape[-1] * q.shape[-2]
    total = (q - zero_point).sum(dim=(-2, -1), keepdim=True)
    quotient = torch.div(total, n, rounding_mode="floor")
    twice_rest = 2 * (total - quotient * n)  # in [0, 2n)
    up = (twice_rest > n) | ((twice_rest == n) & (quotient % 2 == 1))
    return quotient + up.to(torch.int64) + zero_point


def chain(model: nn.Module) -> list[nn.Module]:
    """The layers of a chain model in order: nn.Sequential, or a DigitCNN-like model
    with `features`, `pool` and `fc`."""
    if isinstance(model, nn.Sequential):
        return list(model)
    if all(hasattr(model, a) for a in ("features", "pool", "fc")):
        return [*model.features, model.pool, nn.Flatten(), model.fc]
    raise TypeError(f"cannot read {type(model).__name__} as a chain of layers: give an "
                    "nn.Sequential or a model with features, pool and fc")


class IntegerModel:
    """A chain CNN run in integers only, from an input grid to the output grid.

    Steps: ("quant", QuantizedLayer), ("maxpool", nn.MaxPool2d), ("avgpool", None),
    ("flatten", None). `input` and `output` hold the end grids.
    """

    def __init__(self, steps: list, input_q: QParams, output_q: QParams):
        self.steps, self.input, self.output = steps, input_q, output_q

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        return quantize(x, self.input.scale, self.input.zero_point, ACTIVATIONS)

    def forward_int(self, q: torch.Tensor) -> torch.Tensor:
        zp = self.input.zero_point
        for kind, layer in self.steps:
            if kind == "quant":
                q, zp = layer(q), layer.y.zero_point
            elif kind == "maxpool":
                q = F.max_pool2d(q.double(), layer.kernel_size, layer.stride,
                                 layer.padding).to(torch.int64)
            elif kind == "avgpool":
                q = avg_pool_int(q, zp)
            else:
                q = torch.flatten(q, 1)
        return q

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Real-valued outputs (dequantized) for a float input batch."""
        q = self.forward_int(self.quantize_input(x))
        return (q - self.output.zero_point).float() * self.output.scale

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return torch.argmax(self.forward_int(self.quantize_input(x)), dim=1)

    def stored_bytes(self) -> int:
        """Everything a device stores: int8 weights, int32 biases, per channel a 32-bit m0
        and an 8-bit shift, and each grid's 32-bit scale and 8-bit zero point."""
        bits = 40  # the input grid
        for kind, layer in self.steps:
            if kind == "quant":
                bits += (tensor_bits(layer.weight, 8) + tensor_bits(layer.bias, 32)
                         + tensor_bits(layer.m0, 32) + tensor_bits(layer.shift, 8) + 40)
        return math.ceil(bits / 8)


@torch.no_grad()
def convert(model: nn.Module, calibration: torch.Tensor) -> IntegerModel:
    """An integer-only copy of a trained chain CNN: BN folded into its conv, activation
    grids observed (min/max) on `calibration`, weights int8 per output channel. The integer
    model is a CPU emulation (it is what the C export writes), so a model on CUDA is copied
    to the CPU first."""
    if model_device(model) not in (None, torch.device("cpu")):
        model = copy.deepcopy(model).cpu()
    layers = chain(model)
    inputs.finite(calibration, "calibration", "convert", empty=False)
    x = calibration.detach().cpu().float()
    current = QParams.observe(x)
    input_q, steps, i = current, [], 0
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, nn.Conv2d) and layer.padding_mode != "zeros":
            raise ValueError(f"convert: layer {i} (Conv2d) pads with {layer.padding_mode!r}; "
                             "the integer conv (and its C export) pads with zeros only (the "
                             "input's zero point), so its border outputs would be wrong")
        if isinstance(layer, nn.Conv2d | nn.Linear):
            if isinstance(layer, nn.Conv2d) and i + 1 < len(layers) and \
                    isinstance(layers[i + 1], nn.BatchNorm2d):
                layer, i = fold_bn(layer, layers[i + 1]), i + 1
            relu = i + 1 < len(layers) and isinstance(layers[i + 1], nn.ReLU)
            x = layer(x)
            if relu:
                x, i = torch.relu(x), i + 1
            out = QParams.observe(x)
            steps.append(("quant", QuantizedLayer(layer, current, out, relu)))
            current = out
        elif isinstance(layer, nn.MaxPool2d):
            x = layer(x)
            steps.append(("maxpool", layer))
        elif isinstance(layer, nn.AdaptiveAvgPool2d) and layer.output_size in (1, (1, 1)):
            x = layer(x)
            steps.append(("avgpool", None))
        elif isinstance(layer, nn.Flatten):
            x = torch.flatten(x, 1)
            steps.append(("flatten", None))
        elif not isinstance(layer, nn.Dropout | nn.Identity):
            raise TypeError(f"convert does not support {type(layer).__name__}")
        i += 1
    return IntegerModel(steps, input_q, current)
