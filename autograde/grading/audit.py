"""What the grader reads in the code a student wrote: reaching past the refusals.

The refusals that run in the student's kernel (efflib's guarded references, the
forbidden-op watch) can be switched off by code written against them. The grader
cannot stop that in the kernel, but it reads every cell the student could write, from
the submitted notebook, where the kernel cannot change it, and flags code that no
answer needs: a function's insides (`__closure__`, `__wrapped__`, `__globals__`),
efflib's or torch's functions replaced by assignment, the refusals and the grader's
machinery (`efflib.graded`, `autograde.judging`), the checks' own references, efflib's
private code, what switches the watch off while an answer runs (torch's modes, the
profiler), and code made at run time (`exec`, `eval`, `__import__`, `importlib`,
`sys.modules`, `ctypes`). A finding is evidence for the instructor, with its line, in
similarity.html and in grades.csv's flagged_code.
"""

import ast
import re
from dataclasses import dataclass

from nbgrader.utils import is_grade, is_solution

from autograde.nbgrader_seam.cells import is_test_cell

INSIDES = frozenset({"__closure__", "__wrapped__", "__globals__", "__code__", "__builtins__",
                     "__subclasses__", "__getattribute__", "cell_contents", "__defaults__",
                     "__kwdefaults__", "f_globals", "f_locals", "f_back", "gi_frame"})
RUN_TIME = frozenset({"exec", "eval", "compile", "__import__", "globals", "breakpoint"})
MODULES = {"importlib": "imports by name at run time", "ctypes": "reaches C memory",
           "gc": "walks the interpreter's objects", "inspect": "reads code's insides",
           "autograde": "reaches into the grader's checks or machinery",
           "efflib.graded": "reaches into efflib's refusals"}
LIBRARIES = ("torch", "efflib", "numpy", "numba", "autograde", "builtins", "math", "sys",
             "threading")
# what switches off, while an answer runs, what the watch sees with: torch's function and
# dispatch modes, and the profiler the NumPy refusals use
SWITCHES = frozenset({"setprofile", "settrace", "setprofile_all_threads",
                      "settrace_all_threads", "DisableTorchFunction",
                      "DisableTorchFunctionSubclass", "_disable_current_modes", "_pop_mode",
                      "_pop_mode_temporarily", "_pop_torch_function_stack",
                      "_pop_torch_dispatch_stack", "_unset_dispatch_mode"})
_WORDS = re.compile(r"[A-Za-z_][\w.]*")


@dataclass(frozen=True)
class Finding:
    """Code in `cell` (an answer's grade id, or "cell N" for one the student added) at
    `line` (1-based in the cell) that does what `why` says."""
    cell: str
    line: int
    why: str
    code: str


def student_cells(nb) -> list[tuple[str, str]]:
    """(name, source) of every code cell the student could write: answers and added cells."""
    cells = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader") or {}
        if not isinstance(meta, dict):
            meta = {}  # malformed: read as a cell the student added
        elif is_test_cell(cell) or meta and not is_solution(cell) and not is_grade(cell):
            continue  # the grader's tests, and the lab's own code restored as released
        name = meta.get("grade_id") if isinstance(meta.get("grade_id"), str) else None
        cells.append((name or f"cell {i + 1}", str(cell.source)))
    return cells


def released_lines(nb) -> set[str]:
    """Every line of the released notebook's code: the lab's, not the student's."""
    return {line for c in nb.cells if c.cell_type == "code" for line in c.source.splitlines()}


def audit(nb, released: set[str] = frozenset()) -> list[Finding]:
    """What every cell the student could write does that no answer needs; a line the
    released notebook holds (`released_lines`) is the lab's and is not read."""
    findings = []
    for name, source in student_cells(nb):
        for line, why in read(source):
            text = source.splitlines()[line - 1] if line <= len(source.splitlines()) else ""
            if text not in released:
                findings.append(Finding(name, line, why, text.strip()[:200]))
    return findings


def read(source: str) -> list[tuple[int, str]]:
    """(line, why) of what `source` does past the refusals; by its words where it does
    not parse."""
    lines = [("" if ln.lstrip().startswith(("%", "!")) else ln) for ln in source.splitlines()]
    try:
        tree = ast.parse("\n".join(lines))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return _by_words(lines)
    modules = _imported_libraries(tree)
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        why = _why(node, modules)
        if why:
            found.append((line, why))
    return sorted(set(found))


