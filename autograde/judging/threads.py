"""One thread per checked call: the watch lives in the thread that calls the student's function.

torch's function and dispatch modes and Python's profile hook are all per thread, so work
handed to another thread would run unwatched. A check therefore refuses to call while a
thread of the notebook's own is running (a pool started in an earlier cell, say), and
refuses to let the call start one. The kernel's own threads (ipykernel's I/O, heartbeat,
control and shell threads, IPython's history writer) and tqdm's monitor are not the
notebook's; nor are the test runner's (execnet, under pytest-xdist).
"""

import _thread
import contextlib
import ctypes
import sys
import threading
from collections.abc import Iterator

from tqdm._monitor import TMonitor

from autograde.judging.values import CheckFailed

KERNEL_MODULES = ("ipykernel", "IPython", "zmq", "tornado", "jupyter_client", "tqdm",
                  "execnet", "debugpy")
# threads a library may start during the call, by class (a module name can be claimed):
# tqdm starts its monitor with a first progress bar
LIBRARY_THREADS = (TMonitor,)
# where Python starts a thread: threading's own reference and _thread's, by version
STARTERS = ((threading, ("_start_new_thread", "_start_joinable_thread")),
            (_thread, ("start_new_thread", "start_joinable_thread", "start_new")))


_API = ctypes.pythonapi
_API.PyInterpreterState_Get.restype = ctypes.c_void_p
_API.PyThreadState_New.argtypes = [ctypes.c_void_p]
_API.PyThreadState_New.restype = ctypes.c_void_p
_API.PyThreadState_GetID.argtypes = [ctypes.c_void_p]
_API.PyThreadState_GetID.restype = ctypes.c_uint64
_API.PyThreadState_Clear.argtypes = [ctypes.c_void_p]
_API.PyThreadState_Delete.argtypes = [ctypes.c_void_p]


def next_thread_id() -> int:
    """The id the interpreter gives its next thread state (ids only grow): one made and
    dropped. Every thread that runs Python gets one, however it was started."""
    tstate = _API.PyThreadState_New(_API.PyInterpreterState_Get())
    try:
        return _API.PyThreadState_GetID(tstate)
    finally:
        _API.PyThreadState_Clear(tstate)
        _API.PyThreadState_Delete(tstate)


def _module(thread: threading.Thread) -> str:
    """The module a thread's work comes from: its target's, or its class's."""
    target = getattr(thread, "_target", None)
    if target is None:
        return type(thread).__module__
    return getattr(target, "__module__", None) or ""


def _runs_notebook_code(frame) -> bool:
    while frame is not None:
        if frame.f_globals.get("__name__") == "__main__":
            return True
        frame = frame.f_back
    return False


def notebook_threads() -> list[str]:
    """The names of running threads that are neither this one, the main thread nor the
    kernel's own (a thread whose stack holds notebook code is the notebook's, whatever
    its target claims)."""
    frames = sys._current_frames()
    here, main = threading.current_thread(), threading.main_thread()
    return [t.name for t in threading.enumerate()
            if t is not here and t is not main
            and (not _module(t).startswith(KERNEL_MODULES)
                 or _runs_notebook_code(frames.get(t.ident)))]


RUNNING = ("your notebook has threads of its own running ({names}). A check sees only the "
           "thread that calls your function, so stop them before this test cell (a pool's "
           "shutdown(), a thread's join()).")
STARTED = ("your code started a thread ({names}) while the check called it. A check sees "
           "only the thread that calls your function: do the work there.")


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Refuse the call if the notebook's threads are running; refuse threads it starts."""
    running = notebook_threads()
    if running:
        raise CheckFailed(RUNNING.format(names=", ".join(running[:3])))
    started: list[str] = []
    allowed = [0]  # threads a library started through the starters (tqdm's monitor)
    saved = [(module, name, getattr(module, name)) for module, names in STARTERS
             for name in names if hasattr(module, name)]

    def refusing(real):
        def start(function, *args, **kwargs):
            owner = getattr(function, "__self__", None)  # a Thread's bootstrap: that Thread
            if type(owner) in LIBRARY_THREADS:
                allowed[0] += 1
                return real(function, *args, **kwargs)
            started.append(owner.name if isinstance(owner, threading.Thread)
                           else getattr(function, "__name__", "a thread"))
            raise RuntimeError("the check refuses new threads while it calls your function")
        return start

    for module, name, real in saved:
        setattr(module, name, refusing(real))
    first = next_thread_id()
    try:
        yield
    finally:
        # threads that ran Python during the call, started past the starters (a starter
        # kept from before the call, ctypes) and maybe gone already: their thread states
        unseen = next_thread_id() - first - 1 - allowed[0]
        for module, name, real in saved:
            setattr(module, name, real)
        if started:
            raise CheckFailed(STARTED.format(names=", ".join(started[:3])))
        if unseen > 0:
            raise CheckFailed(STARTED.format(names=f"{unseen} started out of sight"))
