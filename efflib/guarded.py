"""C called from a notebook without risking the kernel: each call runs in a forked child.

A student's C can loop forever or write past an array. Called in the kernel, the first
ignores Interrupt and the second kills the kernel (or quietly corrupts it). Here each
call of a function of a `cc.load`ed library runs in a child process forked for it:

- the arrays passed with `cc.pointer` are copied into shared pages, each placed right
  before an inaccessible page, so a write past the end faults at once; they are copied
  back only when the call returns (a crashed or stopped call changes nothing);
- Interrupt kills the child within a tenth of a second (KeyboardInterrupt);
- a crash (segmentation fault, bus error, abort) becomes `NativeCrash`, naming the
  function, the array and element it went past, and the source line where the build
  has debug information and `addr2line` or `llvm-symbolizer` is on the machine;
- what the C prints comes back into the notebook;
- the time inside the C function is measured in the child; `overhead()` is the time
  the guard itself took, which `efflib.loops.timed` leaves out of what it measures.

Where there is no fork (Windows), calls run in the kernel as plain ctypes calls.
"""

import ctypes
import mmap
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PAGE = mmap.PAGESIZE
HEADER = struct.Struct("<qqqqdqd")  # signal, fault address, pc, kind of result (0 None,
#                                      1 int, 2 float), seconds inside, int and float result
GUARD_C = r"""
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>
static volatile int64_t *info;
static char alt[1 << 16];
static void on_fault(int sig, siginfo_t *si, void *ctx) {
    info[0] = sig;
    info[1] = (int64_t)(uintptr_t)si->si_addr;
#if defined(__linux__) && defined(__x86_64__)
    info[2] = (int64_t)((ucontext_t *)ctx)->uc_mcontext.gregs[REG_RIP];
#elif defined(__linux__) && defined(__aarch64__)
    info[2] = (int64_t)((ucontext_t *)ctx)->uc_mcontext.pc;
#endif
    _exit(128 + sig);
}
void efflab_guard(int64_t *shared) {
    stack_t ss;
    struct sigaction sa;
    info = shared;
    memset(&ss, 0, sizeof ss);
    ss.ss_sp = alt;
    ss.ss_size = sizeof alt;
    sigaltstack(&ss, 0);
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGSEGV, &sa, 0);
    sigaction(SIGBUS, &sa, 0);
    sigaction(SIGFPE, &sa, 0);
    sigaction(SIGILL, &sa, 0);
}
"""
SIGNALS = {signal.SIGSEGV: "a segmentation fault (it read or wrote memory it does not own)",
           signal.SIGBUS: "a bus error (a misaligned or unmapped access)",
           signal.SIGFPE: "an arithmetic error (an integer division by zero?)",
           signal.SIGILL: "an illegal instruction (a trap of the checked build?)",
           signal.SIGABRT: "an abort (a check of the checked build?)"}
_overhead = threading.local()
FORKS = hasattr(os, "fork")  # elsewhere (Windows) a call runs in the kernel, unguarded
_libc = ctypes.CDLL(None, use_errno=True) if FORKS else None
if FORKS:
    _libc.mmap.restype = ctypes.c_void_p
    _libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                           ctypes.c_int, ctypes.c_long]
    _libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    _libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


class NativeCrash(RuntimeError):
    """A C function crashed in its child process; the kernel and its arrays are intact."""

    def _render_traceback_(self) -> list[str]:
        return [f"NativeCrash: {line}" if i == 0 else line
                for i, line in enumerate(str(self).splitlines())]


def overhead() -> float:
    """Seconds this thread spent in the guard, outside the C functions themselves."""
    return getattr(_overhead, "seconds", 0.0)


def buffer_of(ptr) -> tuple[int, int] | None:
    """(address, bytes) of an array passed with cc.pointer, else None."""
    return getattr(ptr, "_efflab_buffer", None)


class Library:
    """A loaded C library whose functions run guarded (`lib.fn(...)`, as with ctypes)."""

    def __init__(self, cdll: ctypes.CDLL, path: Path, name: str, debug: bool = False,
                 guard: ctypes.CDLL | None = None):
        self._cdll, self._path, self._name, self._debug = cdll, path, name, debug
        self._guard, self._functions = guard, {}

    def __getattr__(self, name: str) -> "Function":
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._functions:
            self._functions[name] = Function(self, name, getattr(self._cdll, name))
        return self._functions[name]

    def __getitem__(self, name: str) -> "Function":
        return self.__getattr__(name)


class Function:
    """One C function of a Library; argtypes, restype and errcheck go to ctypes' own."""

    def __init__(self, lib: Library, name: str, raw):
        self.__dict__.update(_lib=lib, _name=name, _raw=raw, seconds=0.0)

    def __setattr__(self, key, value):
        setattr(self._raw, key, value)

    def __getattr__(self, key):
        return getattr(self._raw, key)

    def __call__(self, *args):
        if not FORKS:
            return self._raw(*args)
        start = time.perf_counter()
        self.__dict__["seconds"] = 0.0
        try:
            return _call_in_child(self, args)
        finally:
            _overhead.seconds = overhead() + time.perf_counter() - start - self.seconds


def _slots(args) -> tuple[list, int]:
    """Where each array argument goes in the shared mapping: (index, address, bytes,
    offset of its data, pages); data ends right before a guard page (a write past the end
    faults). An array passed twice (in place) gets one slot, as in the kernel."""
    slots, offset, placed = [], PAGE, {}  # page 0: the header
    for i, arg in enumerate(args):
        found = buffer_of(arg)
        if found is None:
            continue
        if found in placed:
            slots.append((i, *placed[found]))
            continue
        addr, size = found
        pages = max(1, -(-size // PAGE))
        offset += PAGE  # a guard page before
        placed[found] = (addr, size, offset + pages * PAGE - size, pages)
        slots.append((i, *placed[found]))
        offset += pages * PAGE
    return slots, offset + PAGE  # and one after the last


def _unknown_memory(args) -> int | None:
    """The first argument (1-based) that points at memory the guard cannot bring back:
    a pointer not made by cc.pointer, an array or a byref(); None if there is none."""
    for i, arg in enumerate(args):
        if buffer_of(arg) is None and (
                isinstance(arg, (ctypes._Pointer, ctypes.c_void_p, ctypes.Array))
                or type(arg).__name__ == "CArgObject"):
            return i + 1
    return None


def _call_in_child(fn: Function, args: tuple):
    if (n := _unknown_memory(args)) is not None:
        raise TypeError(f"lib.{fn._name}: argument {n} points at memory whose size the "
                        "call cannot know, so what the C writes there would be lost; pass "
                        "arrays with cc.pointer(t) (a tensor or a NumPy array)")
    slots, total = _slots(args)
    base = _libc.mmap(None, total, 0, mmap.MAP_SHARED | mmap.MAP_ANONYMOUS, -1, 0)
    if base in (None, ctypes.c_void_p(-1).value):
        raise MemoryError(f"lib.{fn._name}: no memory for its {len(slots)} arrays")
    try:
        _libc.mprotect(base, PAGE, mmap.PROT_READ | mmap.PROT_WRITE)
        ctypes.memset(base, 0, PAGE)
        call_args = list(args)
        for i, addr, size, at, pages in slots:
            first = at - (at % PAGE)
            _libc.mprotect(base + first, pages * PAGE, mmap.PROT_READ | mmap.PROT_WRITE)
            ctypes.memmove(base + at, addr, size)  # twice for an array passed twice: same
            call_args[i] = ctypes.cast(base + at, type(args[i]))
        with tempfile.TemporaryFile() as out:
            parent, held = os.getpid(), _HeldInterrupt()
            try:
                pid = os.fork()
            except BaseException:
                held.release()
                raise
            if pid == 0:  # the child: never returns
                _child(fn, fn._lib._guard, base, call_args, out.fileno(), parent)
            status = _wait(pid, fn._name, held)
            head = HEADER.unpack(ctypes.string_at(base, HEADER.size))
            out.seek(0)
            printed = out.read().decode(errors="replace")
        if printed:  # what the C printed (a checked build's message too), in the notebook
            sys.stdout.write(printed if printed.endswith("\n") else printed + "\n")
        if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
            raise NativeCrash(_crash_message(fn, status, head, slots, base, args, printed))
        fn.__dict__["seconds"] = head[4]
        for _, addr, size, at, _ in slots:
            ctypes.memmove(addr, base + at, size)
        return _result(head)
    finally:
        _libc.munmap(base, total)


class _HeldInterrupt:
    """Interrupt held back from the fork until the parent watches its child: raised in
    between, KeyboardInterrupt would leave the child running with nobody to stop it (a
    fork of a large kernel takes long enough for a signal to land there)."""

    def __init__(self):
        self.came, self.previous = False, None
        if threading.current_thread() is threading.main_thread() and \
                callable(signal.getsignal(signal.SIGINT)):  # Python's handler raises
            self.previous = signal.signal(signal.SIGINT, self._note)

    def _note(self, *_):
        self.came = True

    def release(self) -> None:
        """The kernel's own handler back; an Interrupt that came meanwhile raised now."""
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None
        if self.came:
            self.came = False
            raise KeyboardInterrupt


def _child(fn: Function, guard, base: int, call_args: list, out: int, parent: int) -> None:
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the kernel decides, and kills it
        if sys.platform.startswith("linux"):
            _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: a kernel gone takes it along
            if os.getppid() != parent:  # gone already
                os._exit(4)
        os.dup2(out, 1)
        os.dup2(out, 2)
        _line_buffered()  # what the C printed before a crash is in the file too
        if guard is not None:
            guard.efflab_guard(ctypes.c_void_p(base))
        start = time.perf_counter()
        result = fn._raw(*call_args)
        seconds = time.perf_counter() - start
        kind = 1 if isinstance(result, int) else 2 if isinstance(result, float) else 0
        ints = max(-2**63, min(2**63 - 1, result)) if kind == 1 else 0
        floats = result if kind == 2 else 0.0
        ctypes.memmove(base, HEADER.pack(0, 0, 0, kind, seconds, ints, floats), HEADER.size)
        _libc.fflush(None)  # os._exit does not flush C's stdio
        os._exit(0)
    except BaseException as e:  # noqa: BLE001 - a Python error in the child: say it
        os.write(2, f"{type(e).__name__}: {e}\n".encode())
        os._exit(3)


def _line_buffered() -> None:
    """C's stdout written line by line (glibc's `stdout`, macOS's `__stdoutp`)."""
    for name in ("stdout", "__stdoutp"):
        try:
            stream = ctypes.c_void_p.in_dll(_libc, name)
        except ValueError:
            continue
        _libc.setvbuf(stream, None, 1, 0)  # _IOLBF
        return


def _result(head: tuple):
    kind = head[3]
    return head[5] if kind == 1 else head[6] if kind == 2 else None


def _wait(pid: int, name: str, held: _HeldInterrupt) -> int:
    """The child's exit status; on Interrupt (also one `held` back during the fork) the
    child is killed, and KeyboardInterrupt says which C function was stopped."""
    fd = None
    try:
        held.release()
        fd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
        while True:
            if fd is not None:
                select.select([fd], [], [], 0.1)
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            if fd is None:
                time.sleep(0.001)
    except KeyboardInterrupt:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise KeyboardInterrupt(f"lib.{name} was stopped; no array was changed") from None
    finally:
        if fd is not None:
            os.close(fd)


def _crash_message(fn: Function, status: int, head: tuple, slots, base: int, args,
                   printed: str) -> str:
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else \
        (os.WEXITSTATUS(status) - 128 if os.WEXITSTATUS(status) > 128 else 0)
    if not sig and os.WEXITSTATUS(status) == 3:
        return f"lib.{fn._name} could not be called: {printed.strip()}"
    what = SIGNALS.get(sig, f"signal {sig}" if sig else f"exit {os.WEXITSTATUS(status)}")
    lines = [f"lib.{fn._name} crashed with {what}. The kernel and your variables are "
             "intact; no array was changed."]
    fault = head[1] if head[0] else 0
    for i, _, size, at, _ in slots:
        end = base + at + size
        itemsize = ctypes.sizeof(args[i]._type_)
        if end <= fault < end + PAGE:
            lines.append(f"It went past the end of argument {i + 1} ({size // itemsize} "
                         f"elements of {args[i]._type_.__name__}), at element "
                         f"{(fault - base - at) // itemsize}.")
        elif base + at - PAGE <= fault < base + at:
            lines.append(f"It went before the start of argument {i + 1}, at element "
                         f"{(fault - base - at) // itemsize}.")
    line = _source_line(fn, head[2]) if head[0] else ""
    if line:
        lines.append(f"At {line}.")
    elif not fn._lib._debug:
        lines.append("Load it with cc.load(source, checked=True) to have the line named.")
    return "\n".join(lines)


def _source_line(fn: Function, pc: int) -> str:
    """file:line of `pc` in the library (its debug information), or "" if unknown."""
    info = _DlInfo()
    if not pc or not _dladdr(ctypes.c_void_p(pc), ctypes.byref(info)):
        return ""
    tool = shutil.which("llvm-symbolizer") or shutil.which("addr2line")
    if tool is None or not fn._lib._debug:
        return ""
    offset = hex(pc - info.dli_fbase)
    cmd = [tool, "--obj", str(fn._lib._path), offset] if "symbolizer" in tool else \
        [tool, "-e", str(fn._lib._path), offset]
    try:
        said = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    found = [m for ln in said.splitlines() if (m := re.search(r":(\d+)(?::\d+)?\s*$", ln))
             and "??" not in ln]
    return f"{fn._lib._name}.c, line {found[0].group(1)}" if found and found[0].group(1) != "0" \
        else ""


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_size_t),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


_dladdr = _libc.dladdr if FORKS else None
if FORKS:
    _dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
