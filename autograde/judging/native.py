"""C a student wrote, compiled and run by the judge itself, in a process of its own.

A check that grades C cannot trust a Python wrapper to have called it, so it
compiles the student's source itself (`build`): a static program with no C
library, no Python and no dynamic loader (`-ffreestanding -nostdlib -static`),
linked with a harness of ours that reads a case from standard input, calls the
student's function and writes back the arrays it may change; a call into anything
else fails to link. The source is read after the preprocessor, so a macro cannot
paste an `asm` together. The build is checked: signed overflow, shifts out of
range and out-of-bounds indexing of arrays trap (clang's sanitizers in trap mode)
instead of passing silently; a second, unchecked -O3 build is what is timed.
`run` starts the program in a process of its own with limits on CPU time, memory
and files; where the judge is root on Linux, in new namespaces, in an empty root
directory, as nobody. A crash, a trap or an endless loop is a failed case with
its reason, never the judge's end.
"""

import atexit
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autograde.judging.values import CheckFailed
from efflib.cc import c_text, cache_dir, compiler, first_error

CHECKED = ("-O2", "-fsanitize=signed-integer-overflow,shift,bounds",
           "-fsanitize-trap=signed-integer-overflow,shift,bounds")
FAST = ("-O3",)
COMMON = ("-std=c11", "-ffreestanding", "-nostdlib", "-static", "-fno-stack-protector",
          "-ffp-contract=off", "-fno-fast-math", "-Wall")
HEAP_MB = 96
ASM = re.compile(r"\b(asm|__asm|__asm__|_Pragma)\b")
C_TYPES = {"const float *": np.float32, "float *": np.float32,
           "const uint8_t *": np.uint8, "uint8_t *": np.uint8,
           "const int8_t *": np.int8, "const int32_t *": np.int32, "int32_t *": np.int32}
_BUILT: dict[str, Path] = {}
_FOLDER: list[Path] = []


class CompileError(CheckFailed):
    """The student's C does not compile, or reaches for something it may not use."""


@dataclass(frozen=True)
class Signature:
    """A C function the harness calls: its name and its parameters, pointers first in any
    order (their C types from C_TYPES) and ints."""

    name: str
    params: tuple[tuple[str, str], ...]  # (C type, name)

    def arrays(self) -> list[tuple[str, str]]:
        return [(t, n) for t, n in self.params if t.endswith("*")]

    def ints(self) -> list[str]:
        return [n for t, n in self.params if t == "int"]


HARNESS = r"""
typedef unsigned long size_t;
typedef signed char int8_t;
typedef unsigned char uint8_t;
typedef int int32_t;
typedef long long int64_t;
%(declaration)s;
#if defined(__x86_64__)
static long sys(long n, long a, long b, long c) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c)
                     : "rcx", "r11", "memory");
    return r;
}
enum { SYS_READ = 0, SYS_WRITE = 1, SYS_EXIT = 231, SYS_CLOCK = 228 };
#elif defined(__aarch64__)
static long sys(long n, long a, long b, long c) {
    register long x8 __asm__("x8") = n, x0 __asm__("x0") = a, x1 __asm__("x1") = b,
                  x2 __asm__("x2") = c;
    __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
    return x0;
}
enum { SYS_READ = 63, SYS_WRITE = 64, SYS_EXIT = 94, SYS_CLOCK = 113 };
#else
#error "the judge's harness knows x86_64 and aarch64"
#endif
void *memset(void *d, int c, size_t n) {
    volatile unsigned char *p = d; while (n--) *p++ = (unsigned char)c; return d; }
void *memcpy(void *d, const void *s, size_t n) {
    volatile unsigned char *a = d; const unsigned char *b = s; while (n--) *a++ = *b++;
    return d; }
void *memmove(void *d, const void *s, size_t n) {
    volatile unsigned char *a = d; const unsigned char *b = s;
    if (a < b) { while (n--) *a++ = *b++; } else { a += n; b += n; while (n--) *--a = *--b; }
    return d; }
static unsigned char heap[%(heap)d << 20] __attribute__((aligned(64)));
static long long now(void) {
    long long t[2]; sys(SYS_CLOCK, 1, (long)t, 0); return t[0] * 1000000000LL + t[1]; }
static void out(const void *p, long n) {
    const char *c = p; while (n > 0) { long k = sys(SYS_WRITE, 1, (long)c, n);
    if (k <= 0) break; c += k; n -= k; } }
#if defined(__x86_64__)
__attribute__((force_align_arg_pointer))
#endif
void _start(void) {
    long have = 0, k;
    while ((k = sys(SYS_READ, 0, (long)(heap + have), sizeof heap - have)) > 0) have += k;
    int32_t *head = (int32_t *)heap;        /* arrays, ints, repeats, then each size */
    int na = head[0], ni = head[1], reps = head[2];
    int32_t *sizes = head + 3, *ints = sizes + na;
    unsigned char *a[%(arrays)d], *at = heap + 64 * ((12 + 4 * (na + ni) + 63) / 64);
    for (int i = 0; i < na; i++) { a[i] = at; at += 64 * ((sizes[i] + 63) / 64); }
    long long best = -1;
    for (int r = 0; r < reps; r++) {
        long long t = now();
        %(call)s;
        t = now() - t;
        if (best < 0 || t < best) best = t;
    }
    out(&best, 8);
%(write_back)s
    sys(SYS_EXIT, 0, 0, 0);
    for (;;) {}
}
"""


