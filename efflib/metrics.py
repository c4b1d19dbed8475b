"""Count a model's parameters, MACs, elementwise ops and activations from one forward pass.

Capture is at the ATen dispatch level (TorchDispatchMode), so functional calls
(`F.conv2d`, `@`, `x + y`) and fused kernels (attention, LSTM) count like modules;
each op is attributed to the innermost module running it. Conventions follow
lecture 02 (MIT 6.5940, Han): MACs of the ops in efflib.macs, bias ignored,
grouped conv divided by g, FLOPs = 2 x MACs; peak activations by tensor liveness
as in MCUNet (Lin et al., https://arxiv.org/abs/2007.10319).

The pass runs in eval mode unless `mode="train"` (efflib.measuring): the model
comes back unchanged. On the meta device nothing is computed or allocated and
every count, activations included, is exact. Modules from `torch.export` get
per-layer rows from the graph's module stack; a TorchScript module (traced or
scripted) runs its graph in C++, so its totals are exact but all land in one row.
"""

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.fx
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.weak import WeakTensorKeyDictionary

from efflib.devices import to_model_device
from efflib.graded import reference
from efflib.macs import formula
from efflib.measuring import measuring
from efflib.size import model_size

aten = torch.ops.aten

_VIEW_OR_FREE = {  # ops that allocate nothing new and compute nothing
    aten.view.default, aten._unsafe_view.default, aten.reshape.default, aten.t.default,
    aten.transpose.int, aten.permute.default, aten.expand.default, aten.squeeze.dim,
    aten.unsqueeze.default, aten.flatten.using_ints, aten.slice.Tensor, aten.select.int,
    aten.detach.default, aten.alias.default, aten.as_strided.default, aten.clone.default,
    aten.dropout.default, aten.native_dropout.default, aten.empty.memory_format,
}
_SHARES_STORAGE = {aten._unsafe_view.default}  # a view that its schema does not call one
_STATISTICS_AFTER_FIRST = {  # normalisations also return per-channel mean and inverse std
    aten.native_batch_norm.default, aten._native_batch_norm_legit.default,
    aten._native_batch_norm_legit.no_stats, aten._native_batch_norm_legit_no_training.default,
    aten.native_layer_norm.default, aten.native_group_norm.default,
}


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


SORT_KEYS = ("macs", "params", "weights", "activations", "elementwise_ops")


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

    def model_size(self, bits: int | Mapping[str, int] | None = None, fmt: str = "dense",
                   index_bits: int = 32) -> int:
        """Bytes to store the parameters now (see efflib.size.model_size for the arguments;
        by default each tensor at its own dtype's width)."""
        return model_size(self.named_parameters, bits, fmt, index_bits)

    def row(self, name: str) -> Row:
        """The row of module `name` ("(model)" for the whole model)."""
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no module named {name!r} in this profile")

    def top(self, k: int | None = None, by: str = "macs", type: str | None = None) -> list[Row]:
        """The rows with the largest `by` (one of SORT_KEYS), largest first; only modules of
        class `type` (e.g. "Conv2d") when given; the first `k` of them when given."""
        if by not in SORT_KEYS:
            raise ValueError(f"by must be one of {SORT_KEYS}, got {by!r}")
        rows = [r for r in self.rows if type is None or r.type == type]
        rows = sorted(rows, key=lambda r: getattr(r, by), reverse=True)
        return rows if k is None else rows[:k]

    def to_records(self) -> list[dict]:
        """One plain dict per row (for pandas.DataFrame, csv, json)."""
        return [{**asdict(r), "ops": list(r.ops)} for r in self.rows]

    def to_dataframe(self):
        """The rows as a pandas DataFrame, indexed by module name (needs pandas)."""
        try:
            import pandas as pd  # noqa: PLC0415 - optional dependency, imported on use
        except ImportError as e:
            raise ImportError("to_dataframe() needs pandas; to_records() gives plain dicts") \
                from e
        return pd.DataFrame(self.to_records()).set_index("name")

    def table(self, rows: Sequence[Row] | None = None) -> str:
        """The per-layer table of `rows` (default: every row, in execution order)."""
        head = (f"{'module':24s} {'type':16s} {'input':18s} {'output':18s} {'params':>11s} "
                f"{'MACs':>13s} {'elementwise':>11s} {'act.':>10s}")
        lines = [head, "-" * len(head)]
        for r in self.rows if rows is None else rows:
            lines.append(f"{r.name[:24]:24s} {r.type[:16]:16s} {_shape(r.input_shape):18s} "
                         f"{_shape(r.output_shape):18s} {r.params:>11,d} {r.macs:>13,d} "
                         f"{r.elementwise_ops:>11,d} {r.activations:>10,d}")
        lines.append(f"total: {self.params:,d} params ({self.weights:,d} weights), "
                     f"{self.macs:,d} MACs, {self.elementwise_ops:,d} elementwise ops, "
                     f"{self.activations:,d} activations (peak {self.peak_activations:,d})")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


