"""The forbidden-op watch: run student code with some torch functions and efflib topics refused.

Inside JupyterLab a check runs the student's function under the watch directly.
When grading, the check runs in the grader (`judging.judge`) and the watch
travels with each call into the kernel as plain data (`Recorder.spec`), where
`from_spec` applies it around the student's function.
"""

import contextlib
import importlib
import sys
import threading
from collections.abc import Iterator, Sequence

from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from autograde.judging.answer_cells import refused_in_answer
from autograde.judging.threads import one_thread
from autograde.judging.values import CheckFailed
from efflib.graded import blocked


class Recorder(TorchFunctionMode):
    """Records the torch functions called and refuses the forbidden ones.

    `forbidden` holds torch callables (matched by identity) and strings (matched
    against the called function's `__name__`, which catches aliases such as
    `F.conv2d`, `torch.conv2d` and `nn.Conv2d.forward` alike).
    """

    def __init__(self, forbidden: Sequence[object], why: str = "", topics: Sequence[str] = (),
                 numpy: Sequence[str] = (), modules: Sequence[str] = ()):
        super().__init__()
        self.numpy = set(numpy)  # names of NumPy / SciPy functions refused as well
        self.modules = tuple(modules)  # Python modules none of whose functions may run
        self.why = why or ("this question asks you to write yourself from simpler "
                           "tensor operations.")
        self.names = {f for f in forbidden if isinstance(f, str)}
        self.objects = [f for f in forbidden if not isinstance(f, str)]
        self.topics = list(topics)
        self.called: set[str] = set()

    def spec(self) -> dict:
        """The same watch as plain data, to send with a call into the student's kernel."""
        objects = [[f.__module__, f.__qualname__] for f in self.objects]
        return {"forbidden": sorted(self.names) + objects, "topics": self.topics,
                "why": self.why, "numpy": sorted(self.numpy), "modules": list(self.modules)}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", repr(func))
        self.called.add(name)
        if name in self.names or any(func is f for f in self.objects):
            raise CheckFailed(f"your code calls torch's {name}, which {self.why}")
        return func(*args, **(kwargs or {}))


class DispatchGuard(TorchDispatchMode):
    """The recorder's refusals one level down, at PyTorch's dispatcher, by aten op name: an
    answer that switches the torch-function layer off (torch._C.DisableTorchFunction)
    still meets them (F.pad arrives here as constant_pad_nd, F.conv2d as convolution)."""

    def __init__(self, recorder: Recorder):
        super().__init__()
        self.recorder = recorder

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in self.recorder.names:
            raise CheckFailed(f"your code calls torch's {name}, which {self.recorder.why}")
        return func(*args, **(kwargs or {}))


_WATCHES: list[Recorder] = []
_JUDGING = [False]


@contextlib.contextmanager
def judging() -> Iterator[None]:
    """Within the block, checks run in the grader: watches travel with each call."""
    _JUDGING.append(True)
    try:
        yield
    finally:
        _JUDGING.pop()


def is_judging() -> bool:
    return _JUDGING[-1]


@contextlib.contextmanager
def _numpy_watch(recorder: Recorder) -> Iterator[None]:
    """Refuse calls of NumPy and SciPy functions named in `recorder.numpy`, and of any
    function of the modules in `recorder.modules`, however they were imported or aliased:
    a profile hook sees every call by the function's own name and module, in this thread
    and in every thread started during the block (not in one started before it)."""
    if not recorder.numpy and not recorder.modules:
        yield
        return
    called: dict[str, None] = {}  # in the order first called: the answer's own call first

    def hook(frame, event, arg):
        if event == "call":
            module, name = frame.f_globals.get("__name__", ""), frame.f_code.co_name
        elif event == "c_call":
            module, name = getattr(arg, "__module__", None) or "", getattr(arg, "__name__", "")
        else:
            return
        if name in recorder.numpy and module.startswith(NUMPY_MODULES):
            called.setdefault(f"{module.split('.')[0]}'s {name}")
        elif recorder.modules and module.startswith(recorder.modules) and not _importing(frame):
            called.setdefault(f"{module} (its {name})")

    previous, previous_threads = sys.getprofile(), threading.getprofile()
    sys.setprofile(hook)
    threading.setprofile(hook)  # a thread the call starts runs under the hook too
    try:
        yield
    finally:
        replaced = sys.getprofile() is not hook
        sys.setprofile(previous)
        threading.setprofile(previous_threads)
    if replaced:
        raise CheckFailed("your code replaced the profiler (sys.setprofile), which the check "
                          "uses to see which functions run")
    if called:
        raise CheckFailed(f"your code calls {next(iter(called))}, which {recorder.why}")


NUMPY_MODULES = ("numpy", "scipy")


def _importing(frame) -> bool:
    """Whether `frame` runs as part of a module being imported (torch imports some of its
    modules lazily, and their import-time code is not a call the answer made)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


@contextlib.contextmanager
def watch(forbidden: Sequence[object] = (), topics: Sequence[str] = (),
          why: str = "", numpy: Sequence[str] = (),
          modules: Sequence[str] = (), call_only: Sequence[str] = ()) -> Iterator[Recorder]:
    """Run student code with `forbidden` torch functions, efflib `topics`, the `numpy`
    functions named and every function of `modules` refused, in the call and, except the
    names and modules in `call_only`, in the answer cells of the question
    (judging.answer_cells)."""
    recorder = Recorder(forbidden, why, topics, numpy, modules)
    in_cell = Recorder([f for f in forbidden if f not in call_only], recorder.why, topics,
                       numpy, [m for m in modules if m not in call_only])
    if reason := refused_in_answer(in_cell):  # made when the answer cell ran counts too
        raise CheckFailed(reason)
    _WATCHES.append(recorder)
    try:
        if is_judging():
            yield recorder  # applied in the kernel, around each call (from_spec)
        else:
            guard = DispatchGuard(recorder) if recorder.names else contextlib.nullcontext()
            with one_thread(), blocked(*topics), recorder, guard, _numpy_watch(recorder):
                yield recorder
    finally:
        _WATCHES.pop()


def active_recorder() -> Recorder | None:
    return _WATCHES[-1] if _WATCHES else None


def from_spec(spec: dict | None):
    """In the kernel: the watch a `Recorder.spec()` describes (a no-op for None)."""
    if spec is None:
        return contextlib.nullcontext()
    forbidden = [f if isinstance(f, str) else _resolve(*f) for f in spec["forbidden"]]
    return watch(forbidden, spec["topics"], spec["why"], spec.get("numpy", ()),
                 spec.get("modules", ()))


def _resolve(module: str, qualname: str):
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj
