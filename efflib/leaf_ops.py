"""What common torch.nn leaf modules do at the ATen level on the CPU, so that efflib.profiler
can book a call to one without watching its ops.

Watching every op through a TorchDispatchMode costs a Python round trip per op, which
shows on models of many small layers (MobileNetV2 has 141 leaf modules). The counter
switches its mode off inside a leaf module that a rule here covers, and books the
module's call as the ops it would have seen: their names, MACs (lecture 02's
conventions, as in efflib.macs), elementwise ops and the one output they create.
tests/test_leaf_ops.py compares both ways on every rule and on whole models.

A rule answers None wherever it is not sure, and the module is then watched op by op:
train mode (batch norm updates its statistics, dropout draws a mask), padding modes and
string paddings (they pad first), inputs of another rank (reshapes first), a global pool
on anything but a row-major input (channels_last adds an in-place restride).
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import torch.nn as nn
from torch import Tensor


class Leaf(NamedTuple):
    """One call of a leaf module, as the ATen ops it runs."""

    ops: tuple[str, ...]          # their names, in order
    free: tuple[str, ...]         # the overloads among them that compute nothing
    macs: int = 0
    elementwise_ops: int = 0


Rule = Callable[[nn.Module, Tensor], Callable[[Tensor], Leaf] | None]


def _conv(m: nn.Conv2d, x: Tensor) -> Callable[[Tensor], Leaf] | None:
    if m.padding_mode != "zeros" or isinstance(m.padding, str) or x.dim() != m.weight.dim():
        return None
    per_output = math.prod(m.weight.shape[1:])  # (c_out, c_in/g, k...): one filter's weights
    return lambda y: Leaf(("convolution",), (), y.numel() * per_output)


_BN_OPS = ("empty", "native_batch_norm")  # an empty reserve buffer, then the normalisation
_BN_FREE = ("aten.empty.memory_format",)


def _batch_norm(m: nn.BatchNorm2d, x: Tensor) -> Callable[[Tensor], Leaf] | None:
    if m.training or m.running_mean is None:
        return None
    return lambda y: Leaf(_BN_OPS, _BN_FREE, 0, y.numel())


def _linear(m: nn.Linear, x: Tensor) -> Callable[[Tensor], Leaf] | None:
    if x.dim() != 2:
        return None
    ops = ("t", "mm") if m.bias is None else ("t", "addmm")  # x @ w.t() (+ b)
    return lambda y: Leaf(ops, ("aten.t.default",), x.shape[0] * x.shape[1] * y.shape[1])


def _elementwise(name: str) -> Rule:
    """A module that calls one elementwise op, `name` or its in-place form `name_`."""
    def rule(m: nn.Module, x: Tensor) -> Callable[[Tensor], Leaf]:
        ops = (name + "_",) if m.inplace else (name,)
        return lambda y: Leaf(ops, (), 0, y.numel())
    return rule


def _adaptive_avg_pool(m: nn.AdaptiveAvgPool2d, x: Tensor) -> Callable[[Tensor], Leaf] | None:
    if x.dim() != 4 or m.output_size not in (1, (1, 1)):
        return None  # global pooling is a mean; other sizes call _adaptive_avg_pool2d
    if x.stride() != _row_major(x.shape):
        return None  # channels_last (even a 1x1 one): torch restrides the mean in place
    return lambda y: Leaf(("mean",), (), 0, y.numel())


def _row_major(shape) -> tuple[int, ...]:
    """The strides of a contiguous (N, C, H, W)-ordered tensor of `shape`."""
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


def _dropout(m: nn.Dropout, x: Tensor) -> Callable[[Tensor], Leaf] | None:
    if m.training:
        return None
    return lambda y: Leaf((), ())  # in eval mode it returns its input: no op at all


RULES: dict[type, Rule] = {
    nn.Conv1d: _conv, nn.Conv2d: _conv, nn.Conv3d: _conv,
    nn.BatchNorm1d: _batch_norm, nn.BatchNorm2d: _batch_norm, nn.BatchNorm3d: _batch_norm,
    nn.Linear: _linear,
    nn.ReLU: _elementwise("relu"), nn.ReLU6: _elementwise("hardtanh"),
    nn.Hardtanh: _elementwise("hardtanh"),
    nn.AdaptiveAvgPool2d: _adaptive_avg_pool,
    nn.Dropout: _dropout,
}