def _imported_libraries(tree: ast.AST) -> set[str]:
    """Names bound to a library or something of it (`import torch.nn.functional as F`)."""
    names = set(LIBRARIES)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            base = node.module if isinstance(node, ast.ImportFrom) else None
            for alias in node.names:
                root = (base or alias.name).split(".")[0]
                if root in LIBRARIES:
                    names.add(alias.asname or alias.name.split(".")[0])
    return names


def _why(node: ast.AST, modules: set[str]) -> str | None:
    switch = node.attr if isinstance(node, ast.Attribute) else \
        node.id if isinstance(node, ast.Name) else None
    if switch in SWITCHES:
        return f"switches off what the grader watches an answer with ({switch})"
    if isinstance(node, ast.Attribute) and node.attr in INSIDES:
        return f"reads a function's or object's insides (.{node.attr})"
    if isinstance(node, ast.Constant) and isinstance(node.value, str) \
            and set(_WORDS.findall(node.value)) & INSIDES:
        return "names a function's insides in a string"
    if isinstance(node, ast.Name) and node.id in RUN_TIME:
        return f"runs code made at run time ({node.id})"
    if isinstance(node, ast.Attribute) and node.attr == "modules" \
            and isinstance(node.value, ast.Name) and node.value.id == "sys":
        return "reaches modules through sys.modules"
    if isinstance(node, ast.Import | ast.ImportFrom):
        return _why_import(node)
    if isinstance(node, ast.Attribute) and node.attr.startswith("_") \
            and not node.attr.startswith("__") and _root(node) in modules:
        return f"uses a library's private {node.attr}"
    if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
        targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
        for t in targets:
            if isinstance(t, ast.Attribute | ast.Subscript) and _root(t) in modules \
                    and not ast.unparse(t).startswith("torch.backends."):  # cudnn settings
                return "replaces part of a library (torch, efflib, the checks) by assignment"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id in ("setattr", "delattr") and node.args \
            and _root(node.args[0]) in modules:
        return f"replaces part of a library by {node.func.id}"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id in ("getattr", "setattr", "hasattr") and len(node.args) > 1 \
            and _built(node.args[1]):
        return f"{node.func.id} with a name built at run time"
    return None


def _built(name: ast.AST) -> bool:
    """A name made by arithmetic or calls, or an f-string spelling a dunder."""
    if isinstance(name, ast.BinOp | ast.Call | ast.Subscript):
        return True
    return isinstance(name, ast.JoinedStr) and any(
        isinstance(v, ast.Constant) and "__" in str(v.value) for v in name.values)


def _why_import(node: ast.Import | ast.ImportFrom) -> str | None:
    names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
        [a.name for a in node.names]
    for name in names:
        for module, why in MODULES.items():
            if name == module or name.startswith(module + "."):
                return f"{why} (import {name})"
    if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in LIBRARIES:
        switches = [a.name for a in node.names if a.name in SWITCHES]
        if switches:
            return f"switches off what the grader watches an answer with ({switches[0]})"
        private = [a.name for a in node.names if a.name.startswith("_")]
        if private:
            return f"uses a library's private {private[0]}"
    for name in names:
        parts = name.split(".")
        if parts[0] in LIBRARIES and any(p.startswith("_") for p in parts[1:]):
            return f"uses a library's private module (import {name})"
    return None


def _root(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Call):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _by_words(lines: list[str]) -> list[tuple[int, str]]:
    found = []
    for number, line in enumerate(lines, 1):
        words = set(_WORDS.findall(line.split("#")[0]))
        parts = {p for w in words for p in w.split(".")}
        if parts & INSIDES:
            found.append((number, "reads a function's or object's insides"))
        elif parts & SWITCHES:
            found.append((number, "switches off what the grader watches an answer with"))
        elif parts & (RUN_TIME | {"importlib", "ctypes", "autograde", "graded"}):
            found.append((number, "runs code made at run time or reaches the refusals"))
    return found


def flags(findings: dict[str, list[Finding]]) -> dict[str, str]:
    """{student: "q9_int_conv line 3: reads ... ; cell 12 line 1: ..."} for grades.csv."""
    return {s: "; ".join(f"{f.cell} line {f.line}: {f.why}" for f in fs)
            for s, fs in findings.items() if fs}
