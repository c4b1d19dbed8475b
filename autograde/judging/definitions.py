"""Which statements of a notebook the clean room runs (`judging.clean_room`), what they bind,
and, for Validate, which functions a test reads that they do not bind.

Torch-free: the student's JupyterLab server reads notebooks with it. Grading judges the
functions and classes a test reads from a clean room that runs only these definitions,
so an answer bound otherwise (`f = make_f()`) is missing there; Validate says so in the
test cell (`not_defined`, run in the student's kernel), as grading will.
"""

import ast
import json
import sys

from IPython.core.inputtransformer2 import TransformerManager

# a call on the right of an assignment is run only through these (a decorator spelt out)
FACTORIES = {"partial", "njit", "jit", "vectorize", "guvectorize", "wraps", "lru_cache",
             "cache", "staticmethod", "classmethod", "no_grad", "inference_mode",
             "property", "dataclass"}
# what a test may read from the clean room: functions and classes (instances stay data)
DEFINED_TYPES = ("function", "type", "builtin_function_or_method", "CPUDispatcher",
                 "partial", "method", "ABCMeta")


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


def _branches(stmt: ast.If | ast.Try) -> list[list[ast.stmt]]:
    """The statement lists of an `if` or `try`: body, else, finally and handlers."""
    return [stmt.body, stmt.orelse, getattr(stmt, "finalbody", []),
            *(h.body for h in getattr(stmt, "handlers", []))]


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
        return _calls_only_factories(getattr(stmt, "test", ast.Constant(None))) and all(
            defines(s, in_class) for body in _branches(stmt) for s in body)
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


def not_defined_message(name: str, why: str = "") -> str:
    """What a test that reads `name` is told when the clean room lacks it."""
    return (f"`{name}` is not defined where the grader runs your answers on their own: it "
            "runs your cells' imports, def and class statements and assignments of "
            "constants, nothing else" + (f" ({why})" if why else "")
            + f". Define {name} with def (or class) in its answer cell.")


def _bound_by(stmt: ast.stmt) -> set[str]:
    """The names a statement the clean room runs binds."""
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {stmt.name}
    if isinstance(stmt, ast.Import | ast.ImportFrom):
        return {a.asname or a.name.split(".")[0] for a in stmt.names if a.name != "*"}
    if isinstance(stmt, ast.Assign | ast.AnnAssign):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    if isinstance(stmt, ast.If | ast.Try):  # its branches' statements, not their insides
        return {name for body in _branches(stmt) for s in body for name in _bound_by(s)}
    return set()


def bound(statements: list[str]) -> set[str]:
    """The names the clean room's statements (`definitions`) bind."""
    return {name for source in statements for stmt in ast.parse(source).body
            for name in _bound_by(stmt)}


def read_names(test_source: str) -> set[str]:
    """The names a test cell reads that it does not bind itself (its own imports)."""
    try:
        tree = ast.parse(python_of(test_source))
    except SyntaxError:
        return set()
    own = {name for stmt in ast.walk(tree) if isinstance(stmt, ast.stmt)
           for name in _bound_by(stmt)}
    return {n.id for n in ast.walk(tree)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} - own - {"get_ipython"}


def preview_code(names: set[str], defined: set[str], nonce: str) -> str:
    """The side cell Validate runs before a test: it prints, after `nonce`, the names of
    `names` the clean room would lack (`not_defined`)."""
    return (f"__import__({__name__!r}, fromlist=['not_defined']).not_defined("
            f"{sorted(names)!r}, {sorted(defined)!r}, {nonce!r})")


def _globals_read(code) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _globals_read(const)
    return names


def not_defined(names: list[str], defined: list[str], nonce: str) -> None:
    """In the student's kernel: print after `nonce` (as JSON) the functions and classes the
    test reads, or their functions read in turn, that the clean room's statements do not
    bind: grading would find them missing."""
    namespace = get_ipython().user_ns  # noqa: F821 - defined in the kernel
    defined_set, missing, seen = set(defined), [], set()
    todo = list(names)
    while todo:
        name = todo.pop(0)
        if name in seen or name not in namespace:
            continue
        seen.add(name)
        value = namespace[name]
        if type(value).__name__ not in DEFINED_TYPES:
            continue  # data: copied into the clean room
        if name not in defined_set:
            missing.append(name)
            continue
        code = getattr(value, "__code__", None)
        if code is not None and getattr(value, "__globals__", None) is namespace:
            todo += sorted(_globals_read(code))
    sys.stdout.write(f"{nonce} {json.dumps(missing)}\n")
    sys.stdout.flush()


def read_preview(text: str, nonce: str) -> list[str]:
    """The names `not_defined` printed in `text` ([] when it printed nothing readable)."""
    if text.count(nonce) != 1:
        return []
    try:
        names = json.loads(text.split(nonce, 1)[1].split("\n", 1)[0])
    except ValueError:
        return []
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []
