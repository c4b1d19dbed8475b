"""Judging test cells outside the student's kernel: checks decide, the kernel only answers.

A check run inside the student's kernel can be fooled by anything that kernel runs
(a patched `showtraceback`, a rewritten `run_cell`, ctypes). When grading, a judged
test cell therefore runs in the grader's own process. Names the cell reads from
the notebook arrive as plain data (ints, floats, strings, tuples, lists, dicts,
tensors) or, for functions, as `Remote` handles: calling one asks the kernel to
call the student's function and send back plain data. Every comparison and
every verdict happens here, on values that cannot carry overridden methods.

Wire format: one JSON document per request and per answer; tensors travel as
dtype, shape and base64 bytes. Nothing from the kernel is ever unpickled.
"""

import ast
import base64
import builtins
import contextlib
import io
import json
import re
from collections.abc import Callable

import torch

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
    if value is None or type(value) in (bool, str):
        return value
    if isinstance(value, bool):
        return bool(value)
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
        with torch._C.DisableTorchFunctionSubclass():
            t = value.as_subclass(torch.Tensor).detach()
            if t.is_sparse or t.layout != torch.strided:
                t = t.to_dense()
            t = t.cpu().contiguous()
            if t.dtype == torch.bfloat16 or str(t.dtype).startswith("torch.float8"):
                t = t.float()
            return {"__t": "tensor", "dtype": str(t.dtype).removeprefix("torch."),
                    "shape": list(t.shape),
                    "data": base64.b64encode(t.numpy().tobytes()).decode()}
    if isinstance(value, torch.dtype):
        return {"__t": "dtype", "v": str(value).removeprefix("torch.")}
    if isinstance(value, tuple | list):
        items = tuple.__iter__(value) if isinstance(value, tuple) else list.__iter__(value)
        items = list(items)
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
        count = 1
        for s in shape:
            count *= s
        if count * torch.empty((), dtype=dtype).element_size() != len(data):
            raise JudgeError("a tensor's bytes do not match its shape")
        if not data:
            return torch.empty(shape, dtype=dtype)
        return torch.frombuffer(data, dtype=dtype).reshape(shape).clone()
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


# --- the trusted side -----------------------------------------------------------------

class Remote:
    """A function (or other object) that lives in the student's kernel."""

    def __init__(self, session: "Session", ref: int, type_name: str, is_callable: bool):
        self._session, self._ref = session, ref
        self._type, self._callable = type_name, is_callable

    def __repr__(self) -> str:
        return f"<student's {self._type}>"

    def __call__(self, *args, **kwargs):
        if not self._callable:
            raise TypeError(f"'{self._type}' object is not callable")
        return self._session.call(self._ref, args, kwargs)

    def __getattr__(self, name):  # checks that need a live object run in the kernel
        raise TypeError(f"the grader cannot use .{name} of the student's {self._type}; "
                        "this check must run in the kernel (mark it kernel_only)")