def _harness(sig: Signature) -> str:
    arrays, ints = sig.arrays(), sig.ints()
    index = {n: i for i, (_, n) in enumerate(arrays)}
    args = [f"({t})a[{index[n]}]" if t.endswith("*") else f"ints[{ints.index(n)}]"
            for t, n in sig.params]
    params = ", ".join(f"{t}{'' if t.endswith('*') else ' '}{n}" for t, n in sig.params)
    back = "\n".join(f"    out(a[{i}], sizes[{i}]);" for i, (t, _) in enumerate(arrays)
                     if not t.startswith("const"))
    return HARNESS % {"declaration": f"void {sig.name}({params})", "heap": HEAP_MB,
                      "arrays": max(1, len(arrays)), "call": f"{sig.name}({', '.join(args)})",
                      "write_back": back}


def _folder() -> Path:
    if not _FOLDER:
        _FOLDER.append(Path(tempfile.mkdtemp(prefix="efflab-native-")))
        atexit.register(shutil.rmtree, _FOLDER[0], True)
    return _FOLDER[0]


def _compile(args: list[str], what: str, src: Path) -> None:
    cache = cache_dir()  # zig's own caches, shared with efflib.cc: its runtime is built once
    env = {**os.environ, "ZIG_GLOBAL_CACHE_DIR": str(cache / "zig-global"),
           "ZIG_LOCAL_CACHE_DIR": str(cache / "zig-local")}
    done = subprocess.run([*compiler(), *args], capture_output=True, text=True, env=env,
                          timeout=300)
    if done.returncode != 0:
        said = (done.stderr or done.stdout).replace(str(src.parent) + os.sep, "")
        first, *rest = first_error(said) or ["(no message)"]
        raise CompileError("\n".join([f"{what} does not compile: {first}", *rest,
                                      "(or it calls what a program of its own does not "
                                      "have: no C library, no Python)"]))


def _own_lines(preprocessed: str, name: str) -> list[tuple[int, str]]:
    """The lines of the preprocessor's output that come from the student's file."""
    mine, number, out = True, 0, []
    for line in preprocessed.splitlines():
        if m := re.match(r'#\s*(\d+)\s+"([^"]*)"', line):
            number, mine = int(m.group(1)), m.group(2).endswith(name)
            continue
        if mine:
            out.append((number, line))
        number += 1
    return out


def build(source: str, sig: Signature, what: str, checked: bool = True) -> Path:
    """The student's `source` with the harness for `sig`, as a static program: checked
    (traps on undefined behaviour) or fast (-O3, for timing). CompileError says why not."""
    key = hashlib.sha256("\0".join([source, repr(sig), str(checked)]).encode()).hexdigest()
    if key in _BUILT:
        return _BUILT[key]
    folder = _folder() / key[:20]
    folder.mkdir(exist_ok=True)
    src, harness = folder / f"{what}.c", folder / "harness.c"
    src.write_text(c_text(source))  # line 1: the first line of C in the student's string
    harness.write_text(_harness(sig))
    if re.search(r"^\s*#\s*include\s+[^<\"\s]", source, re.M):
        raise CompileError(f"{what}: #include takes a header's name in <> or \"\", not a "
                           "macro")
    pre = folder / "pre.i"
    _compile(["-E", "-ffreestanding", "-o", str(pre), str(src)], what, src)
    for number, line in _own_lines(pre.read_text(), src.name):
        if found := ASM.search(line):
            raise CompileError(f"{what}, line {number}: {found.group(0)!r} (after the "
                               "preprocessor): a convolution needs no assembly")
    exe = folder / ("checked" if checked else "fast")
    _compile([*COMMON, *(CHECKED if checked else FAST), "-o", str(exe), str(harness),
              str(src)], what, src)
    _BUILT[key] = exe
    return exe


