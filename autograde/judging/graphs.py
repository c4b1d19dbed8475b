"""A student's own nn.Module as data: its torch.export graph of ATen ops and its tensors.

A module whose class the student wrote cannot travel as layers (its `forward` is their
code). `describe` runs where the module lives (the student's kernel) and turns it into
its exported graph: one entry per ATen call, its arguments as names of earlier values
or plain constants, and the parameters and buffers as tensors. `rebuild` checks that
description in the grader (known operations only, references to earlier values only,
every tensor present) and makes a `GraphModel`, which the grader runs itself. What the
checks test is then computed from the student's numbers by the grader's own torch.

torch.export: https://pytorch.org/docs/stable/export.html
"""

import operator

import torch
import torch.nn as nn

from autograde.judging.values import JudgeError

MAX_NODES = 10_000
ALLOWED = frozenset({  # ATen operations a block of the course may use; nothing allocates by size
    "aten.conv2d.default", "aten.convolution.default", "aten.linear.default",
    "aten.batch_norm.default", "aten._native_batch_norm_legit_no_training.default",
    "aten.relu.default", "aten.relu_.default", "aten.relu6.default",
    "aten.hardtanh.default", "aten.hardtanh_.default", "aten.hardswish.default",
    "aten.hardswish_.default", "aten.sigmoid.default", "aten.silu.default",
    "aten.silu_.default", "aten.add.Tensor", "aten.add_.Tensor", "aten.sub.Tensor",
    "aten.mul.Tensor", "aten.max_pool2d.default", "aten.max_pool2d_with_indices.default",
    "aten.avg_pool2d.default", "aten.adaptive_avg_pool2d.default", "aten.mean.dim",
    "aten.view.default", "aten.reshape.default", "aten.flatten.using_ints",
    "aten.transpose.int", "aten.permute.default", "aten.cat.default", "aten.chunk.default",
    "aten.split.Tensor", "aten.split_with_sizes.default", "aten.clone.default",
    "aten.contiguous.default", "aten.dropout.default", "aten.alias.default",
    "aten.detach.default", "getitem",
})
_KINDS = ("USER_INPUT", "PARAMETER", "BUFFER", "CONSTANT_TENSOR")
_FORMATS = ("contiguous_format", "preserve_format", "channels_last")
_CONV = ("aten.conv2d.default", "aten.convolution.default", "aten.linear.default")


# --- in the kernel: the module as data ---------------------------------------------------

def _target(target) -> str:
    return "getitem" if target is operator.getitem else str(target)


def _arg(a):
    """One argument of a graph node as plain data."""
    if isinstance(a, torch.fx.Node):
        return {"n": a.name}
    if isinstance(a, tuple | list):
        return {"t" if isinstance(a, tuple) else "l": [_arg(v) for v in a]}
    if isinstance(a, dict):
        return {"d": [[str(k), _arg(v)] for k, v in a.items()]}
    if a is None or type(a) in (bool, int, float, str):
        return a
    if isinstance(a, torch.dtype):
        return {"dtype": str(a).removeprefix("torch.")}
    if isinstance(a, torch.device):
        return {"device": a.type}
    if isinstance(a, torch.memory_format):
        return {"memory_format": str(a).removeprefix("torch.")}
    if isinstance(a, torch.layout):
        return {"layout": str(a).removeprefix("torch.")}
    raise TypeError(f"cannot describe an argument of type {type(a).__name__}")


def describe(module: nn.Module, example_args: tuple) -> dict:
    """The module in eval mode, exported with `example_args`, as plain data."""
    module.eval()
    ep = torch.export.export(module, tuple(example_args))
    specs = {s.arg.name: s for s in ep.graph_signature.input_specs}
    tensors = {**ep.state_dict, **ep.constants}
    nodes, classes, state = [], set(), {}
    for n in ep.graph.nodes:
        for _, cls in (n.meta.get("nn_module_stack") or {}).values():
            classes.add(cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__qualname__}")
        if n.op == "placeholder":
            spec = specs[n.name]
            nodes.append(["input", n.name, spec.kind.name, spec.target])
            if spec.target is not None:
                state[spec.target] = tensors[spec.target].detach()
        elif n.op == "call_function":
            nodes.append(["call", n.name, _target(n.target), _arg(n.args), _arg(n.kwargs)])
        elif n.op == "output":
            nodes.append(["output", _arg(n.args[0])])
        else:
            raise TypeError(f"cannot describe a {n.op} node")
    return {"nodes": nodes, "state": state, "classes": sorted(classes)}


# --- in the grader: the data as a module ---------------------------------------------------

def _op(name: str, allowed: frozenset[str] = ALLOWED, what: str = "module"):
    if name not in allowed:
        raise JudgeError(f"your {what} uses {name[:80]}, which the grader does not run")
    if name == "getitem":
        return operator.getitem
    _, packet, overload = name.split(".")
    return getattr(getattr(torch.ops.aten, packet), overload)


