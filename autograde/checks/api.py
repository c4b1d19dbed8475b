"""The check writer's API: what a lab's checks module builds its checks from.

A check (`@check`) turns the student's value into a plain value (`as_int`,
`as_tensor`, ...), compares it with a reference computed here, and fails with
`CheckFailed` naming the case, what came back and a hint, and, in a visible case,
the expected value. Hidden cases (`hidden=True`) are drawn from the grader's key
(`judging.hidden`) and never show the expected value: the comparing helpers say
which way and where an answer is off instead (`expect_int`, `expect_close`,
`compared`). Student functions run through `call` inside `watch`, which refuses
torch functions and efflib topics the question asks students to write
themselves. The same check runs in the student's kernel (JupyterLab) and, when
grading, in the grader (`autograde.judging`); checks never touch the wire format.
"""

import copy
import functools
import inspect
import math
import random
from collections.abc import Callable

import torch
import torch.nn as nn

from autograde.checks.notebook import show_failures_briefly
from autograde.judging import graphs, heldout, hidden, native, structure, traces
from autograde.judging.clean_room import Withheld
from autograde.judging.judge import Remote, parameters_kept, replaced_message
from autograde.judging.layers import (  # noqa: F401 - trusted_module: for a lab's own module
    is_layer_tree,
    parameter_objects,
    replaced_parameters,
    trusted_module,
)
from autograde.judging.values import (
    CheckFailed,
    JudgeError,
    NotAnswered,
    as_float,
    as_int,
    as_int_tuple,
    as_plain_tensor,
    as_tensor,
    fail,
)
from autograde.judging.watch import active_recorder, watch
from efflib.data import digits
from efflib.graded import GradedAnswerError
from efflib.train import evaluate

__all__ = ["CSignature", "CheckFailed", "FACTORIES", "NO_LAYERS", "Withheld", "as_float",
           "as_graph",
           "as_int", "as_int_tuple", "as_plain_tensor", "as_tensor", "c_program", "call",
           "call_arrays", "call_in_place", "call_may_raise", "call_traced", "expect_same_layers",
           "check", "compared", "expect_answer",
           "expect_close", "expect_equal", "expect_int", "expect_raises",
           "expect_test_accuracy", "fail", "fmt_call", "formula_watch", "in_hidden_case",
           "is_layer_tree",
           "kernel_only", "new_handwriting", "rng", "run_c", "torch_gen", "type_name",
           "watch"]

show_failures_briefly()  # in a student's kernel: a failed check reads as its message
CSignature = native.Signature
in_hidden_case = hidden.in_hidden_case


def check(fn: Callable) -> Callable:
    """Mark a lab's check (every public `check_*` of a checks module is one). Called with
    `hidden=True`, it runs as a hidden case: the comparing helpers leave the expected
    value out of its failures."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def run(*args, **kwargs):
        if args and args[0] is None:  # the value the lab gives an answer before it is written
            raise NotAnswered("the answer is still None, the value the lab starts it with; "
                              "write your answer in the answer cell above.")
        try:
            hide = bool(signature.bind(*args, **kwargs).arguments.get("hidden", False))
        except TypeError:
            hide = False  # wrong arguments: the check itself says so
        with hidden.hidden_case(hide):
            return fn(*args, **kwargs)
    run.is_check = True
    return run


def rng(hidden_cases: bool, salt: str) -> random.Random:
    """A seeded generator: a fixed case set for visible checks (anyone can read the seed);
    for hidden ones, a set drawn from the grader's key (judging.hidden), which a student's
    kernel never has."""
    return random.Random(hidden.seed(salt) if hidden_cases else f"visible:{salt}")


def torch_gen(r: random.Random) -> torch.Generator:
    return torch.Generator().manual_seed(r.randrange(2**31))


# --- comparing ----------------------------------------------------------------------

def _hint(hint: str) -> str:
    return f" {hint}" if hint else ""


def _way(got, expected) -> str:
    """Which way a number is off, for a hidden case's message."""
    try:
        return "which is too high" if got > expected else "which is too low"
    except TypeError:
        return "which is not the expected value"


def compared(got, expected, fmt: str = "") -> str:
    """The end of a failure message after what came back: ', expected E' in a visible case;
    in a hidden one only which way it is off (', which is too high')."""
    if in_hidden_case():
        return f", {_way(got, expected)}"
    return f", expected {expected:{fmt}}"


