"""A student's tensor function as data: the ATen operations one call of it ran.

A "write it yourself" question refuses some torch functions (F.conv2d in the einsum
question). A watch in the kernel can be switched off by the code it watches, so the
grader judges such a function by what it did instead: `describe` runs the function
in the kernel under a dispatch mode that records every ATen call, with its tensor
arguments named (the inputs, earlier results, or constants made elsewhere), in the
description format of `judging.graphs`. `rebuild` turns that back into a graph the
grader runs itself, from allow-listed operations only, with every result's size
checked on the meta device before it is allocated. The check then reads the
operations for refused ones, and runs the graph on fresh inputs: a result that was
computed outside the recorded operations (torch switched off, NumPy, `.item()`)
arrives as a constant, and the fresh inputs show that it does not follow from them.
"""

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

from autograde.judging import graphs
from autograde.judging.values import JudgeError

MAX_ELEMENTS = 2**25  # one result of a traced call: 32M elements, 128 MB of float32
MAX_CONSTANTS = 2**22  # elements of all constants together
ALLOWED = frozenset({f"aten.{op}" for op in (
    # arithmetic and elementwise math
    "add.Tensor", "add.Scalar", "add_.Tensor", "add_.Scalar", "sub.Tensor", "sub.Scalar",
    "sub_.Tensor", "rsub.Scalar", "rsub.Tensor", "mul.Tensor", "mul.Scalar", "mul_.Tensor",
    "mul_.Scalar", "div.Tensor", "div.Scalar", "div.Tensor_mode", "div.Scalar_mode",
    "div_.Tensor", "div_.Scalar", "neg.default", "neg_.default", "abs.default",
    "abs_.default", "reciprocal.default", "pow.Tensor_Scalar", "pow.Tensor_Tensor",
    "pow.Scalar", "sqrt.default", "rsqrt.default", "exp.default", "exp_.default",
    "expm1.default", "log.default", "log1p.default", "log2.default", "erf.default",
    "erfc.default", "sign.default", "floor.default", "ceil.default", "round.default",
    "trunc.default", "remainder.Scalar", "remainder.Tensor", "fmod.Scalar", "fmod.Tensor",
    "floor_divide.default", "floor_divide.Scalar", "clamp.default", "clamp.Tensor",
    "clamp_.default", "clamp_min.default", "clamp_max.default", "clamp_min_.default",
    "clamp_max_.default", "maximum.default", "minimum.default", "where.self",
    "where.ScalarSelf", "where.ScalarOther", "where.Scalar", "lerp.Scalar", "xlogy.Tensor",
    "addcmul.default", "addcdiv.default", "sin.default", "cos.default", "atan.default",
    "round_.default", "round.decimals", "floor_.default", "ceil_.default", "trunc_.default",
    "sqrt_.default", "reciprocal_.default", "sign_.default", "log_.default",
    "pow_.Scalar", "pow_.Tensor", "div_.Tensor_mode", "clamp_.Tensor", "remainder_.Scalar",
    # comparisons and logic
    "gt.Tensor", "gt.Scalar", "ge.Tensor", "ge.Scalar", "lt.Tensor", "lt.Scalar",
    "le.Tensor", "le.Scalar", "eq.Tensor", "eq.Scalar", "ne.Tensor", "ne.Scalar",
    "logical_not.default", "logical_and.default", "logical_or.default", "bitwise_not.default",
    "bitwise_and.Tensor", "bitwise_or.Tensor", "isnan.default", "isinf.default",
    "isfinite.default",
    # reductions
    "sum.default", "sum.dim_IntList", "mean.default", "mean.dim", "prod.default",
    "prod.dim_int", "amax.default", "amin.default", "max.default", "max.dim", "min.default",
    "min.dim", "argmax.default", "argmin.default", "var.correction", "var.dim",
    "std.correction", "std.dim", "var_mean.correction", "std_mean.correction",
    "cumsum.default", "logsumexp.default", "any.default", "any.dim", "all.default",
    "all.dim", "norm.ScalarOpt_dim", "linalg_vector_norm.default", "sort.default",
    "topk.default", "_softmax.default", "_log_softmax.default",
    # matrix products
    "mm.default", "bmm.default", "addmm.default", "mv.default", "dot.default",
    "baddbmm.default", "addbmm.default", "_unsafe_view.default",
    # views and shapes
    "view.default", "reshape.default", "_reshape_alias.default", "expand.default",
    "permute.default", "transpose.int", "t.default", "squeeze.default", "squeeze.dim",
    "squeeze.dims", "unsqueeze.default", "squeeze_.dim", "squeeze_.default",
    "unsqueeze_.default", "flatten.using_ints", "unflatten.int",
    "slice.Tensor", "select.int", "narrow.default", "unfold.default", "as_strided.default",
    "split.Tensor", "split_with_sizes.default", "unbind.int", "chunk.default", "alias.default",
    "detach.default", "lift_fresh.default", "lift_fresh_copy.default", "movedim.int",
    "diagonal.default", "flip.default", "roll.default", "view_as_real.default",
    # copies, joins and indexing
    "clone.default", "contiguous.default", "_to_copy.default", "to.dtype", "copy_.default",
    "copy.default", "cat.default", "stack.default", "repeat.default", "fill_.Scalar",
    "fill_.Tensor", "fill.Scalar", "zero_.default", "index.Tensor", "index_put.default",
    "index_put_.default", "index_select.default", "gather.default", "scatter.src",
    "scatter.value", "scatter_add.default", "masked_fill.Scalar", "masked_fill.Tensor",
    "masked_fill_.Scalar", "masked_fill_.Tensor", "constant_pad_nd.default",
    "reflection_pad1d.default", "reflection_pad2d.default", "replication_pad1d.default",
    "replication_pad2d.default", "tril.default", "triu.default", "tril_.default",
    "triu_.default", "nonzero.default", "masked_select.default", "_unsafe_index.Tensor",
    "repeat_interleave.self_int", "repeat_interleave.Tensor", "lerp.Tensor",
    "_unsafe_index_put.default", "slice_scatter.default", "select_scatter.default",
    # factories (sizes checked on the meta device before anything is allocated)
    "empty.memory_format", "empty_like.default", "empty_strided.default", "zeros.default",
    "zeros_like.default", "ones.default", "ones_like.default", "full.default",
    "full_like.default", "arange.default", "arange.start", "arange.start_step",
    "linspace.default", "eye.default", "new_zeros.default", "new_ones.default",
    "new_empty.default", "new_full.default", "new_empty_strided.default", "scalar_tensor.default",
    # layers a question may allow (a check refuses what its question asks students to write)
    "convolution.default", "im2col.default", "col2im.default", "relu.default", "relu_.default",
    "sigmoid.default", "tanh.default", "hardtanh.default", "hardswish.default", "gelu.default",
    "silu.default", "elu.default", "leaky_relu.default", "softplus.default", "mish.default",
    "threshold.default", "native_batch_norm.default", "_native_batch_norm_legit.default",
    "_native_batch_norm_legit.no_stats", "_native_batch_norm_legit_no_training.default",
    "native_layer_norm.default", "native_group_norm.default",
    "max_pool2d_with_indices.default", "avg_pool2d.default", "_adaptive_avg_pool2d.default",
    "adaptive_max_pool2d.default", "_pdist_forward.default",
)} | {"getitem"})