class _Op:
    """What the counter needs to know about one ATen overload, worked out once."""

    __slots__ = ("free", "label", "macs", "name", "shares", "statistics")

    def __init__(self, func):
        self.macs = formula(func)
        self.label = str(func)
        self.statistics = func in _STATISTICS_AFTER_FIRST
        self.name = func.overloadpacket.__name__
        self.free = func in _VIEW_OR_FREE
        returns = func._schema.returns
        self.shares = func in _SHARES_STORAGE or any(r.alias_info is not None for r in returns)


class _Counter(TorchDispatchMode):
    """Records every ATen op with its module, MACs, fresh outputs and storage liveness."""

    def __init__(self, rows: dict[str, Row], stack: list[str], inputs: Sequence[torch.Tensor],
                 meta: bool, weights: dict[int, torch.Tensor]):
        super().__init__()
        self.rows, self.stack, self.meta = rows, stack, meta
        self.weights = weights  # ids of the parameter and buffer objects: never activations
        # their storages: an op's output living there (a weight's view) is not an activation
        self.weight_keys = set() if meta else {_key(t) for t in weights.values()}
        self.events: list[tuple[list[int], list[int]]] = []  # (storage ids used, ids created)
        self.zero: set[str] = set()
        self.ops: dict = {}
        # storage ids: an address freed and reused later gets a fresh id, so nothing has to be
        # kept alive (which would make every op allocate new memory and slow the pass down).
        # Meta tensors have no addresses: there each tensor object maps to its storage's id.
        self.ids: dict[int, int] = {}   # storage address -> id of the storage living there now
        self.meta_ids = WeakTensorKeyDictionary()
        self.sizes: list[int] = []      # id -> activation elements (0 for integer tensors)
        self.inputs = [self._new(t) for t in inputs]

    def _new(self, t: torch.Tensor, feature_map: bool = True) -> int:
        i = len(self.sizes)
        if self.meta:
            self.meta_ids[t] = i
        else:
            self.ids[_key(t)] = i
        # feature maps only: max-pool's int64 indices and BN's statistics are bookkeeping
        self.sizes.append(t.numel() if feature_map and t.is_floating_point() else 0)
        return i

    def id_of(self, t: torch.Tensor) -> int | None:
        """The storage id of a tensor seen in the pass (None for weights and constants)."""
        if self.meta:
            return self.meta_ids.get(t)
        return self.ids.get(_key(t))

    def _storages(self, op: _Op, flat_in, flat_out) -> tuple[list[int], list[int]]:
        """Ids of the storages the op read, and of the ones it created."""
        if not self.meta:
            in_keys = [_key(t) for t in flat_in if id(t) not in self.weights]
            uses = [self.ids[k] for k in in_keys if k in self.ids]  # weights have no id
            return uses, [self._new(o, j == 0 or not op.statistics)
                          for j, o in enumerate(flat_out)
                          if (k := _key(o)) not in in_keys and k not in self.weight_keys]
        uses = [self.meta_ids[t] for t in flat_in if t in self.meta_ids]
        news = []
        for j, o in enumerate(flat_out):
            if any(o is t for t in flat_in):            # in place: the same storage
                continue
            if op.shares and flat_in:                   # a view of its (first) input
                if flat_in[0] in self.meta_ids:
                    self.meta_ids[o] = self.meta_ids[flat_in[0]]
                continue
            news.append(self._new(o, j == 0 or not op.statistics))
        return uses, news

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        op = self.ops.get(func)
        if op is None:
            op = self.ops[func] = _Op(func)
        row = self.rows[self.stack[-1]]
        flat_in = _tensors(args) + (_tensors(tuple(kwargs.values())) if kwargs else [])
        flat_out = _tensors(out if isinstance(out, tuple | list) else (out,))
        macs = op.macs(args, out) if op.macs is not None else 0
        row.macs += macs
        row.ops.append(op.name)
        uses, news = self._storages(op, flat_in, flat_out)
        computes = not op.free and flat_out and flat_out[0].is_floating_point()
        if computes and op.macs is None:
            row.elementwise_ops += max(o.numel() for o in flat_out)
        elif op.macs is None:
            self.zero.add(op.label)  # views, copies, integer bookkeeping: listed, not counted
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
        i = counter.id_of(t)
        if i is not None:
            last[i] = steps
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