def expect_int(got, expected: int, case: str, hint: str = "") -> None:
    got = as_int(got, case)
    if got != int(expected):
        if in_hidden_case():
            fail(f"{case}: got {got}, {_way(got, int(expected))}.{_hint(hint)}")
        fail(f"{case}: expected {expected}, got {got}.{_hint(hint)}")


def expect_equal(got: tuple, expected: tuple, case: str, hint: str = "") -> None:
    """Two tuples of plain values equal; a hidden case names the first element that is off
    and which way, never the expected tuple."""
    if got == expected:
        return
    if not in_hidden_case():
        fail(f"{case}: expected {expected}, got {got}.{_hint(hint)}")
    if len(got) != len(expected):
        fail(f"{case}: got {got}, which has {len(got)} entries; the answer has a different "
             f"number.{_hint(hint)}")
    i = next(i for i, (g, e) in enumerate(zip(got, expected, strict=True)) if g != e)
    fail(f"{case}: got {got}; entry {i} ({got[i]!r}) is wrong, {_way(got[i], expected[i])}."
         f"{_hint(hint)}")


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
        if in_hidden_case():
            fail(f"{case}: got shape {tuple(got_t.shape)}, which is not the shape of the "
                 f"answer for these inputs.{_hint(hint)}")
        fail(f"{case}: expected shape {tuple(exp_t.shape)}, got {tuple(got_t.shape)}."
             f"{_hint(hint)}")
    if not torch.isfinite(got_t).all():
        fail(f"{case}: the result contains NaN or inf.")
    err = (got_t - exp_t).abs()
    bound = atol + rtol * exp_t.abs()
    if bool((err > bound).any()):
        worst = int(torch.argmax(err - bound))
        idx = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), exp_t.shape))
        g = got_t[idx].item()
        if in_hidden_case():
            wrong = int((err > bound).sum())
            fail(f"{case}: {wrong:,d} of {err.numel():,d} values are wrong; the worst is at "
                 f"index {idx}, where {g:.6g} is too {'high' if g > exp_t[idx] else 'low'}."
                 f"{_hint(hint)}")
        fail(f"{case}: values differ; at index {idx} expected {exp_t[idx].item():.6g}, "
             f"got {g:.6g} (max abs error {err.max().item():.3g}).{_hint(hint)}")


SLACK = 0.01  # the grader's handwriting goal is lower by this: its draw is not the student's
# refused where a question asks for a formula: no layer, model or input can be built without
# one of them, so sizes and counts cannot be read off torch's own modules
FACTORIES = ("empty", "empty_strided", "zeros", "ones", "full", "rand", "randn", "randint",
             "tensor", "as_tensor", "arange", "empty_like", "zeros_like", "ones_like")
NO_LAYERS = ("is off limits: this question asks for the formula, not for building the layer "
             "or calling a library that knows it.")
# torch's own answers written in Python: its reference ops and decompositions (gelu, pad,
# norms) and its shape rules (a pooling output size is the conv formula). Calling one is
# calling the answer under another name. Refused in the call only: an answer cell may run a
# model on the meta device (Lab 03 Q8), and torch's meta kernels live in these modules.
TORCH_REFERENCES = ("torch._refs", "torch._decomp", "torch._prims", "torch._meta_registrations")


def formula_watch(topics: tuple[str, ...] = (), modules: tuple[str, ...] = ()):
    """The watch of a question whose point is arithmetic: no layer or tensor can be built
    during the call (the answer cell may build them: it may profile a model too), and
    efflib's `topics`, torch's formulas and the `modules` are refused."""
    return watch(forbidden=FACTORIES, topics=topics, why=NO_LAYERS, modules=TORCH_REFERENCES
                 + modules, call_only=FACTORIES + TORCH_REFERENCES)


def new_handwriting() -> tuple[torch.Tensor, torch.Tensor, str, bool]:
    """(images, labels, what to call them, whether they are the grader's): digits no one
    has trained on (judging.heldout). When grading, the grader's own, drawn from the
    course's secret; in a student's kernel, the public sample."""
    key = hidden.installed()
    if key is not None and key.count():
        return key.images, key.labels, "the grader's own new handwriting", True
    images, labels = heldout.public_digits()
    return images, labels, "new handwriting", False


