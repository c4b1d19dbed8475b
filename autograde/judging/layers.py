"""Trees of standard torch.nn layers as data: described in the kernel, rebuilt in the grader.

Only the exact classes below travel (no subclasses, whose `forward` could be
anything); a tree is rebuilt from torch's own classes, its constructor arguments,
parameters and buffers, so the grader runs torch's code on the student's numbers.
A few of this project's own modules travel too, rebuilt from the grader's copy of their
class: those registered with `trusted_module` (efflib's models here; a check registers
the modules it hands to answers, e.g. checks/models.py). The kernel does not hold the
registry: each request names the registered classes (judging.channel), and the kernel
imports them by name (`trust_names`), so judging names no lab.

A module sent into the kernel and changed there in place comes back the same way:
the reply to a call carries its description after the call, and `sync` copies it
into the grader's module, keeping each parameter object (an optimizer holds them).
"""

import importlib
from collections import OrderedDict

import torch
import torch.nn as nn

from autograde.judging.values import JudgeError
from efflib.models.digits import DigitCNN
from efflib.models.early_exit import EarlyExitCNN

_CONV = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
         "groups", "padding_mode")
_NORM = ("num_features", "eps", "momentum", "affine", "track_running_stats")
LAYERS = {  # class: the constructor arguments read back from an instance
    "Sequential": (), "Identity": (), "Sigmoid": (), "Tanh": (),
    "Conv1d": _CONV, "Conv2d": _CONV, "Linear": ("in_features", "out_features"),
    "BatchNorm1d": _NORM, "BatchNorm2d": _NORM,
    "ReLU": ("inplace",), "ReLU6": ("inplace",), "Hardswish": ("inplace",),
    "GELU": ("approximate",), "Dropout": ("p", "inplace"),
    "MaxPool2d": ("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    "AvgPool2d": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                  "divisor_override"),
    "AdaptiveAvgPool2d": ("output_size",), "Flatten": ("start_dim", "end_dim"),
    "Softmax": ("dim",),
}
_BIASED = ("Conv1d", "Conv2d", "Linear")
TRUSTED: dict[str, type] = {}  # this project's modules whose forward is trusted code
MAX_WIDTH = 2**24  # channels and features: they only size tensors, which must be sent
MAX_ARGUMENT = 4096  # kernel sizes, strides, paddings: a padding of 10**6 makes huge outputs
_WIDTHS = {"in_channels", "out_channels", "in_features", "out_features", "num_features"}


def _bounded(value, limit: int) -> bool:
    if isinstance(value, bool) or value is None or isinstance(value, (str, float)):
        return True
    if isinstance(value, int):
        return abs(value) <= limit
    return (isinstance(value, (tuple, list)) and len(value) <= 4
            and all(_bounded(v, limit) for v in value))


def dotted(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def trusted_module(cls: type) -> type:
    """Class decorator: `cls`, a module of this project, travels between kernel and grader,
    rebuilt bare from the grader's copy of the class and filled with the tensors sent (so
    its `forward` is the grader's code). The kernel imports its module by name: keep it
    in a module with nothing a student may not see, apart from a lab's references (the
    clean room has no lab checks)."""
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"trusted_module takes an nn.Module class, got {cls!r}")
    TRUSTED[dotted(cls)] = cls
    return cls


def trusted_names() -> list[str]:
    """The registered classes, as each request to a kernel names them."""
    return sorted(TRUSTED)


def trust_names(names) -> None:
    """In a kernel: register the classes the grader's request names, imported by name; a
    name that is not a module class importable here is passed over (its modules then
    cannot travel from this kernel)."""
    for name in names if isinstance(names, list) else []:
        if not isinstance(name, str) or name in TRUSTED:
            continue
        module, _, qualname = name.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), qualname, None)
        except ImportError:
            continue
        if isinstance(cls, type) and issubclass(cls, nn.Module) and dotted(cls) == name:
            TRUSTED[name] = cls


def _class_name(value) -> str | None:
    """The wire name of `value`'s class if it may travel (exact classes only)."""
    cls = type(value)
    name = cls.__name__
    if name in LAYERS and cls is getattr(nn, name):
        return name
    return dotted(cls) if TRUSTED.get(dotted(cls)) is cls else None


def is_layer_tree(value) -> bool:
    """True for a module made only of the standard layers above and `TRUSTED` modules
    (exact classes)."""
    name = _class_name(value)
    if name is None:
        return False
    children = list(nn.Module.named_children(value))
    if children and name != "Sequential" and name not in TRUSTED:
        return False
    return all(is_layer_tree(child) for _, child in children)


def describe(m: nn.Module) -> dict:
    """One level of a layer tree: class, mode, arguments, tensors, forward hooks left on it;
    children stay modules."""
    name = _class_name(m)
    config = {k: getattr(m, k) for k in LAYERS.get(name, ())}
    if name in _BIASED:
        config["bias"] = m.bias is not None
    return {"cls": name, "training": bool(m.training), "config": config,
            "params": {k: v for k, v in m._parameters.items() if v is not None},
            "buffers": {k: v for k, v in m._buffers.items() if v is not None},
            "children": [[k, c] for k, c in nn.Module.named_children(m)],
            "hooks": len(m._forward_hooks) + len(m._forward_pre_hooks)}


def require_standard(name: str) -> None:
    if name not in LAYERS and name not in TRUSTED:
        raise JudgeError(f"not a standard layer: {name[:80]!r}")


def rebuild(name: str, training, config, params, buffers, children, hooks=0) -> nn.Module:
    """The module `describe` described, from torch's own classes; malformed parts refused.

    The layer is made on the meta device, so its arguments allocate nothing; then every
    tensor it has must have arrived, with its shape, and only those tensors become its
    storage. A few bytes of arguments can never make the grader allocate gigabytes: what
    it holds is what was sent, and what may be sent is bounded (`wire.MAX_MESSAGE`).
    """
    require_standard(name)
    allowed = set(LAYERS.get(name, ())) | ({"bias"} if name in _BIASED else set())
    if not isinstance(config, dict) or set(config) != allowed:
        raise JudgeError(f"bad arguments for {name}")
    for k, v in config.items():
        limit = MAX_WIDTH if k in _WIDTHS else MAX_ARGUMENT
        if not _bounded(v, limit):
            raise JudgeError(f"{name}'s {k} is out of range (at most {limit:,d})")
    if not isinstance(children, list) or (
            children and name != "Sequential" and name not in TRUSTED):
        raise JudgeError(f"unexpected children in {name}")
    try:
        if name == "Sequential":
            m = nn.Sequential(OrderedDict((str(k), c) for k, c in children))
        elif name in TRUSTED:  # no constructor: its children and tensors are all data
            m = TRUSTED[name].__new__(TRUSTED[name])
            nn.Module.__init__(m)
            for k, c in children:
                m._modules[str(k)] = c
            m._parameters.update({k: None for k in params})
            m._buffers.update({k: None for k in buffers})
        else:
            with torch.device("meta"):
                m = getattr(nn, name)(**config)
    except (TypeError, ValueError, RuntimeError, OverflowError) as e:
        raise JudgeError(f"cannot rebuild {name}: {str(e)[:200]}") from None
    # the tensors as they were, even where a student resized a weight by hand
    for kind, tensors, store in (("params", params, m._parameters),
                                 ("buffers", buffers, m._buffers)):
        if not isinstance(tensors, dict) or not set(tensors) <= set(store):
            raise JudgeError(f"unexpected tensors in {name}")
        for k, t in tensors.items():
            if not isinstance(t, torch.Tensor):
                raise JudgeError(f"{name}.{k} is not a tensor")
        for k, made in store.items():
            if made is not None and k not in tensors:
                raise JudgeError(f"{name}.{k} is missing: every tensor of a layer travels")
        for k in list(store):
            t = tensors.get(k)
            store[k] = None if t is None else (
                nn.Parameter(t, t.is_floating_point()) if kind == "params" else t)
    m.training = bool(training)
    m._efflab_hooks = min(hooks, 100) if type(hooks) is int else 0  # left on it in the kernel
    return m


def sync(mine: nn.Module, theirs: nn.Module) -> None:
    """Make `mine` (the grader's) what `theirs` (read back from the kernel after a call)
    is, in place: same parameter objects where they exist, new tensors, mode, children,
    and a do-nothing hook for each forward hook the kernel's copy was left with."""
    mine.training = theirs.training
    for k in set(mine._parameters) | set(theirs._parameters):
        new, old = theirs._parameters.get(k), mine._parameters.get(k)
        if new is None or old is None:
            mine._parameters[k] = new
        else:
            old.data = new.data
            old.requires_grad_(new.requires_grad)
    for k in set(mine._buffers) | set(theirs._buffers):
        mine._buffers[k] = theirs._buffers.get(k)
    for k in list(mine._modules):
        if k not in theirs._modules:
            del mine._modules[k]
    for k, child in theirs._modules.items():
        old = mine._modules.get(k)
        if old is not None and type(old) is type(child):
            sync(old, child)
        else:
            mine._modules[k] = child
    for _ in range(getattr(theirs, "_efflab_hooks", 0) - len(mine._forward_hooks)):
        mine.register_forward_hook(lambda *a: None)


def parameter_objects(args) -> list[dict | None]:
    """Each module argument's parameters by name (None for other arguments)."""
    return [dict(a.named_parameters()) if isinstance(a, nn.Module) else None for a in args]


def replaced_parameters(before: list[dict | None], args) -> list[str]:
    """The parameters of module arguments (as `parameter_objects` saw them before a call)
    that the call replaced by other objects or removed: an optimizer made before the call
    would no longer train them."""
    now = parameter_objects(args)
    return sorted(name for b, n in zip(before, now, strict=True) if b is not None
                  for name, p in b.items() if (n or {}).get(name) is not p)


for _model in (DigitCNN, EarlyExitCNN):  # efflib's models that checks send and take back
    trusted_module(_model)
