"""The clean room: a student's definitions run again where this lab's answers do not exist.

A kernel can reach anything in its own process: efflib's reference taken out of its guard,
the refusals switched off, a check's reference imported under the answer's name. So the
grader judges the functions and classes a test reads from a second sandboxed kernel
(`grading.clean_kernel`), in which efflib is a copy whose references for the lab's topics
raise, their source absent (`grading.clean_efflib`), and the lab checks do not exist.

There the notebook's definitions run alone (`judging.definitions`): imports, `def`, `class` and
assignments of constants, lambdas or decorated functions, from every code cell but the
tests. Nothing else runs, so training and plots cost nothing twice. Data the functions
read from the notebook (a tensor, a number, a standard model) is copied in from the
student's kernel as plain data (`judging.wire`), never code.
"""

import builtins
import types
from dataclasses import dataclass

from autograde.judging import kernel_side
from autograde.judging.wire import decode, encode


@dataclass(frozen=True)
class Withheld:
    """What a lab's clean room lacks: efflib's references for these `topics`, and every
    function of these efflib `modules` (refused whole in that lab)."""

    topics: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()


# --- in the clean room's kernel -------------------------------------------------------

def serve(path: str) -> None:
    """Answer the grader: the kernel side's requests, and `answer`'s own."""
    kernel_side.serve(path, answer)


def _read_globals(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _read_globals(const)
    return names


def missing(namespace: dict) -> list[str]:
    """Names the defined functions read that are neither defined here nor builtins: the
    grader copies those that are plain data in the student's kernel."""
    wanted: set[str] = set()
    for value in list(namespace.values()):
        fns = [value] if isinstance(value, types.FunctionType) else \
            [v for v in vars(value).values() if isinstance(v, types.FunctionType)] \
            if isinstance(value, type) else []
        for fn in fns:
            if fn.__globals__ is namespace:
                wanted |= _read_globals(fn.__code__)
    return sorted(n for n in wanted if n not in namespace and not hasattr(builtins, n)
                  and not n.startswith("__"))


def answer(req: dict, namespace: dict) -> dict:
    """The clean room's own requests: run definitions, name what they miss, take data."""
    op = req.get("op")
    if op == "define":
        failed = []
        for i, source in enumerate(req["statements"]):
            try:
                exec(compile(source, f"<definition {i + 1}>", "exec"), namespace)  # noqa: S102
            except BaseException as e:  # noqa: BLE001 - one definition fails, not the room
                failed.append(f"{source.splitlines()[0][:80]}: {type(e).__name__}: "
                              f"{str(e)[:200]}")
        return {"value": encode(failed)}
    if op == "missing":
        return {"value": encode(missing(namespace))}
    if op == "set":
        try:
            for name, value in decode(req["values"]).items():
                namespace[str(name)] = value
        except Exception as e:  # noqa: BLE001 - the grader's data, refused
            return {"error": {"type": type(e).__name__, "message": str(e)[:500]}}
        return {"value": None}
    return kernel_side.answer(req, namespace)
