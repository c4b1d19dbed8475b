"""The kernel side of judging: a request loop that answers the grader with plain data.

The grader starts it with one cell (`request_loop_code`) per judged test cell;
it calls the student's functions under the watch the grader sends and replies
with their results encoded by `judging.wire`. It decides nothing.
"""

import socket

import numpy as np
import torch
import torch.nn as nn

from autograde.judging import graphs, traces
from autograde.judging.layers import (
    is_layer_tree,
    parameter_objects,
    replaced_parameters,
    trust_names,
)
from autograde.judging.watch import from_spec
from autograde.judging.wire import decode, encode, receive, send

_REFS: dict[int, object] = {}


def request_loop_code(socket_path: str, module: str = __name__) -> str:
    """The cell the grader runs in the kernel to start `module`'s `serve` (this module's, or
    the clean room's) on `socket_path`."""
    return (f"__import__({module!r}, fromlist=['serve']).{serve.__name__}"
            f"({socket_path!r})")


def serve(path: str, handler=None) -> None:
    """In the kernel: answer the grader's requests until it says done (with `handler`,
    `answer` by default)."""
    handler = handler or answer
    namespace = get_ipython().user_ns  # noqa: F821 - defined in the kernel
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    try:
        while True:
            try:
                request = receive(sock)
            except KeyboardInterrupt:
                continue
            if request.get("op") == "done":
                return
            trust_names(request.get("trusted"))
            reply = handler(request, namespace)
            try:
                send(sock, reply)
            except (TypeError, ValueError) as e:
                send(sock, {"error": {"type": "JudgeError", "message": f"no answer: {e}"}})
    finally:
        sock.close()


def _after(arg):
    """A module argument as the call left it (changed in place?), for the grader to copy;
    None for anything else, or a module that can no longer travel."""
    return encode(arg) if is_layer_tree(arg) else None


def answer(req: dict, namespace: dict) -> dict:
    """The reply to one request, run against the notebook's `namespace`."""
    try:
        if req["op"] == "get":
            if req["name"] not in namespace:
                raise NameError(f"name '{req['name']}' is not defined")
            return {"value": encode(namespace[req["name"]], _REFS)}
        if req["op"] == "call":
            fn = _REFS[int(req["ref"])]
            args, kwargs = decode(req["args"]), decode(req["kwargs"])
            before = parameter_objects(args)
            try:
                with from_spec(req.get("watch")) as recorder:
                    value = fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - the modules as it left them, all the same
                return {"error": {"type": type(e).__name__, "message": str(e)[:2000]},
                        "after": [_after(a) for a in args],
                        "replaced": replaced_parameters(before, args)}
            called = sorted(recorder.called) if recorder is not None else []
            return {"value": encode(value, _REFS), "called": called,
                    "after": [_after(a) for a in args],
                    "replaced": replaced_parameters(before, args)}
        if req["op"] == "call_arrays":  # a compiled kernel: NumPy arrays in, changed in place
            fn = _REFS[int(req["ref"])]
            arrays = [a.numpy().copy() if isinstance(a, torch.Tensor) else a
                      for a in decode(req["args"])]
            with from_spec(req.get("watch")):
                fn(*arrays)
            return {"value": encode([torch.from_numpy(a) if isinstance(a, np.ndarray) else None
                                     for a in arrays])}
        if req["op"] == "trace":  # one call, as the ATen operations it ran
            fn = _REFS[int(req["ref"])]
            args, kwargs = decode(req["args"]), decode(req["kwargs"])
            with from_spec(req.get("watch")) as recorder:
                desc = traces.describe(fn, tuple(args), kwargs)
            called = sorted(recorder.called) if recorder is not None else []
            return {"value": encode(desc), "called": called}
        if req["op"] == "export":  # the student's own module, as its graph
            module = _REFS[int(req["ref"])]
            if not isinstance(module, nn.Module):
                raise TypeError(f"expected an nn.Module, got {type(module).__name__}")
            return {"value": encode(graphs.describe(module, tuple(decode(req["args"]))))}
        raise ValueError(f"unknown request {req['op']!r}")
    except BaseException as e:  # noqa: BLE001 - KeyboardInterrupt (a timeout) too
        return {"error": {"type": type(e).__name__, "message": str(e)[:2000]}}
