"""The clean room: a student's definitions run again where this lab's answers do not exist.

A kernel can reach anything in its own process: efflib's reference taken out of its guard,
the refusals switched off, a check's reference imported under the answer's name. So the
grader judges the functions and classes a test reads from a second sandboxed kernel
(`grading.clean_kernel`), in which efflib is a copy whose references for the lab's topics
raise, their source absent (`grading.clean_efflib`), and the lab checks do not exist.

There the notebook's definitions run alone (`definitions`): imports, `def`, `class` and
assignments of constants, lambdas or decorated functions, from every code cell but the
tests. Nothing else runs, so training and plots cost nothing twice. Data the functions
read from the notebook (a tensor, a number, a standard model) is copied in from the
student's kernel as plain data (`judging.wire`), never code.
"""

import ast
import builtins
import types
from dataclasses import dataclass

from IPython.core.inputtransformer2 import TransformerManager

from autograde.judging import kernel_side
from autograde.judging.wire import decode, encode

# a call on the right of an assignment is run only through these (a decorator spelt out)
FACTORIES = {"partial", "njit", "jit", "vectorize", "guvectorize", "wraps", "lru_cache",
             "cache", "staticmethod", "classmethod", "no_grad", "inference_mode",
             "property", "dataclass"}
# what a test may read from the clean room: functions and classes (instances stay data)
DEFINED_TYPES = ("function", "type", "builtin_function_or_method", "CPUDispatcher",
                 "partial", "method", "ABCMeta")


@dataclass(frozen=True)
class Withheld:
    """What a lab's clean room lacks: efflib's references for these `topics`, and every
    function of these efflib `modules` (refused whole in that lab)."""

    topics: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()


def _dotted(node: ast.AST) -> str:
    """The last name of a called expression: `numba.njit(cache=False)` -> 'njit'."""
    while isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def _calls_only_factories(value: ast.AST) -> bool:
    """No call in `value` other than a factory's, lambda bodies aside."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Lambda):
            continue
        if isinstance(node, ast.Call) and _dotted(node.func) not in FACTORIES:
            return False
        stack.extend(ast.iter_child_nodes(node))
    return True


def _names_only(targets) -> bool:
    """Assignment targets that bind names (no attribute or item of something else)."""
    return all(isinstance(t, ast.Name) or (isinstance(t, ast.Tuple | ast.List)
                                            and _names_only(t.elts)) for t in targets)


def _header_is_plain(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> bool:
    """What runs when the def or class statement runs: decorators, defaults, bases."""
    if isinstance(node, ast.ClassDef):
        parts = [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]
    else:
        a = node.args
        every = [*a.posonlyargs, *a.args, *a.kwonlyargs, *filter(None, [a.vararg, a.kwarg])]
        parts = [*node.decorator_list, *a.defaults, *filter(None, a.kw_defaults),
                 *filter(None, [node.returns, *(arg.annotation for arg in every)])]
    return all(_calls_only_factories(p) for p in parts)


def defines(stmt: ast.stmt, in_class: bool = False) -> bool:
    """Whether the clean room runs this top-level statement: imports, def and class
    statements whose header calls nothing but a factory (a class body: definitions
    only), assignments of names to values that call nothing but a factory, and `if` or
    `try` made of these."""
    if isinstance(stmt, ast.Import | ast.ImportFrom):
        return True
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
        return _header_is_plain(stmt)
    if isinstance(stmt, ast.ClassDef):
        return _header_is_plain(stmt) and all(defines(s, in_class=True) for s in stmt.body)
    if isinstance(stmt, ast.Expr) and in_class:
        return isinstance(stmt.value, ast.Constant)  # a docstring
    if isinstance(stmt, ast.Pass):
        return True
    if isinstance(stmt, ast.Assign):
        return _names_only(stmt.targets) and _calls_only_factories(stmt.value)
    if isinstance(stmt, ast.AnnAssign):
        return stmt.value is not None and _names_only([stmt.target]) \
            and _calls_only_factories(stmt.value) and _calls_only_factories(stmt.annotation)
    if isinstance(stmt, ast.If | ast.Try):  # `try: import numba` and the like
        bodies = [stmt.body, stmt.orelse, *([stmt.finalbody] if isinstance(stmt, ast.Try)
                                            else [])]
        bodies += [h.body for h in getattr(stmt, "handlers", [])]
        return _calls_only_factories(getattr(stmt, "test", ast.Constant(None))) and all(
            defines(s, in_class) for body in bodies for s in body)
    return False


def python_of(cell_source: str) -> str:
    """A cell as plain Python (IPython's magics and shell lines made calls, as the kernel
    would run them)."""
    return TransformerManager().transform_cell(cell_source)


def definitions(cells: list[str]) -> list[str]:
    """The statements of `cells` (code cells in order, tests left out) that the clean room
    runs, each as source; a cell that does not parse adds nothing."""
    kept = []
    for source in cells:
        try:
            tree = ast.parse(python_of(source))
        except SyntaxError:
            continue
        kept += [ast.unparse(s) for s in tree.body if defines(s)]
    return kept


# --- in the clean room's kernel -------------------------------------------------------

def request_loop_code(socket_path: str) -> str:
    """The cell the grader runs in the clean room to start `serve` on `socket_path`."""
    return f"__import__({__name__!r}, fromlist=['serve']).serve({socket_path!r})"


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