class NotATensor(TypeError):
    """The traced function returned something else than a tensor."""


# --- in the kernel: one call recorded -------------------------------------------------------

class Tracer(TorchDispatchMode):
    """Records each ATen call below it as a `judging.graphs` node."""

    def __init__(self, inputs: list[torch.Tensor]):
        super().__init__()
        self.nodes: list = [["input", f"x{i}", "USER_INPUT", None] for i in range(len(inputs))]
        self.names = {id(t): f"x{i}" for i, t in enumerate(inputs)}
        self.keep: list = list(inputs)  # alive, so that no id is reused while tracing
        self.state: dict[str, torch.Tensor] = {}

    def name_of(self, t: torch.Tensor) -> str:
        """Its name; a tensor no recorded call made becomes a constant of the graph."""
        if id(t) not in self.names:
            name = f"c{len(self.state)}"
            self.state[name] = t.detach().as_subclass(torch.Tensor).clone()
            self.nodes.append(["input", name, "CONSTANT_TENSOR", name])
            self.names[id(t)] = name
            self.keep.append(t)
        return self.names[id(t)]

    def arg(self, a):
        if isinstance(a, torch.Tensor):
            return {"n": self.name_of(a)}
        if isinstance(a, tuple | list):
            return {"t" if isinstance(a, tuple) else "l": [self.arg(v) for v in a]}
        return graphs._arg(a)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        flat, _ = tree_flatten(out)
        if not any(isinstance(t, torch.Tensor) for t in flat):
            return out  # a Python number (.item()): its later uses read as constants
        if len(self.nodes) >= graphs.MAX_NODES:
            raise RuntimeError(f"your function ran more than {graphs.MAX_NODES:,d} torch "
                               "operations on one input; the grader replays each of them, so "
                               "work on whole tensors (slices, unfold) rather than looping "
                               "over single elements")
        name = f"v{len(self.nodes)}"
        self.nodes.append(["call", name, str(func), self.arg(tuple(args)),
                           {"d": [[k, self.arg(v)] for k, v in kwargs.items()]}])
        if isinstance(out, torch.Tensor):
            self._name(out, name)
        else:
            for i, t in enumerate(out):
                if isinstance(t, torch.Tensor):
                    self.nodes.append(["call", f"{name}_{i}", "getitem",
                                       {"t": [{"n": name}, i]}, {"d": []}])
                    self._name(t, f"{name}_{i}")
        return out

    def _name(self, t: torch.Tensor, name: str) -> None:
        self.names[id(t)] = name
        self.keep.append(t)