def _normal(value):
    """A normal tensor in place of an inference-mode tensor (other values unchanged)."""
    if isinstance(value, torch.Tensor) and value.is_inference():
        with torch.inference_mode(False):
            return value.clone()
    return value


def _check_inputs(inputs: tuple, kwinputs: dict) -> None:
    values = [*inputs, *kwinputs.values()]
    tensors = [v for v in torch.utils._pytree.tree_leaves(values) if isinstance(v, torch.Tensor)]
    if not tensors:
        raise TypeError("profile(model, *inputs, **kwinputs) needs at least one example input "
                        f"tensor, got {[type(v).__name__ for v in values]}")
    names = [f"input {i}" for i in range(len(inputs))] + [f"input {k!r}" for k in kwinputs]
    for name, v in zip(names, values, strict=True):
        if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == 0:
            raise ValueError(f"profile: {name} has batch size 0 (shape {tuple(v.shape)}); "
                             "counts need at least one example")


def _module_stack(node: torch.fx.Node) -> tuple[str, str] | None:
    """(qualified name, class name) of the innermost module a torch.export node came from."""
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return None
    name, cls = list(stack.values())[-1]
    return name, (cls if isinstance(cls, str) else cls.__name__).rsplit(".", 1)[-1]


class _ExportedRunner(torch.fx.Interpreter):
    """Runs a torch.export graph node by node, telling the counter whose layer each is."""

    def __init__(self, module, rows: dict[str, Row], stack: list[str]):
        super().__init__(module)
        self.rows, self.stack = rows, stack

    def run_node(self, node):
        where = _module_stack(node)
        if where is None or node.op in ("placeholder", "output", "get_attr"):
            return super().run_node(node)
        name, cls = where
        row = self.rows.setdefault(name, Row(name or "(model)", cls))
        if row.type in ("Module", "GraphModuleImpl"):
            row.type = cls
        if not row.input_shape:  # the first node of a layer reads its input
            args, _ = self.fetch_args_kwargs_from_env(node)
            row.input_shape = _first_shape(args)
        self.stack.append(name)
        try:
            out = super().run_node(node)
        finally:
            self.stack.pop()
        row.output_shape = _first_shape(out) or row.output_shape  # the last node writes it
        return out


