"""Compile C from a notebook: a shared library to call through ctypes, or a program to run.

The compiler is clang as shipped by the `ziglang` wheel (`python -m ziglang cc`),
which `make lab` installs from the package registry, so a student on any OS
needs nothing else; a system `cc` is the fallback. Flags keep arithmetic exact:
-O3 without -ffast-math, and -ffp-contract=off so no multiply and add are fused
behind the source's back (a fused multiply-add rounds once, not twice).
Builds are cached by a hash of the source, the flags and the compiler, in
$EFFLAB_CC_CACHE or ~/.cache/efflab/cc; zig's own cache sits beside them (its
first build, of the C runtime, takes a few seconds).
"""

import ctypes
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from efflib import guarded

BASE_FLAGS = ("-O3", "-std=c11", "-ffp-contract=off", "-fno-fast-math", "-Wall")
KINDS = ("shared", "exe")


class CompileError(RuntimeError):
    """The compiler refused the source; the message is the compiler's own, with line numbers
    counted from the source's first line of C."""

    def _render_traceback_(self) -> list[str]:
        """What IPython shows for it: the compiler's first error, not Python's stack."""
        return [f"CompileError: {line}" if i == 0 else line
                for i, line in enumerate(str(self).splitlines()[:SHOWN])]


SHOWN = 10  # lines of a compile error shown in a notebook: the first error and its source


def first_error(said: str) -> list[str]:
    """The compiler's first error: its line, the source line and the caret (and the count
    of the others), without the notes and warnings around it."""
    lines = [ln for ln in said.splitlines() if ln.strip()]
    errors = [i for i, ln in enumerate(lines) if ": error: " in ln or ": fatal error: " in ln]
    if not errors:
        return lines[:SHOWN - 1]
    start = errors[0]
    end = next((i for i in range(start + 1, len(lines)) if re.match(r"\S+:\d+:\d+: ", lines[i])),
               len(lines))
    shown = lines[start:min(end, start + SHOWN - 2)]
    if len(errors) > 1:
        shown.append(f"({len(errors) - 1} more error{'s' if len(errors) > 2 else ''} after "
                     "this one)")
    return shown


def c_text(source: str) -> str:
    """The C as written in a notebook's r\"\"\"...\"\"\" string: the newline right after the
    quotes dropped, so that line 1 is the first line of C."""
    return source.removeprefix("\n")


def cache_dir() -> Path:
    root = os.environ.get("EFFLAB_CC_CACHE") or Path.home() / ".cache" / "efflab" / "cc"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def compiler() -> list[str]:
    """The C compiler's command: zig's clang when the ziglang wheel is installed, else cc."""
    if importlib.util.find_spec("ziglang") is not None:
        return [sys.executable, "-m", "ziglang", "cc"]
    for name in ("cc", "gcc", "clang"):
        if found := shutil.which(name):
            return [found]
    raise CompileError("no C compiler: install the ziglang package (pip install ziglang) "
                       "or a system C compiler")


def build(source: str, kind: str = "shared", flags: tuple[str, ...] = (),
          name: str = "kernel") -> Path:
    """Compile `source` into a shared library or an executable; return its path (cached)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not isinstance(source, str) or not source.strip():
        raise ValueError("source must be a non-empty string of C code")
    cmd = compiler()
    all_flags = (*BASE_FLAGS, *flags) + (("-shared", "-fPIC") if kind == "shared" else ())
    key = hashlib.sha256("\0".join([source, *all_flags, *cmd]).encode()).hexdigest()[:20]
    folder = cache_dir()
    suffix = ".so" if kind == "shared" else ".exe"
    out = folder / f"{name}-{key}{suffix}"
    if out.exists():
        return out
    src = folder / f"{name}-{key}.c"
    src.write_text(c_text(source))
    env = {**os.environ, "ZIG_GLOBAL_CACHE_DIR": str(folder / "zig-global"),
           "ZIG_LOCAL_CACHE_DIR": str(folder / "zig-local")}
    tmp = out.with_suffix(out.suffix + ".tmp")
    done = subprocess.run([*cmd, *all_flags, "-o", str(tmp), str(src), "-lm"],
                          capture_output=True, text=True, env=env, timeout=300)
    if done.returncode != 0:
        said = (done.stderr or done.stdout).replace(str(src), f"{name}.c")
        first, *rest = first_error(said) or ["(no message)"]
        raise CompileError("\n".join([f"the C compiler refused {name}.c: {first}", *rest]))
    os.replace(tmp, out)
    return out


CHECKED = ("-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=undefined",
           "-fno-sanitize-trap=undefined")  # a crash names its line; UB stops with a message


def load(source: str, flags: tuple[str, ...] = (), name: str = "kernel",
         checked: bool = False) -> guarded.Library:
    """Compile `source` as a shared library and load it; its functions are called as with
    ctypes (`lib.fn(...)`), each call in a child process (efflib.guarded), so that an
    endless loop stops on Interrupt and a crash raises NativeCrash instead of killing the
    kernel. `checked=True` builds with debug information and clang's undefined-behaviour
    checks, so that a crash or an overflow names the source line (slower code)."""
    path = build(source, "shared", (*flags, *(CHECKED if checked else ())), name)
    return guarded.Library(ctypes.CDLL(str(path)), path, name, checked, _guard())


def _guard() -> ctypes.CDLL | None:
    """The guard's fault handler, compiled once; None where it cannot be built."""
    if "lib" not in _GUARD:
        try:
            lib = ctypes.CDLL(str(build(guarded.GUARD_C, name="efflab_guard")))
            lib.efflab_guard.argtypes = [ctypes.c_void_p]
        except (CompileError, OSError):
            lib = None
        _GUARD["lib"] = lib
    return _GUARD["lib"]


_GUARD: dict = {}


def pointer(t, ctype=ctypes.c_float):
    """A C pointer to a contiguous tensor's or array's data (keep the tensor alive); a
    guarded call copies the array to its child and back by it."""
    data = t.data_ptr() if hasattr(t, "data_ptr") else t.ctypes.data
    size = t.numel() * t.element_size() if hasattr(t, "data_ptr") else t.nbytes
    ptr = ctypes.cast(data, ctypes.POINTER(ctype))
    ptr._efflab_buffer = (data, size)
    return ptr