def describe(fn, args: tuple, kwargs: dict) -> dict:
    """fn(*args, **kwargs) run once with every ATen call recorded: its tensor arguments
    are the graph's inputs, in order (positional first, then keyword values)."""
    inputs = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
    tracer = Tracer(inputs)
    with tracer:
        out = fn(*args, **kwargs)
    if not isinstance(out, torch.Tensor):
        raise NotATensor(f"should be a torch.Tensor, got {type(out).__name__}")
    nodes = tracer.nodes + [["output", tracer.arg(out)]]  # a result made elsewhere: a constant
    if sum(t.numel() for t in tracer.state.values()) > MAX_CONSTANTS:
        raise ValueError("your function made more constant data than a traced call may "
                         f"carry ({MAX_CONSTANTS:,d} elements)")
    return {"nodes": nodes, "state": tracer.state, "classes": []}


# --- in the grader: the call as a function ------------------------------------------------

class TracedFunction(graphs.GraphModel):
    """A recorded call rebuilt: `forward(*tensors)` runs its operations here, each
    result's size checked on the meta device first."""

    def _call(self, fn, args: tuple, kwargs: dict):
        try:
            meta = fn(*_to_meta(args), **_to_meta(kwargs))
        except Exception:  # noqa: BLE001 - a size that depends on values: bounded by inputs
            meta = None
        if meta is not None:
            for t in tree_flatten(meta)[0]:
                if isinstance(t, torch.Tensor) and t.numel() > MAX_ELEMENTS:
                    raise JudgeError(f"your function makes a tensor of {t.numel():,d} "
                                     f"elements (at most {MAX_ELEMENTS:,d})")
        return fn(*args, **kwargs)

    def op_names(self) -> set[str]:
        """The ATen operations it runs, by packet name ("convolution", "add")."""
        return {step[5].split(".")[1] for step in self.steps
                if step[0] == "call" and step[5] != "getitem"}


def _to_meta(tree):
    """Tensors and devices of a call's arguments moved to the meta device (no memory)."""
    meta = torch.device("meta")
    return tree_map(lambda t: t.to(meta) if isinstance(t, torch.Tensor)
                    else meta if isinstance(t, torch.device) else t, tree)


def rebuild(desc) -> TracedFunction:
    """The TracedFunction `describe` described; anything malformed or not allowed refused."""
    return graphs.rebuild(desc, ALLOWED, "function", TracedFunction)