def expect_test_accuracy(model: nn.Module, name: str, goal: float, advice: str,
                         handwriting: float | None = None) -> float:
    """The model's top-1 accuracy on the digits' test split, failing below `goal`, and on
    new handwriting (judging.heldout), failing below `handwriting`: in the student's
    kernel on the public sample, when grading on the grader's own digits, drawn from the
    course's secret (no one can have trained on them), a point lower."""
    acc = evaluate(model, digits(seed=0).test)
    if acc < goal:
        fail(f"{name} reaches {acc:.1%} test accuracy; it needs at least {goal:.0%}. {advice}")
    if handwriting is None:
        return acc
    images, labels, where, grading = new_handwriting()
    want = handwriting - SLACK if grading else handwriting
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels),
                                         batch_size=1024)
    drawn = evaluate(model, loader)
    if drawn < want:
        fail(f"{name} reaches {acc:.1%} on the test split but {drawn:.1%} on {where} "
             f"(digits no one has trained on); it needs at least {want:.0%} there. {advice} "
             "Train on the training split only: test images a model has seen say nothing "
             "about new ones.")
    return acc


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
        raise NotAnswered(f"{case}: the answer cell still raises NotImplementedError; write "
                          "your code in place of `raise NotImplementedError()`.") from None
    except Exception as e:  # noqa: BLE001 - report any error with its case
        fail(f"{case}: your function raised {type(e).__name__}: {e}")


def call_in_place(fn: Callable, case: str, *args, **kwargs):
    """Call a function that changes its module arguments in place: a parameter it replaces
    by a new object (which an optimizer made before the call no longer trains) fails."""
    if isinstance(fn, Remote):
        with parameters_kept(case):
            return call(fn, case, *args, **kwargs)
    before = parameter_objects(args)
    value = call(fn, case, *args, **kwargs)
    if replaced := replaced_parameters(before, args):
        fail(replaced_message(case, replaced))
    return value


def call_may_raise(fn: Callable, case: str, *args, **kwargs) -> None:
    """Call the student's function where raising is right (the input is bad): its own
    error passes, a refusal or the judge's does not."""
    if not callable(fn):
        fail(f"{case}: expected a function, got {type(fn).__name__}")
    try:
        fn(*args, **kwargs)
    except (CheckFailed, GradedAnswerError, JudgeError):  # not the function's own error
        raise
    except Exception:  # noqa: BLE001, S110 - raising is an answer here
        pass


def call_arrays(fn: Callable, case: str, *args: torch.Tensor) -> list[torch.Tensor]:
    """Call a compiled function of the student's (a numba kernel) on NumPy float32 copies of
    `args`, wherever it lives; return every argument as the call left it (a kernel writes
    its result into an array it was given)."""
    if not callable(fn):
        fail(f"expected a function, got {type_name(fn)}")
    if isinstance(fn, Remote):
        try:
            after = call(fn.call_arrays, case, *args)
        except JudgeError as e:
            fail(f"{case}: {e}")
        return [as_plain_tensor(a, case) if a is not None else None for a in after]
    arrays = [a.numpy().copy() for a in args]
    call(fn, case, *arrays)
    return [torch.from_numpy(a) for a in arrays]


def c_program(source, signature: native.Signature, what: str, checked: bool = True):
    """The student's C `source` compiled here, as a program of its own (judging.native)."""
    if not isinstance(source, str) or not source.strip():
        fail(f"{what} should be a string of C source, got {type_name(source)}")
    return native.build(source, signature, what, checked)


def run_c(program, signature: native.Signature, arrays: dict, ints: dict, what: str,
          repeats: int = 1) -> tuple[dict[str, torch.Tensor], float]:
    """One case of a compiled C program (judging.native): the arrays it changed, as
    tensors, and the fastest of `repeats` calls in seconds."""
    out, seconds = native.run(program, signature,
                              {k: v.numpy() if isinstance(v, torch.Tensor) else v
                               for k, v in arrays.items()}, ints, what, repeats)
    return {k: torch.from_numpy(v) for k, v in out.items()}, seconds


