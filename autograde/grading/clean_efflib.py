"""efflib as the clean room sees it: this lab's references raise, their source absent.

A copy of efflib in which every function registered with `graded.reference` for one of
the lab's topics, every function such a registration wraps (`numba.njit(_twin)`), and
every function and method of the lab's refused modules keeps its signature and
docstring but its body is one `raise GradedAnswerError`. Everything else is efflib's own
source. The copy is built once per content and topics, read-only, and shown to the clean
room's kernel in place of efflib (`sandbox.policy.Policy.replace`); a copy unused for a
week is removed when a new one is built.
"""

import ast
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from autograde.judging.clean_room import Withheld

EFFLIB = Path(__file__).resolve().parents[2] / "efflib"
ERROR = "_EfflabWithheld"


def _topic(decorator: ast.AST) -> str | None:
    """'t' for `@reference("t")` or `@graded.reference("t")`."""
    if (isinstance(decorator, ast.Call) and decorator.args
            and isinstance(decorator.args[0], ast.Constant)
            and (getattr(decorator.func, "id", None) == "reference"
                 or getattr(decorator.func, "attr", None) == "reference")):
        return str(decorator.args[0].value)
    return None


def _withheld_body(fn: ast.FunctionDef | ast.AsyncFunctionDef, where: str) -> list[ast.stmt]:
    message = (f"efflib's {where}{fn.name} is not available where the grader runs your "
               "answers: this lab asks you to write it yourself.")
    body = ast.parse(f"raise {ERROR}({message!r})").body  # a global: numba compiles it too
    doc = ast.get_docstring(fn, clean=False)
    return ([ast.Expr(ast.Constant(doc))] if doc else []) + body


def _called_at_import(tree: ast.Module) -> set[str]:
    """The module's own functions that run while it is imported (tables built by a
    helper), and those they call in turn."""
    defs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}

    def called(nodes, lambdas: bool = True) -> set[str]:
        names, stack = set(), list(nodes)
        while stack:
            node = stack.pop()
            if isinstance(node, ast.Lambda) and not lambdas:
                continue  # made at import, run later
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id in defs:
                names.add(node.func.id)
            stack.extend(ast.iter_child_nodes(node))
        return names
    found = called([n for n in tree.body if not isinstance(n, ast.FunctionDef | ast.ClassDef)],
                   lambdas=False)
    todo = list(found)
    while todo:
        for name in called([defs[todo.pop()]]) - found:
            found.add(name)
            todo.append(name)
    return found


class _Strip(ast.NodeTransformer):
    def __init__(self, withheld: Withheld, module: str, tree: ast.Module):
        self.topics, self.whole = set(withheld.topics), module in withheld.modules
        self.where, self.classes, self.changed = module + ".", [], False
        # functions a withheld registration wraps: `x = reference("t")(njit(_twin))`
        self.twins = {n.id for node in ast.walk(tree) if isinstance(node, ast.Call)
                      and (_topic(node.func) or "") in self.topics
                      for n in ast.walk(node) if isinstance(n, ast.Name)}
        self.at_import = _called_at_import(tree) if self.whole else set()

    def _withheld(self, fn) -> bool:
        if self.whole and not self.classes and fn.name in self.at_import:
            return False  # the module cannot be imported without it
        return self.whole or fn.name in self.twins or any(
            (_topic(d) or "") in self.topics for d in fn.decorator_list)

    def visit_ClassDef(self, node):
        self.classes.append(node.name)
        self.generic_visit(node)
        self.classes.pop()
        return node

    def visit_FunctionDef(self, node):
        if self._withheld(node):
            where = self.where + "".join(c + "." for c in self.classes)
            node.body = _withheld_body(node, where)
            self.changed = True
            return node
        return self.generic_visit(node) if self.classes else node

    visit_AsyncFunctionDef = visit_FunctionDef


def stripped(source: str, module: str, withheld: Withheld) -> str:
    """`source` of efflib module `module` with its withheld functions' bodies replaced."""
    tree = ast.parse(source)
    strip = _Strip(withheld, module, tree)
    tree = strip.visit(tree)
    if strip.changed and module != "efflib.graded":
        at = 1 if ast.get_docstring(tree) else 0
        while at < len(tree.body) and isinstance(tree.body[at], ast.ImportFrom) \
                and tree.body[at].module == "__future__":
            at += 1
        tree.body.insert(at, ast.parse(
            f"from efflib.graded import GradedAnswerError as {ERROR}").body[0])
    return ast.unparse(ast.fix_missing_locations(tree))


def _module_name(path: Path) -> str:
    parts = path.relative_to(EFFLIB.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


UNUSED_FOR = 7 * 24 * 3600  # seconds: a copy no grading used for a week is removed


def _remove_unused(parent: Path) -> None:
    """Remove the copies in `parent` that no grading has used for `UNUSED_FOR` seconds
    (efflib has changed since, or another lab's grading is long over)."""
    for old in parent.glob("efflab_clean_*"):
        try:
            if old.is_dir() and time.time() - old.stat().st_mtime > UNUSED_FOR:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:  # removed meanwhile, or not ours
            continue


def build(withheld: Withheld, root: str = "") -> Path:
    """The copy of efflib for `withheld` (built once; reused while efflib is unchanged):
    a folder named efflib, readable by the sandbox's user, written by no one."""
    sources = sorted(EFFLIB.rglob("*.py"))
    digest = hashlib.sha256(repr(withheld).encode() + Path(__file__).read_bytes())
    for path in sources:
        digest.update(str(path.relative_to(EFFLIB)).encode() + path.read_bytes())
    home = Path(root or tempfile.gettempdir()) / f"efflab_clean_{digest.hexdigest()[:20]}"
    if (home / "efflib").is_dir():
        os.utime(home)  # in use: its time says when it was last used
        return home / "efflib"
    _remove_unused(home.parent)
    work = Path(tempfile.mkdtemp(prefix="efflab_clean_building_", dir=home.parent))
    try:
        for path in sources:
            target = work / "efflib" / path.relative_to(EFFLIB)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(stripped(path.read_text(), _module_name(path), withheld))
        for folder, _dirs, files in os.walk(work):
            os.chmod(folder, 0o755)
            for name in files:
                os.chmod(Path(folder) / name, 0o444)
        try:
            work.rename(home)
        except OSError:  # another worker built it first: theirs is the same
            shutil.rmtree(work, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return home / "efflib"
