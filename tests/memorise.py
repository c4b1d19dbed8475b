"""What a memorising student's notebook runs (tests/lookup.py puts this file in a cell).

`_memorise(check, f, g, ...)` runs the check on f, g, ... in this process, visible and
hidden, records every case it draws, and returns lookups: right on those cases, a little
off on any other. In a notebook the lookup is a `def` calling `_lookup` with the keys
`_seen` recorded, so that the grader's clean room, which runs definitions only, grades
the lookup and not the honest function it wraps. With hidden cases drawn from a fixed
seed this passed every hidden check; drawn from the grader's key, a lookup made at home
misses them.
"""

import hashlib as _hashlib
import types as _types

import torch as _torch

_MISSED = []  # (inputs, honest answer) of each call a lookup got wrong: read by the tests
_INSIDE = []  # the lookups running now


def _key(args, kwargs):
    digest = _hashlib.sha256()

    def add(v):
        if isinstance(v, _torch.Tensor):
            digest.update(repr((v.dtype, tuple(v.shape))).encode())
            digest.update(repr(v.detach().tolist()).encode())  # no torch op a watch sees
        elif isinstance(v, _torch.nn.Module):
            digest.update(repr(v).encode())  # its layers, whatever their weights
        elif isinstance(v, list | tuple):
            digest.update(b"(")
            for x in v:
                add(x)
            digest.update(b")")
        elif isinstance(v, dict):
            digest.update(b"{")
            for k in sorted(v, key=repr):
                add(k)
                add(v[k])
            digest.update(b"}")
        else:
            digest.update(repr(v).encode())
    add(list(args))
    add(kwargs)
    return digest.hexdigest()


def _wrong(value):
    """Near `value` but not equal to it (unchanged where there is no such thing)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 1.1 + 0.1
    if isinstance(value, _torch.Tensor):
        return ~value if value.dtype == _torch.bool else value + 1
    if isinstance(value, bytes):  # a file's contents (an ONNX model): no longer that file
        return bytes(reversed(value))
    if isinstance(value, tuple | list):
        return type(value)(_wrong(v) for v in value)
    if isinstance(value, dict):
        return {k: _wrong(v) for k, v in value.items()}
    return value


def _seen(check, *args, **kwargs):
    """Run `check` on `args`, visible and hidden; for each plain function among them, the
    keys of the cases it drew (a list: plain data, which the grader's clean room copies),
    None for the other arguments."""
    seen = [set() if isinstance(a, _types.FunctionType) else None for a in args]

    def recording(fn, keys):
        def run(*a, **k):
            keys.add(_key(a, k))
            _INSIDE.append(fn)
            try:
                return fn(*a, **k)
            finally:
                _INSIDE.pop()
        return run

    watched = [a if keys is None else recording(a, keys)
               for a, keys in zip(args, seen, strict=True)]
    for hidden in (False, True):
        try:
            check(*watched, hidden=hidden, **kwargs)
        except Exception:  # noqa: BLE001, S110 - a lazy student ignores what failed
            pass
    return [None if keys is None else sorted(keys) for keys in seen]


def _lookup(seen, fn, a, k):
    """`fn`'s answer where its case is among `seen`, a little off anywhere else."""
    if _INSIDE:  # one answer calling another (scale_zero_point calls int_range):
        return fn(*a, **k)  # the student's own code, as written
    key = _key(a, k)  # before the call: an answer may change its inputs in place
    _INSIDE.append(fn)
    try:
        out = fn(*a, **k)
    finally:
        _INSIDE.pop()
    if key in seen:
        return out
    _MISSED.append((a, out))
    return _wrong(out)


def _memorise(check, *args, **kwargs):
    """Every plain function among `args`, replaced by a lookup of the cases `check` drew."""
    def lookup(fn, keys):
        def run(*a, **k):
            return _lookup(keys, fn, a, k)
        return run
    return [a if keys is None else lookup(a, set(keys))
            for a, keys in zip(args, _seen(check, *args, **kwargs),
                                                     strict=True)]