def call_traced(fn: Callable, case: str, *args, **kwargs) -> "Traced":
    """Call the student's tensor function once with every ATen operation it runs recorded
    (judging.traces), and judge the record here, where the student's code cannot reach:
    an operation the active watch refuses fails the check, and the value is the record
    run by this process. Call `.follows(reference)` on the result, outside the watch."""
    if not callable(fn):
        fail(f"expected a function, got {type_name(fn)}")
    record = fn.traced if isinstance(fn, Remote) else _trace_here(fn)

    def tracer(*a, **k):
        try:
            return record(*a, **k)
        except traces.NotATensor as e:  # the same class when judged (judge._KNOWN_ERRORS)
            fail(f"{case} {e}")
    try:
        graph = call(tracer, case, *args, **kwargs)
    except JudgeError as e:
        fail(f"{case}: {e}")
    recorder = active_recorder()
    refused = sorted(graph.op_names() & recorder.names) if recorder is not None else []
    if refused:
        fail(f"{case}: your code calls torch's {refused[0]}, which {recorder.why}")
    tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
    return Traced(graph, case, tensors)


class Traced:
    """A student's call as recorded: `value` is what the record computes here, run when
    first read (after the watch: the replay is the grader's work, not the answer's)."""

    def __init__(self, graph: traces.TracedFunction, case: str, tensors: list):
        self.graph, self.case, self.tensors = graph, case, tensors

    @functools.cached_property
    def value(self):
        return _run(self.graph, self.case, self.tensors)

    def follows(self, reference: Callable) -> None:
        """Fail unless the record, run on fresh tensors of the same shapes, agrees with
        `reference(*those tensors)`: a result computed out of sight of the record (torch
        switched off, NumPy, .item(), a value computed beforehand) arrives as a constant
        and does not follow from new inputs."""
        gen = torch.Generator().manual_seed(len(self.graph.steps))
        fresh = [torch.randn(t.shape, generator=gen, dtype=t.dtype) * 3
                 if t.is_floating_point() else t.clone() for t in self.tensors]
        expected = reference(*[t.clone() for t in fresh])
        again = _run(self.graph, self.case, fresh)
        try:
            agrees = torch.allclose(as_tensor(again, self.case).float(),
                                    expected.detach().float(), atol=1e-3, rtol=1e-3,
                                    equal_nan=True)
        except (CheckFailed, RuntimeError):
            agrees = False
        if not agrees:
            fail(f"{self.case}: your result does not follow from the inputs through torch "
                 "operations: the operations your function ran give a wrong answer for other "
                 "inputs of the same shapes. Compute it from the input tensors with torch "
                 "operations (not .item(), float(), NumPy, or values computed beforehand).")


def _trace_here(fn: Callable) -> Callable:
    def traced(*args, **kwargs):
        return traces.rebuild(traces.describe(fn, args, kwargs))
    return traced


def _run(graph: traces.TracedFunction, case: str, tensors: list):
    """The record run here on copies of its inputs and constants (it may change them)."""
    try:
        return copy.deepcopy(graph)(*[t.clone() for t in tensors])
    except JudgeError as e:
        fail(f"{case}: {e}")
    except Exception as e:  # noqa: BLE001 - the recorded operations, replayed
        fail(f"{case}: replaying the operations your function ran failed: "
             f"{type(e).__name__}: {str(e)[:300]}")


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


_STRUCTURES: dict[str, tuple] = {}  # a reference's structure, by its case


def expect_same_layers(block, reference: Callable[[], nn.Module], x: torch.Tensor,
                       case: str) -> None:
    """Fail unless the block has the reference's structure (judging.structure): the kind of
    every layer, activation, pooling and join, and what feeds each. The message names the
    first place where the block departs, never the reference itself."""
    graph = block if isinstance(block, graphs.GraphModel) else as_graph(block, (x,), case)
    key = f"{case} {tuple(x.shape)}"
    if key not in _STRUCTURES:
        _STRUCTURES[key] = structure.structure(
            graphs.rebuild(graphs.describe(reference().eval(), (x,))))
    difference = structure.first_difference(structure.structure(graph), _STRUCTURES[key])
    if difference:
        fail(f"{case}: your block has {difference}.")


def type_name(value) -> str:
    """The class name of a student's object, also when it stays in the kernel (judged)."""
    return value._type if isinstance(value, Remote) else type(value).__name__


def fmt_call(name: str, *args, **kwargs) -> str:
    """`name(a, b, k=v)` with tensors shown by shape, for failure messages."""
    def show(v):
        if isinstance(v, torch.Tensor):
            return f"<tensor {tuple(v.shape)}>"
        if isinstance(v, bytes | bytearray):  # a file's contents: an ONNX model
            return f"<{len(v):,d} bytes>"
        return repr(v)
    parts = [show(a) for a in args] + [f"{k}={show(v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"
