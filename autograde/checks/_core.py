"""Building blocks of the checks that lab test cells call.

Every comparison first turns the student's value into a plain Python or torch
value (exact `int`, `float`, a plain `torch.Tensor` copy), so an object whose
`__eq__` always answers True, or a tensor subclass, cannot pass. Failures raise
`CheckFailed` with the case, the expected value and what came back.
"""

import numbers
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch.overrides import TorchFunctionMode

from efflib._guard import GradedAnswerError, blocked


class CheckFailed(AssertionError):
    """A graded check found a wrong answer; the message says what to fix."""


def fail(message: str) -> None:
    raise CheckFailed(message)


def rng(hidden: bool, salt: str) -> random.Random:
    """A seeded generator: a fixed case set for visible checks, another for hidden ones."""
    return random.Random(f"{'hidden' if hidden else 'visible'}:{salt}")


def torch_gen(r: random.Random) -> torch.Generator:
    return torch.Generator().manual_seed(r.randrange(2**31))


# --- turning student values into plain values ---------------------------------------

def as_int(value, what: str) -> int:
    """An exact int from an int-like answer (int, numpy int, 1-element integer tensor)."""
    if isinstance(value, torch.Tensor):
        with torch._C.DisableTorchFunctionSubclass():
            plain = value.as_subclass(torch.Tensor).detach()
            if plain.numel() != 1 or plain.is_floating_point() or plain.is_complex():
                fail(f"{what} should be an integer, got a tensor of dtype {plain.dtype} "
                     f"and shape {tuple(plain.shape)}")
            return int(plain.item())
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        hint = " (use // for floor division)" if isinstance(value, float) else ""
        fail(f"{what} should be an int, got {type(value).__name__} {value!r}{hint}")
    # int.__index__ reads the stored value of an int subclass, ignoring its overrides
    result = int.__index__(value) if isinstance(value, int) else int(value)
    if type(result) is not int:
        fail(f"{what} should be a plain int, got {type(result).__name__}")
    return result


def as_float(value, what: str) -> float:
    """An exact float from a real-number answer."""
    if isinstance(value, torch.Tensor):
        with torch._C.DisableTorchFunctionSubclass():
            plain = value.as_subclass(torch.Tensor).detach()
            if plain.numel() != 1:
                fail(f"{what} should be one number, got shape {tuple(plain.shape)}")
            return float(plain.item())
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        fail(f"{what} should be a number, got {type(value).__name__} {value!r}")
    result = float.__float__(value) if isinstance(value, float) else float(value)
    if type(result) is not float:
        fail(f"{what} should be a plain float, got {type(result).__name__}")
    return result


def as_int_tuple(value, what: str) -> tuple[int, ...]:
    """A tuple of exact ints from a shape-like answer (tuple, list, torch.Size)."""
    if isinstance(value, str) or not isinstance(value, Sequence | torch.Size):
        fail(f"{what} should be a tuple of ints, got {type(value).__name__} {value!r}")
    return tuple(as_int(v, f"{what}[{i}]") for i, v in enumerate(tuple(value)))


def as_plain_tensor(value, what: str) -> torch.Tensor:
    """A plain CPU copy of a tensor answer (dtype kept), refusing subclasses' overrides."""
    if not isinstance(value, torch.Tensor):
        fail(f"{what} should be a torch.Tensor, got {type(value).__name__}")
    with torch._C.DisableTorchFunctionSubclass():
        return value.as_subclass(torch.Tensor).detach().cpu().clone()


def as_tensor(value, what: str) -> torch.Tensor:
    """A plain float64 CPU copy of a tensor answer, refusing subclasses' overrides."""
    return as_plain_tensor(value, what).to(torch.float64)


# --- comparing ----------------------------------------------------------------------

def expect_int(got, expected: int, case: str, hint: str = "") -> None:
    got = as_int(got, case)
    if got != int(expected):
        fail(f"{case}: expected {expected}, got {got}.{' ' + hint if hint else ''}")


def expect_close(got, expected: torch.Tensor, case: str, atol: float = 1e-5,
                 rtol: float = 1e-4, hint: str = "") -> None:
    """Shapes equal and values within tolerance, with the worst element reported."""
    got_t = as_tensor(got, case)
    exp_t = expected.detach().to("cpu", torch.float64)
    if tuple(got_t.shape) != tuple(exp_t.shape):
        fail(f"{case}: expected shape {tuple(exp_t.shape)}, got {tuple(got_t.shape)}."
             f"{' ' + hint if hint else ''}")
    if not torch.isfinite(got_t).all():
        fail(f"{case}: the result contains NaN or inf.")
    err = (got_t - exp_t).abs()
    bound = atol + rtol * exp_t.abs()
    if bool((err > bound).any()):
        worst = int(torch.argmax(err - bound))
        idx = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), exp_t.shape))
        fail(f"{case}: values differ; at index {idx} expected {exp_t[idx].item():.6g}, "
             f"got {got_t[idx].item():.6g} (max abs error {err.max().item():.3g})."
             f"{' ' + hint if hint else ''}")


def expect_raises(fn: Callable, exc: type[BaseException], case: str, *args, **kwargs) -> None:
    try:
        fn(*args, **kwargs)
    except exc:
        return
    except Exception as e:  # noqa: BLE001 - the student needs to know which one came
        fail(f"{case}: expected {exc.__name__}, but {type(e).__name__} was raised: {e}")
    fail(f"{case}: expected {exc.__name__} to be raised, but the call returned normally.")


# --- running the student's code -----------------------------------------------------

class _Recorder(TorchFunctionMode):
    """Records the torch functions called and refuses the forbidden ones.

    `forbidden` holds torch callables (matched by identity) and strings (matched
    against the called function's `__name__`, which catches aliases such as
    `F.conv2d`, `torch.conv2d` and `nn.Conv2d.forward` alike).
    """

    def __init__(self, forbidden: Sequence[object], why: str = "", topics: Sequence[str] = ()):
        super().__init__()
        self.why = why or ("this question asks you to write yourself from simpler "
                           "tensor operations.")
        self.names = {f for f in forbidden if isinstance(f, str)}
        self.objects = [f for f in forbidden if not isinstance(f, str)]
        self.topics = list(topics)
        self.called: set[str] = set()

    def spec(self) -> dict:
        """The same watch, as plain data, for the student's kernel (autograde.remote)."""
        objects = [[f.__module__, f.__qualname__] for f in self.objects]
        return {"forbidden": sorted(self.names) + objects, "topics": self.topics,
                "why": self.why}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", repr(func))
        self.called.add(name)
        if name in self.names or any(func is f for f in self.objects):
            raise CheckFailed(f"your code calls torch's {name}, which {self.why}")
        return func(*args, **(kwargs or {}))


@contextmanager
def watch(forbidden: Sequence[object] = (), topics: Sequence[str] = (),
          why: str = "") -> Iterator[_Recorder]:
    """Run student code with `forbidden` torch functions and efflib `topics` refused.

    When the grader judges a test cell outside the kernel (autograde.remote), the
    watch travels with each call of the student's function and is applied there.
    """
    from autograde.remote import is_judging

    recorder = _Recorder(forbidden, why, topics)
    _WATCHES.append(recorder)
    try:
        if is_judging():
            yield recorder
        else:
            with blocked(*topics), recorder:
                yield recorder
    finally:
        _WATCHES.pop()


_WATCHES: list[_Recorder] = []


def active_recorder() -> _Recorder | None:
    return _WATCHES[-1] if _WATCHES else None


def kernel_only(check: Callable) -> Callable:
    """Mark a check that needs live objects (modules, classes): the grader runs its test
    cell in the student's kernel, guarded by the integrity probe, instead of judging it
    outside (autograde.remote)."""
    check.kernel_only = True
    return check


def call(fn: Callable, case: str, *args, **kwargs):
    """Call the student's function, turning its exceptions into a readable failure."""
    if not callable(fn):
        fail(f"expected a function, got {type(fn).__name__}")
    from autograde.wire import JudgeError

    try:
        return fn(*args, **kwargs)
    except (CheckFailed, GradedAnswerError, JudgeError):  # not the function's own error
        raise
    except NotImplementedError:
        fail(f"{case}: not implemented yet (the answer cell still raises NotImplementedError).")
    except Exception as e:  # noqa: BLE001 - report any error with its case
        fail(f"{case}: your function raised {type(e).__name__}: {e}")


def fmt_call(name: str, *args, **kwargs) -> str:
    """`name(a, b, k=v)` with tensors shown by shape, for failure messages."""
    def show(v):
        if isinstance(v, torch.Tensor):
            return f"<tensor {tuple(v.shape)}>"
        return repr(v)
    parts = [show(a) for a in args] + [f"{k}={show(v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"
