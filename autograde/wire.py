"""The grader's wire format: plain data as JSON, one message per length-prefixed frame.

Tensors travel as dtype, shape and base64 bytes; a tree of standard torch.nn
layers (exactly those classes, no subclasses) as class names, constructor
arguments, parameters and buffers, rebuilt on arrival from torch's own classes;
other objects travel as refs (an id the kernel keeps). Nothing received is ever unpickled, and
every value decoded is a plain Python or torch value, so it cannot carry
overridden methods (an always-true `__eq__`, a tensor subclass).
"""

import base64
import json
import math
from collections.abc import Callable

import torch

from autograde.checks._core import as_plain_tensor

MAX_ITEMS = 100_000  # elements of a list/tuple/dict answer
MAX_DEPTH = 20


class JudgeError(RuntimeError):
    """The kernel's answer is not a valid reply (malformed, too big, or missing)."""


# --- plain data <-> JSON (both sides) ------------------------------------------------

def encode(value, refs: dict | None = None, depth: int = 0):
    """A JSON-able form of `value`; objects that are not plain data become refs."""
    import numpy as np

    if depth > MAX_DEPTH:
        raise ValueError("nested too deep")
    if value is None or type(value) in (bool, str):  # bool cannot be subclassed
        return value
    if isinstance(value, int):  # subclasses lose their overrides here
        return int.__index__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return encode(value.item(), refs, depth)
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return encode(torch.from_numpy(np.ascontiguousarray(value)), refs, depth)
    if isinstance(value, torch.Tensor):
        t = as_plain_tensor(value, "a tensor")
        if t.layout != torch.strided:
            t = t.to_dense()
        t = t.contiguous()
        if t.dtype == torch.bfloat16 or str(t.dtype).startswith("torch.float8"):
            t = t.float()
        return {"__t": "tensor", "dtype": str(t.dtype).removeprefix("torch."),
                "shape": list(t.shape), "data": base64.b64encode(t.numpy().tobytes()).decode()}
    if isinstance(value, torch.dtype):
        return {"__t": "dtype", "v": str(value).removeprefix("torch.")}
    if isinstance(value, tuple | list):
        items = list(tuple.__iter__(value) if isinstance(value, tuple) else list.__iter__(value))
        if len(items) > MAX_ITEMS:
            raise ValueError(f"more than {MAX_ITEMS} items")
        enc = [encode(v, refs, depth + 1) for v in items]
        return {"__t": "tuple", "v": enc} if isinstance(value, tuple) else enc
    if isinstance(value, dict):
        pairs = list(dict.items(value))
        if len(pairs) > MAX_ITEMS:
            raise ValueError(f"more than {MAX_ITEMS} items")
        return {"__t": "dict", "v": [[encode(k, refs, depth + 1), encode(v, refs, depth + 1)]
                                     for k, v in pairs]}
    if is_layer_tree(value):
        return _encode_layers(value, depth)
    if refs is None:
        raise TypeError(f"{type(value).__name__} is not plain data")
    refs[id(value)] = value
    return {"__t": "ref", "id": id(value), "type": type(value).__name__[:80],
            "callable": callable(value)}


def decode(obj, make_ref: Callable | None = None, depth: int = 0):
    """Plain Python and torch values from `encode`'s form; anything else is refused."""
    if depth > MAX_DEPTH:
        raise JudgeError("nested too deep")
    if obj is None or type(obj) in (bool, str, int, float):
        return obj
    if type(obj) is list:
        if len(obj) > MAX_ITEMS:
            raise JudgeError("too many items")
        return [decode(v, make_ref, depth + 1) for v in obj]
    if type(obj) is not dict or type(obj.get("__t")) is not str:
        raise JudgeError(f"not a valid value: {type(obj).__name__}")
    kind = obj["__t"]
    if kind == "tuple":
        return tuple(decode(obj["v"], make_ref, depth))
    if kind == "dict":
        return {_key(decode(k, make_ref, depth + 1)): decode(v, make_ref, depth + 1)
                for k, v in obj["v"]}
    if kind == "dtype":
        dtype = getattr(torch, str(obj["v"]), None)
        if not isinstance(dtype, torch.dtype):
            raise JudgeError(f"unknown dtype {obj['v']!r}")
        return dtype
    if kind == "tensor":
        dtype = decode({"__t": "dtype", "v": obj["dtype"]})
        shape = [int(s) for s in obj["shape"]]
        data = bytearray(base64.b64decode(str(obj["data"]), validate=True))
        if math.prod(shape) * dtype.itemsize != len(data):
            raise JudgeError("a tensor's bytes do not match its shape")
        if not data:
            return torch.empty(shape, dtype=dtype)
        return torch.frombuffer(data, dtype=dtype).reshape(shape).clone()
    if kind == "module":
        return _decode_layers(obj, depth)
    if kind == "ref" and make_ref is not None:
        return make_ref(int(obj["id"]), str(obj.get("type", "object"))[:80],
                        bool(obj.get("callable")))
    raise JudgeError(f"not a valid value: {kind!r}")


def _key(k):
    try:
        hash(k)
    except TypeError:
        raise JudgeError("a dict key that cannot be hashed") from None
    return k


# --- standard torch.nn layers as data -----------------------------------------------

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
}
_BIASED = ("Conv1d", "Conv2d", "Linear")


def is_layer_tree(value) -> bool:
    """True for a module made only of the standard layers above (exact classes)."""
    name = type(value).__name__
    if name not in LAYERS or type(value) is not getattr(torch.nn, name):
        return False
    children = list(torch.nn.Module.named_children(value))
    if children and name != "Sequential":
        return False
    return all(is_layer_tree(child) for _, child in children)


def _encode_layers(m, depth: int) -> dict:
    name = type(m).__name__
    config = {k: getattr(m, k) for k in LAYERS[name]}
    if name in _BIASED:
        config["bias"] = m.bias is not None
    tensors = {k: v for k, v in m._parameters.items() if v is not None}
    return {"__t": "module", "cls": name, "training": bool(m.training),
            "config": encode(config, None, depth + 1),
            "params": encode(tensors, None, depth + 1),
            "buffers": encode({k: v for k, v in m._buffers.items() if v is not None}, None,
                              depth + 1),
            "children": [[str(k), _encode_layers(c, depth + 1)]
                         for k, c in torch.nn.Module.named_children(m)]}


def _decode_layers(obj: dict, depth: int) -> torch.nn.Module:
    from collections import OrderedDict

    name = str(obj.get("cls"))
    if name not in LAYERS or depth > MAX_DEPTH:
        raise JudgeError(f"not a standard layer: {name[:80]!r}")
    config = decode(obj["config"], None, depth + 1)
    allowed = set(LAYERS[name]) | ({"bias"} if name in _BIASED else set())
    if not isinstance(config, dict) or set(config) != allowed:
        raise JudgeError(f"bad arguments for {name}")
    try:
        if name == "Sequential":
            m = torch.nn.Sequential(OrderedDict(
                (str(k), _decode_layers(c, depth + 1)) for k, c in obj["children"]))
        else:
            m = getattr(torch.nn, name)(**config)
    except (TypeError, ValueError, RuntimeError) as e:
        raise JudgeError(f"cannot rebuild {name}: {e}") from None
    # the tensors as they were, even where a student resized a weight by hand
    for kind, store in (("params", m._parameters), ("buffers", m._buffers)):
        tensors = decode(obj[kind], None, depth + 1)
        if not isinstance(tensors, dict) or not set(tensors) <= set(store):
            raise JudgeError(f"unexpected tensors in {name}")
        for k, t in tensors.items():
            if not isinstance(t, torch.Tensor):
                raise JudgeError(f"{name}.{k} is not a tensor")
            store[k] = torch.nn.Parameter(t, t.is_floating_point()) if kind == "params" else t
        for k in set(store) - set(tensors):
            store[k] = None
    m.training = bool(obj.get("training"))
    return m


# --- the channel: length-prefixed JSON over a Unix socket -----------------------------

MAX_MESSAGE = 256_000_000


def send(sock, message: dict) -> None:
    data = json.dumps(message).encode()
    sock.sendall(len(data).to_bytes(8, "big") + data)


def receive(sock) -> dict:
    size = int.from_bytes(_exactly(sock, 8), "big")
    if size > MAX_MESSAGE:
        raise JudgeError(f"an answer of {size:,d} bytes is too big")
    try:
        message = json.loads(_exactly(sock, size))
    except ValueError:
        raise JudgeError("an answer that is not JSON") from None
    if not isinstance(message, dict):
        raise JudgeError("an answer that is not a JSON object")
    return message


def _exactly(sock, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise JudgeError("the kernel closed the channel")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
