"""Random int8 conv layers and their uint8 inputs, for holding an integer kernel (a student's
Python in Lab 05, their C in Lab 06) to efflib's integer reference bit for bit.

The scheme is Jacob et al.'s (efflib.quant.integer): a float conv quantized on the
statistics of one random input, and that input's codes.
"""

import torch
import torch.nn as nn

from efflib.quant.integer import ACTIVATIONS, QParams, QuantizedLayer
from efflib.quant.linear import quantize


def random_conv(g: torch.Generator, x_shape: tuple[int, int, int, int], c_out: int, k: int,
                stride: int = 1, padding: int = 0, relu: bool = False, scale: float = 0.3,
                offset: float = 0.2) -> tuple[QuantizedLayer, torch.Tensor]:
    """A k x k conv to `c_out` channels with weights ~ N(0, scale^2) and biases ~ N(0, 0.01),
    quantized for an input of `x_shape` ~ N(offset, 1) drawn from `g`; the layer and the
    input's uint8 codes. The input's offset leaves negatives in the output, so a ReLU's
    clamp at z_y matters."""
    conv = nn.Conv2d(x_shape[1], c_out, k, stride, padding)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * scale)
        conv.bias.copy_(torch.randn(c_out, generator=g) * 0.1)
    x = torch.randn(x_shape, generator=g) + offset                 # (N, C, H, W)
    xq, yq = QParams.observe(x), QParams.observe(conv(x))
    return QuantizedLayer(conv, xq, yq, relu=relu), quantize(x, xq.scale, xq.zero_point,
                                                             ACTIVATIONS)


def halfway(layer: QuantizedLayer, x_shape: tuple[int, ...], g: torch.Generator
            ) -> tuple[QuantizedLayer, torch.Tensor]:
    """`layer` made to land a quarter of its results exactly halfway, of both signs, none
    saturating: weights in {-1, 0, 1}, no bias, M = 1/4 exactly, z_y = 128; and input codes
    of `x_shape` within 1 of z_x. The fixed-point formula rounds halves up (to +inf); half
    to even or away from zero give other integers."""
    layer.weight = torch.randint(-1, 2, layer.weight.shape, generator=g)
    layer.bias = torch.zeros_like(layer.bias)
    layer.m0 = torch.full_like(layer.m0, 2**30)
    layer.shift = torch.ones_like(layer.shift)
    layer.y = QParams(layer.y.scale, 128)
    return layer, layer.x.zero_point + torch.randint(-1, 2, x_shape, generator=g)