def _value(a, known: set[str], depth: int = 0):
    """An argument back from data: node names stay names (checked to exist earlier)."""
    if depth > 10:
        raise JudgeError("an argument is nested too deep")
    if a is None or type(a) in (bool, int, float, str):
        return a
    if type(a) is not dict or len(a) != 1:
        raise JudgeError("a malformed argument")
    (kind, v), = a.items()
    if kind == "n":
        if v not in known:
            raise JudgeError(f"an argument refers to {str(v)[:40]!r} before it exists")
        return _Ref(v)
    if kind in ("t", "l") and type(v) is list:
        items = [_value(x, known, depth + 1) for x in v]
        return tuple(items) if kind == "t" else items
    if kind == "d" and type(v) is list:
        return {str(k): _value(x, known, depth + 1) for k, x in v}
    if kind == "dtype" and isinstance(getattr(torch, str(v), None), torch.dtype):
        return getattr(torch, v)
    if kind == "device" and v in ("cpu", "cuda"):
        return torch.device("cpu")  # the grader computes on its CPU
    if kind == "memory_format" and v in _FORMATS:
        return getattr(torch, v)
    if kind == "layout" and v == "strided":
        return torch.strided
    raise JudgeError(f"a malformed argument ({str(kind)[:20]})")


class _Ref(str):
    """The name of an earlier value of the graph."""


def _resolve(a, env: dict):
    if isinstance(a, _Ref):
        return env[a]
    if isinstance(a, tuple):
        return tuple(_resolve(v, env) for v in a)
    if isinstance(a, list):
        return [_resolve(v, env) for v in a]
    if isinstance(a, dict):
        return {k: _resolve(v, env) for k, v in a.items()}
    return a


class GraphModel(nn.Module):
    """A student's module rebuilt from its exported graph; `forward` runs the graph here."""

    def __init__(self, steps: list, sources: dict[str, str], classes: tuple[str, ...]):
        super().__init__()
        self.steps, self.sources, self.classes = steps, sources, classes

    def forward(self, *inputs):
        env, given = {}, iter(inputs)
        for step in self.steps:
            if step[0] == "input":
                env[step[1]] = next(given) if step[2] is None else getattr(self, step[2])
            elif step[0] == "call":
                _, name, fn, args, kwargs, _ = step
                env[name] = self._call(fn, _resolve(args, env), _resolve(kwargs, env))
            else:
                out = _resolve(step[1], env)
                return out[0] if isinstance(out, tuple | list) and len(out) == 1 else out
        raise JudgeError("the graph has no output")

    def _call(self, fn, args: tuple, kwargs: dict):
        return fn(*args, **kwargs)

    def conv_weights(self) -> list[torch.Tensor]:
        """The weights and biases of its convolutions and linear layers."""
        found = []
        for step in self.steps:
            if step[0] == "call" and step[5] in _CONV:
                for a in step[3][1:3]:
                    if isinstance(a, _Ref) and a in self.sources:
                        found.append(getattr(self, self.sources[a]))
        return found


def rebuild(desc, allowed: frozenset[str] = ALLOWED, what: str = "module",
            cls: type[GraphModel] = GraphModel) -> GraphModel:
    """The GraphModel `describe` described; anything malformed or unknown refused.
    `allowed`: the ATen operations the grader may run for it; `what` names it in errors;
    `cls`: the GraphModel class to build."""
    if type(desc) is not dict or set(desc) != {"nodes", "state", "classes"}:
        raise JudgeError("not a module description")
    nodes, state = desc["nodes"], desc["state"]
    if type(nodes) is not list or type(state) is not dict or not 0 < len(nodes) <= MAX_NODES:
        raise JudgeError(f"a {what} of at most {MAX_NODES:,d} operations is expected")
    model = cls([], {}, tuple(str(c)[:200] for c in desc["classes"][:1000]))
    known: set[str] = set()
    for i, node in enumerate(nodes):
        if type(node) is not list or not node:
            raise JudgeError("a malformed operation")
        if node[0] == "output" and len(node) == 2 and i == len(nodes) - 1:
            model.steps.append(("output", _value(node[1], known)))
            return model
        if len(node) < 2 or type(node[1]) is not str or node[1] in known:
            raise JudgeError("a malformed or repeated operation name")
        if node[0] == "input" and len(node) == 4 and node[2] in _KINDS:
            attr = None
            if node[2] != "USER_INPUT":
                tensor = state.get(node[3])
                if not isinstance(tensor, torch.Tensor):
                    raise JudgeError(f"the tensor {str(node[3])[:60]!r} is missing")
                attr = f"t{len(model.sources)}"
                if node[2] == "PARAMETER":
                    model.register_parameter(attr, nn.Parameter(tensor,
                                                                tensor.is_floating_point()))
                else:
                    model.register_buffer(attr, tensor)
                model.sources[node[1]] = attr
            model.steps.append(("input", node[1], attr))
        elif node[0] == "call" and len(node) == 5 and type(node[2]) is str:
            fn = _op(node[2], allowed, what)
            args, kwargs = _value(node[3], known), _value(node[4], known)
            if not isinstance(args, tuple) or not isinstance(kwargs, dict):
                raise JudgeError("a malformed operation")
            model.steps.append(("call", node[1], fn, args, kwargs, node[2]))
        else:
            raise JudgeError("a malformed operation")
        known.add(node[1])
    raise JudgeError("the graph has no output")

