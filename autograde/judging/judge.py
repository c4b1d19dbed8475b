"""The grader side of judging: which test cells are judged, and running one here.

Names the cell reads from the notebook arrive as plain data (ints, floats,
strings, tuples, lists, dicts, tensors, standard layer trees) or, for functions,
as `Remote` handles: calling one asks the kernel to call the student's function
and send back plain data. Every comparison and every verdict happens here.
"""

import ast
import builtins
import contextlib
import importlib
import io
import re
from collections.abc import Callable

import torch.nn as nn

from autograde.judging import graphs, layers, traces
from autograde.judging.definitions import DEFINED_TYPES
from autograde.judging.values import CheckFailed, JudgeError, NotAnswered
from autograde.judging.watch import active_recorder, judging
from autograde.judging.wire import decode, encode
from efflib.graded import GradedAnswerError

_KNOWN_ERRORS = {"CheckFailed": CheckFailed, "NotAnswered": NotAnswered,
                 "GradedAnswerError": GradedAnswerError, "NotATensor": traces.NotATensor}


_KEPT: list[str] = []  # the cases whose module arguments must keep their parameter objects


@contextlib.contextmanager
def parameters_kept(case: str):
    """Within the block, a call that replaces a parameter of a module argument fails."""
    _KEPT.append(case)
    try:
        yield
    finally:
        _KEPT.pop()


def replaced_message(case: str, names: list[str]) -> str:
    return (f"{case}: the call replaced the parameter {names[0]} by a new object"
            f"{f' (and {len(names) - 1} more)' if len(names) > 1 else ''}; an optimizer made "
            "before it still holds the old one and stops training that layer. Change the "
            "weights in place (`weight.mul_(mask)` under torch.no_grad()).")


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

    def call_arrays(self, *args):
        """This compiled function of the student's, called on NumPy copies of `args`
        (tensors); the arrays as the call left them."""
        return self._session.call_arrays(self._ref, args)

    def traced(self, *args, **kwargs):
        """One call of this function of the student's, as the operations it ran
        (judging.traces), rebuilt for the grader to run."""
        return self._session.trace(self._ref, args, kwargs)

    def as_graph(self, *example_args):
        """This module of the student's as a graph the grader runs (judging.graphs)."""
        return self._session.export(self._ref, example_args)

    def __getattr__(self, name):  # checks that need a live object run in the kernel
        raise TypeError(f"the grader cannot use .{name} of the student's {self._type}; "
                        "this check must run in the kernel (mark it kernel_only)")


def _student_error(name: str, message: str) -> BaseException:
    """The exception the student's code raised, rebuilt from its name and message."""
    cls = _KNOWN_ERRORS.get(name) or getattr(builtins, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        safe = re.sub(r"\W", "_", name)[:60] or "Error"
        cls = type(safe, (Exception,), {})
    return cls(message)


class Session:
    """One judged test cell: `ask(request) -> answer` reaches the kernel."""

    def __init__(self, ask: Callable[[dict], dict], room=None):
        self.ask = ask
        self.clean_room = room  # where functions and classes come from, if anywhere

    def _ref(self, ref: int, type_name: str, is_callable: bool) -> Remote:
        return Remote(self, ref, type_name, is_callable)

    def _answer(self, request: dict, synced: tuple = ()):
        """The kernel's answer; its error raised here, after the modules among `synced`
        (the call's arguments) took the state the call left them in."""
        answer = self.ask(request)
        if not isinstance(answer, dict):
            raise JudgeError("no valid answer from the kernel")
        after = answer.get("after")
        for arg, state in zip(synced, after if isinstance(after, list) else [], strict=False):
            if isinstance(arg, nn.Module) and state is not None:  # changed in place there
                theirs = decode(state)
                if type(theirs) is type(arg):
                    layers.sync(arg, theirs)
        replaced = answer.get("replaced")
        if _KEPT and isinstance(replaced, list) and replaced:
            raise CheckFailed(replaced_message(_KEPT[-1], [str(n)[:100] for n in replaced]))
        if "error" in answer:
            err = answer["error"] if isinstance(answer["error"], dict) else {}
            raise _student_error(str(err.get("type", "Error"))[:80],
                                 str(err.get("message", ""))[:2000])
        return answer

    def get(self, name: str, clean: bool = True):
        """`name` from the notebook; a function or class from the clean room, if there is
        one (judging.clean_room), and `clean`."""
        answer = self._answer({"op": "get", "name": name})
        value = decode(answer.get("value"), self._ref)
        if clean and self.clean_room is not None and isinstance(value, Remote) \
                and value._callable and value._type in DEFINED_TYPES:
            return self.clean_room.get(name)
        return value

    def _watched(self, op: str, ref: int, args, kwargs) -> dict:
        """The kernel's answer to calling `ref` under the active watch, its record kept;
        module arguments take the state the call left them in, even when it raised."""
        recorder = active_recorder()
        spec = recorder.spec() if recorder is not None else None
        answer = self._answer({"op": op, "ref": ref, "args": encode(list(args)),
                               "kwargs": encode(dict(kwargs)), "watch": spec},
                              synced=tuple(args))
        if recorder is not None:
            called = answer.get("called", [])
            recorder.called.update(str(c)[:100] for c in called if isinstance(c, str))
        return answer

    def call(self, ref: int, args, kwargs):
        answer = self._watched("call", ref, args, kwargs)
        return decode(answer.get("value"), self._ref)

    def call_arrays(self, ref: int, args) -> list:
        answer = self._watched("call_arrays", ref, args, {})
        value = decode(answer.get("value"))
        if not isinstance(value, list) or len(value) != len(args):
            raise JudgeError("no valid answer from the kernel")
        return value

    def trace(self, ref: int, args, kwargs) -> traces.TracedFunction:
        answer = self._watched("trace", ref, args, kwargs)
        return traces.rebuild(decode(answer.get("value")))

    def export(self, ref: int, example_args: tuple):
        answer = self._answer({"op": "export", "ref": ref, "args": encode(list(example_args))})
        return graphs.rebuild(decode(answer.get("value")))


def judged_checks(source: str) -> list[str] | None:
    """The autograde check functions a test cell calls, or None if it must run in the
    kernel (a kernel-only check, or code other than imports and check calls)."""
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
        elif isinstance(node, ast.arg):
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
