"""The check writer's API: what a lab's checks module builds its checks from.

A check turns the student's value into a plain value (`as_int`, `as_tensor`, ...),
compares it with a reference computed here, and fails with `CheckFailed` naming
the case, the expected value, what came back and a hint. Student functions run
through `call` inside `watch`, which refuses torch functions and efflib topics
the question asks students to write themselves. The same check runs in the
student's kernel (JupyterLab) and, when grading, in the grader (`autograde.judging`);
checks never touch the wire format.
"""

import math
import random
from collections.abc import Callable

import torch
import torch.nn as nn

from autograde.checks.notebook import show_failures_briefly
from autograde.judging import graphs
from autograde.judging.judge import Remote
from autograde.judging.layers import is_layer_tree
from autograde.judging.values import (
    CheckFailed,
    JudgeError,
    as_float,
    as_int,
    as_int_tuple,
    as_plain_tensor,
    as_tensor,
    fail,
)
from autograde.judging.watch import watch
from efflib.graded import GradedAnswerError

__all__ = ["CheckFailed", "as_float", "as_graph", "as_int", "as_int_tuple", "as_plain_tensor",
           "as_tensor",
           "call", "expect_answer", "expect_close", "expect_int", "expect_raises", "fail",
           "fmt_call",
           "is_layer_tree", "kernel_only", "rng", "torch_gen", "type_name", "watch"]

show_failures_briefly()  # in a student's kernel: a failed check reads as its message


def rng(hidden: bool, salt: str) -> random.Random:
    """A seeded generator: a fixed case set for visible checks, another for hidden ones."""
    return random.Random(f"{'hidden' if hidden else 'visible'}:{salt}")


def torch_gen(r: random.Random) -> torch.Generator:
    return torch.Generator().manual_seed(r.randrange(2**31))


# --- comparing ----------------------------------------------------------------------

def expect_int(got, expected: int, case: str, hint: str = "") -> None:
    got = as_int(got, case)
    if got != int(expected):
        fail(f"{case}: expected {expected}, got {got}.{' ' + hint if hint else ''}")


def expect_answer(got, expected: float, case: str, rel: float = 1e-9, hint: str = "") -> None:
    """Where the value itself is what is graded, the message says only which way it is off,
    never the value (it would give the answer away)."""
    value = as_int(got, case) if isinstance(expected, int) else as_float(got, case)
    if not math.isclose(value, float(expected), rel_tol=rel, abs_tol=1e-12):
        way = "too high" if value > expected else "too low"
        shown = f"{value:,d}" if isinstance(value, int) else f"{value:.6g}"
        fail(f"{case}: got {shown}, which is {way}.{' ' + hint if hint else ''}")


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

def kernel_only(check: Callable) -> Callable:
    """Mark a check that needs live objects (modules, classes): the grader runs its test
    cell in the student's kernel, guarded by the integrity probe, instead of judging it
    in the grader. Say why next to each use."""
    check.kernel_only = True
    return check


def call(fn: Callable, case: str, *args, **kwargs):
    """Call the student's function, turning its exceptions into a readable failure."""
    if not callable(fn):
        fail(f"expected a function, got {type(fn).__name__}")
    try:
        return fn(*args, **kwargs)
    except (CheckFailed, GradedAnswerError, JudgeError):  # not the function's own error
        raise
    except NotImplementedError:
        fail(f"{case}: not implemented yet (the answer cell still raises NotImplementedError).")
    except Exception as e:  # noqa: BLE001 - report any error with its case
        fail(f"{case}: your function raised {type(e).__name__}: {e}")


def as_graph(module, example_args: tuple, case: str) -> graphs.GraphModel:
    """The student's own nn.Module (a class they wrote) as its torch.export graph of ATen
    ops and its tensors, rebuilt here: the check runs the graph itself, on the student's
    numbers, wherever the module lives (judging.graphs)."""
    try:
        if isinstance(module, Remote):
            return module.as_graph(*example_args)
        if isinstance(module, nn.Module):
            return graphs.rebuild(graphs.describe(module, example_args))
    except (CheckFailed, GradedAnswerError):
        raise
    except JudgeError as e:
        fail(f"{case}: {e}")
    except Exception as e:  # noqa: BLE001 - the student's forward, traced
        fail(f"{case}: torch.export could not trace your module's forward on an input of "
             f"shape {tuple(example_args[0].shape)}: {type(e).__name__}: {str(e)[:300]}")
    fail(f"{case} should be an nn.Module, got {type_name(module)}")


def type_name(value) -> str:
    """The class name of a student's object, also when it stays in the kernel (judged)."""
    return value._type if isinstance(value, Remote) else type(value).__name__


def fmt_call(name: str, *args, **kwargs) -> str:
    """`name(a, b, k=v)` with tensors shown by shape, for failure messages."""
    def show(v):
        if isinstance(v, torch.Tensor):
            return f"<tensor {tuple(v.shape)}>"
        return repr(v)
    parts = [show(a) for a in args] + [f"{k}={show(v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"