def _isolated() -> bool:
    return (os.name == "posix" and hasattr(os, "geteuid") and os.geteuid() == 0
            and all(shutil.which(t) for t in ("unshare", "chroot", "prlimit")))


def run(exe: Path, sig: Signature, arrays: dict[str, np.ndarray], ints: dict[str, int],
        what: str, repeats: int = 1, seconds: int = 20) -> tuple[dict[str, np.ndarray], float]:
    """Run `exe` on one case: the arrays it may change, as it left them, and the fastest
    of `repeats` calls in seconds. A crash, a trap or a timeout fails the check."""
    order = sig.arrays()
    blobs = [np.ascontiguousarray(arrays[n], dtype=C_TYPES[t]).tobytes() for t, n in order]
    head = np.array([len(order), len(sig.ints()), repeats, *map(len, blobs),
                     *(int(ints[n]) for n in sig.ints())], dtype=np.int32).tobytes()
    data = head + b"\0" * (-len(head) % 64)
    for blob in blobs:
        data += blob + b"\0" * (-len(blob) % 64)
    if len(data) > (HEAP_MB << 20):
        raise CheckFailed(f"{what}: the case is larger than the harness holds")
    limits = ["prlimit", f"--cpu={seconds}", f"--as={(HEAP_MB + 256) << 20}", "--fsize=0",
              "--nofile=8", "--core=0", "--"]
    with tempfile.TemporaryDirectory(prefix="efflab-run-") as root:
        if _isolated():  # an empty root of its own, as nobody, without a network
            os.chmod(root, 0o755)
            shutil.copy(exe, Path(root) / "program")
            cmd = [*limits, "unshare", "--net", "--ipc", "--uts", "--pid", "--fork",
                   "--mount", "--kill-child", "chroot", "--userspec=65534:65534", root,
                   "/program"]
        else:
            cmd = [*limits, str(exe)]
        try:
            done = subprocess.run(cmd, input=data, capture_output=True, timeout=seconds + 10)
        except subprocess.TimeoutExpired:
            raise CheckFailed(f"{what} did not finish within {seconds} s: an endless "
                              "loop?") from None
    if done.returncode != 0:
        raise CheckFailed(f"{what} {_death(done.returncode)}")
    out, at = {}, 8
    for (t, n), blob in zip(order, blobs, strict=True):
        if not t.startswith("const"):
            out[n] = np.frombuffer(done.stdout[at:at + len(blob)], dtype=C_TYPES[t]).copy()
            at += len(blob)
    if len(done.stdout) != at:
        raise CheckFailed(f"{what}: the program's answer was cut short")
    return out, int.from_bytes(done.stdout[:8], "little", signed=True) / 1e9


def _death(code: int) -> str:
    """Why the program ended, in words for the student."""
    sig = -code if code < 0 else code - 128 if code > 128 else 0
    if sig in (signal.SIGILL, signal.SIGTRAP):
        return ("stopped on undefined behaviour: a signed integer overflowed (int32 * int32 "
                "is int32: cast to int64_t first), a shift was out of range, or an index "
                "ran past an array (the checked build traps on each).")
    if sig in (signal.SIGSEGV, signal.SIGBUS):
        return ("crashed with a segmentation fault: it read or wrote outside its arrays "
                "(check each index's bounds, and that no buffer is sized for small cases).")
    if sig == signal.SIGFPE:
        return "crashed with an arithmetic error (an integer division by zero?)."
    if sig in (signal.SIGKILL, signal.SIGXCPU):
        return "was stopped: it ran out of CPU time or memory."
    return f"ended with exit status {code}."
