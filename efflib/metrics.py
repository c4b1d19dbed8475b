"""Count a model's parameters, MACs, elementwise ops and activations from one forward pass.

Capture is at the ATen dispatch level (TorchDispatchMode), so functional calls
(`F.conv2d`, `@`, `x + y`) count exactly like modules; each op is attributed to
the innermost module running it. Conventions follow lecture 02 (MIT 6.5940,
Han): MACs of conv and linear only, bias ignored, grouped conv divided by g,
FLOPs = 2 x MACs; peak activations by tensor liveness as in MCUNet
(Lin et al., https://arxiv.org/abs/2007.10319).
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode

from efflib.devices import to_model_device
from efflib.graded import reference
from efflib.size import model_size

aten = torch.ops.aten

_VIEW_OR_FREE = {  # ops that allocate nothing new and compute nothing
    aten.view.default, aten._unsafe_view.default, aten.reshape.default, aten.t.default,
    aten.transpose.int, aten.permute.default, aten.expand.default, aten.squeeze.dim,
    aten.unsqueeze.default, aten.flatten.using_ints, aten.slice.Tensor, aten.select.int,
    aten.detach.default, aten.alias.default, aten.as_strided.default, aten.clone.default,
    aten.dropout.default, aten.native_dropout.default, aten.empty.memory_format,
}


def _macs(func, args, out) -> int:
    """Multiply-accumulates of one ATen op (0 for ops that have none)."""
    if func in (aten.convolution.default, aten._convolution.default):
        # weight (c_out, c_in/g, kh, kw), or (c_in, c_out/g, kh, kw) when transposed:
        # each output (each input, when transposed) meets one filter's worth of weights
        per_element = math.prod(args[1].shape[1:])
        return (args[0] if args[6] else out).numel() * per_element
    if func in (aten.mm.default, aten.addmm.default):
        a, b = (args[0], args[1]) if func is aten.mm.default else (args[1], args[2])
        return a.shape[0] * a.shape[1] * b.shape[1]
    if func in (aten.bmm.default, aten.baddbmm.default):
        a, b = (args[0], args[1]) if func is aten.bmm.default else (args[1], args[2])
        return a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
    return 0


@dataclass
class Row:
    """One module's share of the counts."""

    name: str
    type: str
    input_shape: tuple = ()
    output_shape: tuple = ()
    weights: int = 0
    params: int = 0
    macs: int = 0
    elementwise_ops: int = 0
    activations: int = 0
    ops: list[str] = field(default_factory=list)


@dataclass
class Profile:
    """Per-module rows and whole-model totals of one forward pass."""

    rows: list[Row]
    params: int
    weights: int
    macs: int
    elementwise_ops: int
    activations: int
    peak_activations: int
    zero_cost_ops: list[str]
    named_parameters: list[tuple[str, torch.Tensor]] = field(default_factory=list, repr=False)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def model_size(self, bits: int | Mapping[str, int] = 32, fmt: str = "dense",
                   index_bits: int = 32) -> int:
        """Bytes to store the parameters now (see efflib.size.model_size for the arguments)."""
        return model_size(self.named_parameters, bits, fmt, index_bits)

    def row(self, name: str) -> Row:
        """The row of module `name` ("(model)" for the whole model)."""
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no module named {name!r} in this profile")

    def __str__(self) -> str:
        head = (f"{'module':24s} {'type':16s} {'input':18s} {'output':18s} {'params':>11s} "
                f"{'MACs':>13s} {'elementwise':>11s} {'act.':>10s}")
        lines = [head, "-" * len(head)]
        for r in self.rows:
            lines.append(f"{r.name[:24]:24s} {r.type[:16]:16s} {_shape(r.input_shape):18s} "
                         f"{_shape(r.output_shape):18s} {r.params:>11,d} {r.macs:>13,d} "
                         f"{r.elementwise_ops:>11,d} {r.activations:>10,d}")
        lines.append(f"total: {self.params:,d} params ({self.weights:,d} weights), "
                     f"{self.macs:,d} MACs, {self.elementwise_ops:,d} elementwise ops, "
                     f"{self.activations:,d} activations (peak {self.peak_activations:,d})")
        return "\n".join(lines)


