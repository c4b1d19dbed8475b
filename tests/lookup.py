"""The lazy student who memorises, as a notebook to grade and as calls in this process.

`lookup_notebook(lab)` is the lab's solution with a cell before each test cell that has
hidden checks: it runs those checks in the student's kernel, visible and hidden, and
replaces the checked functions by lookups of the cases they drew (tests/memorise.py),
defined with def so that the grader's clean room grades the lookups too.
`expected_tokens` lists how an honest answer would read in a failure message, to prove
that hidden failures never show one.
"""

import ast
import math
import numbers
from dataclasses import dataclass
from pathlib import Path

import nbformat
import torch

from autograde.course import build

MEMORISE = (Path(__file__).parent / "memorise.py").read_text()


@dataclass(frozen=True)
class HiddenCall:
    """One `check_x(a, b, ..., hidden=True)` line of a lab's hidden tests."""

    grade_id: str
    check: str
    args: tuple[str, ...]       # the positional arguments' names
    kwargs: dict                # the keywords other than hidden
    source: str                 # the call as written


def hidden_calls(lab: str) -> list[HiddenCall]:
    """Every plain hidden check call of the lab's test cells (loops are left out)."""
    calls = []
    for cell in build.source_notebook(lab).cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        if "### BEGIN HIDDEN TESTS" not in cell.source:
            continue
        block = cell.source.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0]
        for node in ast.parse(block).body:
            call = node.value if isinstance(node, ast.Expr) else None
            if isinstance(call, ast.Call) and any(k.arg == "hidden" for k in call.keywords) \
                    and all(isinstance(a, ast.Name) for a in call.args):
                kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords
                          if k.arg != "hidden"}
                calls.append(HiddenCall(gid, call.func.id, tuple(a.id for a in call.args),
                                        kwargs, ast.unparse(call)))
    return calls


def _plain_functions(nb) -> set[str]:
    """Names the notebook binds with a top-level def that stays a Python function (what
    `_seen` records): numba's compiled kernels are left as they are."""
    names = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        names |= {s.name for s in tree.body if isinstance(s, ast.FunctionDef)
                  and "jit" not in " ".join(map(ast.unparse, s.decorator_list))}
    return names


def lookup_notebook(lab: str) -> nbformat.NotebookNode:
    """The lab's solution with every function of a hidden check turned into a lookup: a
    def (which the grader's clean room runs) over the keys recorded at home (data)."""
    nb = build.source_notebook(lab)
    functions = _plain_functions(nb)
    by_cell: dict[str, list[HiddenCall]] = {}
    for call in hidden_calls(lab):
        by_cell.setdefault(call.grade_id, []).append(call)
    cells, honest = [nbformat.v4.new_code_cell(MEMORISE)], set()
    for cell in nb.cells:
        calls = by_cell.get(cell.metadata.get("nbgrader", {}).get("grade_id", ""), [])
        lines = []
        for call in calls:
            mine = [a for a in call.args if a in functions]
            lines += [f"_honest_{a} = {a}" for a in mine if a not in honest]
            honest |= set(mine)
            names = ", ".join(f"_honest_{a}" if a in functions else a for a in call.args)
            extra = "".join(f", {k}={v!r}" for k, v in call.kwargs.items())
            lines += [f"from autograde.checks.{lab} import {call.check}",
                      f"_drawn = _seen({call.check}, {names}{extra})"]
            for i, a in enumerate(call.args):
                if a in functions:
                    lines += [f"_SEEN_{a} = [*globals().get('_SEEN_{a}', []), *_drawn[{i}]]",
                              f"def {a}(*args, **kwargs):",
                              f"    return _lookup(_SEEN_{a}, _honest_{a}, args, kwargs)"]
        if lines:
            cells.append(nbformat.v4.new_code_cell("\n".join(lines)))
        cells.append(cell)
    for i, cell in enumerate(cells):
        cell.id = cell.get("id") or f"lookup-{i}"
    nb.cells = cells
    return nb


def _scalars(value, out: list, limit: int = 2000) -> list:
    if len(out) >= limit:
        return out
    if isinstance(value, torch.Tensor):
        out += value.detach().reshape(-1)[:limit].tolist()
    elif isinstance(value, list | tuple):
        for v in value:
            _scalars(v, out, limit)
    elif isinstance(value, dict):
        for v in value.values():
            _scalars(v, out, limit)
    elif isinstance(value, numbers.Number) and not isinstance(value, bool):
        out.append(value)
    return out


def shown_inputs(args) -> str:
    """The inputs as a failure message shows them: values, tensors by shape."""
    def show(v):
        if isinstance(v, torch.Tensor):
            return f"<tensor {tuple(v.shape)}>"
        if isinstance(v, list | tuple):
            return "(" + ", ".join(show(x) for x in v) + ")"
        if isinstance(v, torch.nn.Module):
            return type(v).__name__
        return repr(v)
    return ", ".join(show(a) for a in args)


def expected_tokens(answer, inputs: str) -> set[str]:
    """How the numbers of an honest answer would read in a message (3 characters or more,
    and not also among the inputs shown)."""
    tokens = set()
    values = _scalars(answer, [])
    inputs += f" {len(values)} {len(values):,d}"  # "n of N values": a size, not a value
    for v in values:
        if isinstance(v, float) and not math.isfinite(v):
            continue
        if float(v).is_integer():
            forms = {str(int(v)), f"{int(v):,d}", f"{float(v):.6g}"}
        else:
            forms = {f"{v:.6g}", f"{v:.4g}"}
        tokens |= {t for t in forms if len(t.lstrip("-")) >= 3 and t not in inputs}
    return tokens