@reference("profile")
def profile(model: nn.Module, *inputs, mode: str = "eval", **kwinputs) -> Profile:
    """Run `model(*inputs, **kwinputs)` once under the counter and return its Profile.

    The pass runs in `mode` ("eval" by default, as an efficiency profiler measures
    inference; "train" counts dropout masks and BN batch statistics too) and leaves the
    model as it was: its modes, parameters and buffers. Inputs move to the model's device.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"profile() needs an nn.Module, got {type(model).__name__}")
    _check_inputs(inputs, kwinputs)
    modules = list(model.named_modules())  # walked once: big models have thousands
    moved = to_model_device(model, *inputs, *kwinputs.values(), modules=[m for _, m in modules])
    inputs, kwinputs = moved[:len(inputs)], dict(zip(kwinputs, moved[len(inputs):], strict=True))
    rows = {name: Row(name or "(model)", type(m).__name__) for name, m in modules}
    names = {id(m): name for name, m in modules}
    stack = [""]
    scripted = isinstance(model, torch.jit.ScriptModule)
    exported = isinstance(model, torch.fx.GraphModule) and any(
        _module_stack(n) for n in model.graph.nodes)
    if scripted:
        warnings.warn(f"{type(model).__name__} is a TorchScript module: its graph runs in C++, "
                      "so every count lands in the top row. The totals are exact; profile the "
                      "nn.Module you scripted or traced (or torch.export it) for per-layer rows.",
                      stacklevel=3)  # the caller, past efflib.graded

    # two global hooks instead of two per module: registering hundreds costs more than a pass
    def enter(module, args) -> None:
        name = names.get(id(module))
        stack.append(stack[-1] if name is None else name)  # a module from elsewhere: no row
        if name is not None:
            rows[name].input_shape = _first_shape(args)

    def leave(module, args, output) -> None:  # must return None: a value replaces the output
        name = stack.pop()
        if names.get(id(module)) == name:
            rows[name].output_shape = _first_shape(output)

    handles = []
    if not (scripted or exported):
        handles = [nn.modules.module.register_module_forward_pre_hook(enter),
                   nn.modules.module.register_module_forward_hook(leave)]
    if torch.is_inference_mode_enabled():
        # under inference mode PyTorch dispatches conv2d and linear undecomposed, so their
        # MACs would be missed: count in normal mode, on normal copies of the inputs
        inputs, kwinputs = torch.utils._pytree.tree_map(
            _normal, (tuple(inputs), kwinputs))
    tensors = [t for t in torch.utils._pytree.tree_leaves([inputs, kwinputs])
               if isinstance(t, torch.Tensor)]
    counter = _Counter(rows, stack, tensors, meta=any(t.is_meta for t in tensors),
                       weights={id(t): t for _, m in modules
                                for t in (*m._parameters.values(), *m._buffers.values())
                                if t is not None})
    try:
        with measuring(model, mode), torch.inference_mode(False), torch.no_grad(), counter:
            if exported:
                out = _ExportedRunner(model, rows, stack).run(*inputs, **kwinputs)
            else:
                out = model(*inputs, **kwinputs)
    finally:
        for h in handles:
            h.remove()
    if exported or scripted:
        rows[""].input_shape, rows[""].output_shape = _first_shape(inputs), _first_shape(out)
    for name, m in modules:
        own = [(n, p) for n, p in m._parameters.items() if p is not None]
        rows[name].params = sum(p.numel() for _, p in own)
        rows[name].weights = sum(p.numel() for n, p in own if n != "bias" and p.dim() > 1)
    named = list(model.named_parameters())  # a tied weight once
    outputs = [o for o in torch.utils._pytree.tree_leaves(out) if isinstance(o, torch.Tensor)]
    kept = [r for name, r in rows.items() if r.ops or r.params or name == ""]
    return Profile(
        rows=kept,
        params=sum(p.numel() for _, p in named),
        weights=sum(p.numel() for n, p in named if not n.endswith("bias") and p.dim() > 1),
        macs=sum(r.macs for r in rows.values()),
        elementwise_ops=sum(r.elementwise_ops for r in rows.values()),
        activations=sum(counter.sizes[i] for i in counter.inputs)
        + sum(r.activations for r in rows.values()),
        peak_activations=_peak(counter, outputs),
        zero_cost_ops=sorted(counter.zero),
        named_parameters=named,
    )
