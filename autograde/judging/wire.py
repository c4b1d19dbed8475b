"""The wire format: plain data as JSON, one message per length-prefixed frame.

Tensors travel as dtype, shape and base64 bytes; bytes (a file's contents, such
as an ONNX model) as base64; a tree of standard torch.nn layers as its description
(`judging.layers`); other objects as refs (an id the kernel keeps). Nothing
received is ever unpickled, and every value decoded is a plain Python or torch
value, so it cannot carry overridden methods (an always-true `__eq__`, a tensor
subclass).
"""

import base64
import json
import math
from collections.abc import Callable

import numpy as np
import torch

from autograde.judging import layers
from autograde.judging.values import JudgeError, as_plain_tensor

MAX_ITEMS = 100_000  # elements of a list/tuple/dict answer
MAX_DEPTH = 20
MAX_MESSAGE = 256_000_000
MAX_MODULES = 10_000  # layers in one answer: each costs the grader a Python object


# --- plain data <-> JSON (both sides) ------------------------------------------------

def encode(value, refs: dict | None = None, depth: int = 0):
    """A JSON-able form of `value`; objects that are not plain data become refs."""
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
    if isinstance(value, bytes | bytearray):  # a file's contents (an ONNX model, say)
        data = bytes.__bytes__(value) if isinstance(value, bytes) else bytes(value)
        return {"__t": "bytes", "v": base64.b64encode(data).decode()}
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return encode(value.item(), refs, depth)
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return encode(torch.from_numpy(np.ascontiguousarray(value)), refs, depth)
    if isinstance(value, torch.Tensor):
        return _encode_tensor(value)
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
    if layers.is_layer_tree(value):
        parts = layers.describe(value)
        return {"__t": "module", "cls": parts["cls"], "training": parts["training"],
                "hooks": parts["hooks"], **{k: encode(parts[k], None, depth + 1)
                                            for k in ("config", "params", "buffers", "children")}}
    if refs is None:
        raise TypeError(f"{type(value).__name__} is not plain data")
    refs[id(value)] = value
    return {"__t": "ref", "id": id(value), "type": type(value).__name__[:80],
            "callable": callable(value)}


def _encode_tensor(value: torch.Tensor) -> dict:
    t = as_plain_tensor(value, "a tensor")
    if t.layout != torch.strided:
        t = t.to_dense()
    t = t.contiguous()
    if t.dtype == torch.bfloat16 or str(t.dtype).startswith("torch.float8"):
        t = t.float()
    return {"__t": "tensor", "dtype": str(t.dtype).removeprefix("torch."),
            "shape": list(t.shape), "data": base64.b64encode(t.numpy().tobytes()).decode()}


def decode(obj, make_ref: Callable | None = None, depth: int = 0, _made: list | None = None):
    """Plain Python and torch values from `encode`'s form; anything else is refused."""
    made = [0] if _made is None else _made  # modules rebuilt so far in this answer
    if depth > MAX_DEPTH:
        raise JudgeError("nested too deep")
    if obj is None or type(obj) in (bool, str, int, float):
        return obj
    if type(obj) is list:
        if len(obj) > MAX_ITEMS:
            raise JudgeError("too many items")
        return [decode(v, make_ref, depth + 1, made) for v in obj]
    if type(obj) is not dict or type(obj.get("__t")) is not str:
        raise JudgeError(f"not a valid value: {type(obj).__name__}")
    kind = obj["__t"]
    if kind == "tuple":
        return tuple(decode(obj["v"], make_ref, depth, made))
    if kind == "dict":
        if type(obj["v"]) is not list or len(obj["v"]) > MAX_ITEMS:
            raise JudgeError("too many items")
        return {_key(decode(k, make_ref, depth + 1, made)): decode(v, make_ref, depth + 1, made)
                for k, v in obj["v"]}
    if kind == "dtype":
        dtype = getattr(torch, str(obj["v"]), None)
        if not isinstance(dtype, torch.dtype):
            raise JudgeError(f"unknown dtype {obj['v']!r}")
        return dtype
    if kind == "tensor":
        return _decode_tensor(obj)
    if kind == "bytes":
        try:
            return base64.b64decode(str(obj["v"]), validate=True)
        except ValueError:
            raise JudgeError("bytes that are not base64") from None
    if kind == "module":
        name = str(obj.get("cls"))
        layers.require_standard(name)
        made[0] += 1
        if made[0] > MAX_MODULES:
            raise JudgeError(f"more than {MAX_MODULES:,d} layers in one answer")
        parts = {k: decode(obj.get(k), None, depth + 1, made)
                 for k in ("config", "params", "buffers", "children")}
        return layers.rebuild(name, obj.get("training"), **parts, hooks=obj.get("hooks", 0))
    if kind == "ref" and make_ref is not None:
        return make_ref(int(obj["id"]), str(obj.get("type", "object"))[:80],
                        bool(obj.get("callable")))
    raise JudgeError(f"not a valid value: {kind!r}")


def _decode_tensor(obj: dict) -> torch.Tensor:
    dtype = decode({"__t": "dtype", "v": obj["dtype"]})
    shape = [int(s) for s in obj["shape"]]
    data = bytearray(base64.b64decode(str(obj["data"]), validate=True))
    if math.prod(shape) * dtype.itemsize != len(data):
        raise JudgeError("a tensor's bytes do not match its shape")
    if not data:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(data, dtype=dtype).reshape(shape).clone()


def _key(k):
    try:
        hash(k)
    except TypeError:
        raise JudgeError("a dict key that cannot be hashed") from None
    return k


# --- frames: length-prefixed JSON over a socket -----------------------------------------

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