class _Counter(TorchDispatchMode):
    """Records every ATen op with its module, MACs, fresh outputs and storage liveness."""

    def __init__(self, rows: dict[str, Row], stack: list[str], inputs: Sequence[torch.Tensor]):
        super().__init__()
        self.rows, self.stack = rows, stack
        self.events: list[tuple[list[int], list[int]]] = []  # (storage ids used, ids created)
        self.zero: set[str] = set()
        # storage ids: an address freed and reused later gets a fresh id, so nothing has to be
        # kept alive (which would make every op allocate new memory and slow the pass down)
        self.ids: dict[int, int] = {}   # storage address -> id of the storage living there now
        self.sizes: list[int] = []      # id -> activation elements (0 for integer tensors)
        self.inputs = [self._new(t) for t in inputs]

    def _new(self, t: torch.Tensor) -> int:
        self.ids[_key(t)] = len(self.sizes)
        # feature maps only: max-pool's int64 indices are bookkeeping
        self.sizes.append(t.numel() if t.is_floating_point() else 0)
        return len(self.sizes) - 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        row = self.rows[self.stack[-1]]
        flat_in = _tensors(args) + (_tensors(tuple(kwargs.values())) if kwargs else [])
        flat_out = _tensors(out if isinstance(out, tuple | list) else (out,))
        macs = _macs(func, args, out)
        row.macs += macs
        row.ops.append(str(func.overloadpacket.__name__))
        in_keys = [_key(t) for t in flat_in]
        uses = [self.ids[k] for k in in_keys if k in self.ids]  # weights have no id
        news = [self._new(o) for o in flat_out if _key(o) not in in_keys]  # not views/in-place
        computes = func not in _VIEW_OR_FREE and flat_out and flat_out[0].is_floating_point()
        if computes and not macs:
            row.elementwise_ops += max(o.numel() for o in flat_out)
        elif not macs:
            self.zero.add(str(func))  # views, copies, integer bookkeeping: listed, not counted
        row.activations += sum(self.sizes[i] for i in news)
        self.events.append((uses, news))
        return out


def _tensors(values: tuple | list) -> list[torch.Tensor]:
    """Tensors among ATen arguments: at top level or inside a list (cat, stack)."""
    found = []
    for v in values:
        if isinstance(v, torch.Tensor):
            found.append(v)
        elif isinstance(v, tuple | list):
            found.extend(t for t in v if isinstance(t, torch.Tensor))
    return found


def _shape(shape: tuple) -> str:
    return "x".join(map(str, shape))[:18]


def _first_shape(value) -> tuple:
    """Shape of the first tensor in a value (a tensor, or a tuple/list/dict holding some)."""
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    items = value.values() if isinstance(value, dict) else value
    if isinstance(items, tuple | list) or isinstance(value, dict):
        for v in items:
            shape = _first_shape(v)
            if shape:
                return shape
    return ()


def _key(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


def _peak(counter: _Counter, outputs: Sequence[torch.Tensor]) -> int:
    """Most activation elements alive at once: a storage lives from creation to last use."""
    steps = len(counter.events)
    born = [-1] * len(counter.sizes)  # the model's inputs exist before the first op
    last = [-1] * len(counter.sizes)
    for step, (uses, news) in enumerate(counter.events):
        for i in news:
            born[i] = last[i] = step
        for i in uses:
            last[i] = step
    for t in outputs:  # the results live to the end
        if _key(t) in counter.ids:
            last[counter.ids[_key(t)]] = steps
    if not steps:
        return sum(counter.sizes)
    delta = [0] * (steps + 2)  # sweep: +n where a storage is born, -n after its last use
    for i, n in enumerate(counter.sizes):
        delta[max(born[i], 0)] += n
        delta[min(max(last[i], born[i], 0), steps - 1) + 1] -= n
    peak = alive = 0
    for step in range(steps):
        alive += delta[step]
        peak = max(peak, alive)
    return peak


@reference("profile")
def profile(model: nn.Module, *inputs: torch.Tensor) -> Profile:
    """Run `model(*inputs)` once under the counter and return its Profile."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"profile() needs an nn.Module, got {type(model).__name__}")
    if not inputs or not all(isinstance(t, torch.Tensor) for t in inputs):
        raise TypeError("profile(model, *inputs) needs at least one example input tensor, got "
                        f"{[type(t).__name__ for t in inputs]}")
    inputs = to_model_device(model, *inputs)
    rows = {name: Row(name or "(model)", type(m).__name__) for name, m in model.named_modules()}
    stack = [""]

    def enter(name: str):
        def hook(module, args) -> None:
            stack.append(name)
            rows[name].input_shape = _first_shape(args)
        return hook

    def leave(module, args, output) -> None:  # must return None: a value replaces the output
        rows[stack.pop()].output_shape = _first_shape(output)

    handles = []
    for name, m in model.named_modules():
        handles.append(m.register_forward_pre_hook(enter(name)))
        handles.append(m.register_forward_hook(leave))
    counter = _Counter(rows, stack, inputs)
    try:
        with torch.no_grad(), counter:
            out = model(*inputs)
    finally:
        for h in handles:
            h.remove()
    for name, m in model.named_modules():
        own = list(m.named_parameters(recurse=False))
        rows[name].params = sum(p.numel() for _, p in own)
        rows[name].weights = sum(p.numel() for n, p in own if n != "bias" and p.dim() > 1)
    outputs = [o for o in torch.utils._pytree.tree_leaves(out) if isinstance(o, torch.Tensor)]
    kept = [r for name, r in rows.items() if r.ops or r.params or name == ""]
    return Profile(
        rows=kept,
        params=sum(p.numel() for p in model.parameters()),
        weights=sum(r.weights for r in rows.values()),
        macs=sum(r.macs for r in rows.values()),
        elementwise_ops=sum(r.elementwise_ops for r in rows.values()),
        activations=sum(t.numel() for t in inputs) + sum(r.activations for r in rows.values()),
        peak_activations=_peak(counter, outputs),
        zero_cost_ops=sorted(counter.zero),
        named_parameters=list(model.named_parameters()),
    )