def _student_error(name: str, message: str) -> BaseException:
    """The exception the student's code raised, rebuilt from its name and message."""
    from autograde.checks._core import CheckFailed
    from efflib._guard import GradedAnswerError

    known = {"CheckFailed": CheckFailed, "GradedAnswerError": GradedAnswerError}
    cls = known.get(name) or getattr(builtins, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        safe = re.sub(r"\W", "_", name)[:60] or "Error"
        cls = type(safe, (Exception,), {})
    return cls(message)


class Session:
    """One judged notebook: `ask(request) -> answer` reaches the kernel."""

    def __init__(self, ask: Callable[[dict], dict]):
        self.ask = ask

    def _ref(self, ref: int, type_name: str, is_callable: bool) -> Remote:
        return Remote(self, ref, type_name, is_callable)

    def _answer(self, request: dict):
        answer = self.ask(request)
        if not isinstance(answer, dict):
            raise JudgeError("no valid answer from the kernel")
        if "error" in answer:
            err = answer["error"] if isinstance(answer["error"], dict) else {}
            raise _student_error(str(err.get("type", "Error"))[:80],
                                 str(err.get("message", ""))[:2000])
        return answer

    def get(self, name: str):
        answer = self._answer({"op": "get", "name": name})
        return decode(answer.get("value"), self._ref)

    def call(self, ref: int, args, kwargs):
        from autograde.checks import _core

        recorder = _core.active_recorder()
        spec = recorder.spec() if recorder is not None else None
        answer = self._answer({"op": "call", "ref": ref, "args": encode(list(args)),
                               "kwargs": encode(dict(kwargs)), "watch": spec})
        if recorder is not None:
            called = answer.get("called", [])
            recorder.called.update(str(c)[:100] for c in called if isinstance(c, str))
        return decode(answer.get("value"), self._ref)


def judged_checks(source: str) -> list[str] | None:
    """The autograde check functions a test cell calls, or None if it must run in the
    kernel (a kernel-only check, or code other than imports and check calls)."""
    import importlib

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    checks: dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("autograde."):
            module = importlib.import_module(node.module)
            for alias in node.names:
                checks[alias.asname or alias.name] = getattr(module, alias.name, None)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            return None  # anything else imported: not a plain check cell
    if not checks or any(getattr(fn, "kernel_only", False) for fn in checks.values()):
        return None
    return sorted(checks)


def _free_names(tree: ast.AST) -> list[str]:
    """Names a cell reads but does not bind. Builtins are among them: a notebook that
    defines its own `pow` must be checked as it would be in the kernel."""
    bound, read = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Store | ast.Del):
                bound.add(node.id)
            elif node.id not in read:
                read.append(node.id)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.FunctionDef | ast.Lambda | ast.arg):
            if isinstance(node, ast.arg):
                bound.add(node.arg)
            elif isinstance(node, ast.FunctionDef):
                bound.add(node.name)
    return [n for n in read if n not in bound]


def judge_cell(source: str, session: Session) -> tuple[str, BaseException | None]:
    """Run a test cell here; names from the notebook come from the kernel.
    Returns what it printed and the exception that failed it (None: passed)."""
    tree = ast.parse(source)
    namespace: dict = {"__name__": "__efflab_test__"}
    out = io.StringIO()
    try:
        for name in _free_names(tree):
            try:
                namespace[name] = session.get(name)
            except NameError:
                pass  # the cell raises NameError itself when it reads it
        with contextlib.redirect_stdout(out), judging():
            exec(compile(tree, "<test cell>", "exec"), namespace)  # noqa: S102 - our cell
    except Exception as e:  # noqa: BLE001 - a failed test, whatever the failure
        return out.getvalue(), e
    return out.getvalue(), None


_JUDGING = [False]


@contextlib.contextmanager
def judging():
    _JUDGING.append(True)
    try:
        yield
    finally:
        _JUDGING.pop()


def is_judging() -> bool:
    return _JUDGING[-1]


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


# --- the kernel side --------------------------------------------------------------------

_REFS: dict[int, object] = {}


def serve(path: str) -> None:
    """In the kernel: answer the grader's requests until it says done."""
    import socket

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
            reply = answer(request, namespace)
            try:
                send(sock, reply)
            except (TypeError, ValueError) as e:
                send(sock, {"error": {"type": "JudgeError", "message": f"no answer: {e}"}})
    finally:
        sock.close()


def answer(req: dict, namespace: dict) -> dict:
    """The reply to one request, run against the notebook's `namespace`."""
    try:
        if req["op"] == "get":
            if req["name"] not in namespace:
                raise NameError(f"name '{req['name']}' is not defined")
            return {"value": encode(namespace[req["name"]], _REFS)}
        if req["op"] == "call":
            from autograde.checks._core import watch

            fn = _REFS[int(req["ref"])]
            args, kwargs = decode(req["args"]), decode(req["kwargs"])
            spec = req.get("watch")
            if spec is None:
                return {"value": encode(fn(*args, **kwargs), _REFS)}
            forbidden = [f if isinstance(f, str) else _resolve(f) for f in spec["forbidden"]]
            with watch(forbidden, spec["topics"], spec["why"]) as recorder:
                value = fn(*args, **kwargs)
            return {"value": encode(value, _REFS), "called": sorted(recorder.called)}
        raise ValueError(f"unknown request {req['op']!r}")
    except BaseException as e:  # noqa: BLE001 - KeyboardInterrupt (a timeout) too
        return {"error": {"type": type(e).__name__, "message": str(e)[:2000]}}


def _resolve(path: list[str]):
    import importlib

    obj = importlib.import_module(path[0])
    for part in path[1].split("."):
        obj = getattr(obj, part)
    return obj
