"""The shape of autograde/: imports point one way, no import hides in a function, classes
stay small, grading settings are declared once, and every lab is its own source, checks
module and test file."""

import ast
import dataclasses
import importlib
import re
from pathlib import Path

import pytest

from autograde.course import build, inventory
from autograde.grading.settings import Settings

PACKAGE = build.ROOT / "autograde"
MODULES = sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    """The dotted module name of a source file of this repository."""
    parts = path.relative_to(build.ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> tuple[set[str], list[str]]:
    """autograde modules `path` imports at module level, and imports found in functions."""
    tree = ast.parse(path.read_text())
    known = {module_name(p) for p in MODULES}
    top, nested = set(), []
    funcs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    in_function = {id(n) for f in funcs for n in ast.walk(f) if n is not f}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        if id(node) in in_function:
            nested += names
        else:
            top |= {n for n in names if n in known}
    return top, nested


GRAPH = {module_name(p): imports(p)[0] for p in MODULES}


def test_the_import_graph_has_no_cycle():
    state: dict[str, str] = {}

    def visit(m: str, path: list[str]) -> None:
        if state.get(m) == "done":
            return
        assert state.get(m) != "open", f"import cycle: {' -> '.join(path + [m])}"
        state[m] = "open"
        for n in sorted(GRAPH[m]):
            if n != m:
                visit(n, path + [m])
        state[m] = "done"

    for m in GRAPH:
        visit(m, [])
    assert "autograde.judging.judge" in GRAPH["autograde.grading.judged_cell"]  # not vacuous


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_no_module_imports_inside_a_function(path):
    _, nested = imports(path)
    assert not nested, f"{module_name(path)} imports {nested} inside a function"


def test_judging_stands_below_checks_and_grading():
    """The judge knows nothing of grading, nbgrader or the lab checks built on it."""
    for m, deps in GRAPH.items():
        if m.startswith("autograde.judging"):
            bad = {d for d in deps if not d.startswith("autograde.judging")}
            assert not bad, f"{m} imports {bad}"
        if m.startswith("autograde.checks.lab"):
            # and the modules they hand to answers, which the clean room has and they do not
            bad = {d for d in deps if d.startswith("autograde.")
                   and d not in ("autograde.checks.api", "autograde.checks.models")}
            assert not bad, f"{m} should use the check writer's API only, not {bad}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_classes_stay_small(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ClassDef):
            lines = node.end_lineno - node.lineno + 1
            assert lines <= 125, f"{module_name(path)}.{node.name} has {lines} lines"


@pytest.mark.parametrize("lab", build.lab_names())
def test_each_lab_is_three_files_named_after_it(lab):
    assert build.source_path(lab).is_file()
    assert inventory.checks_module(lab).__file__.endswith(f"autograde/checks/{lab}.py")
    assert (build.ROOT / "tests" / f"test_checks_{lab}.py").is_file()


@pytest.mark.parametrize("lab", build.lab_names())
def test_cells_run_in_the_kernel_only_for_checks_marked_kernel_only(lab):
    """A test cell that is not judged in the grader calls a check marked kernel_only."""
    facts = inventory.facts(lab)
    module = inventory.checks_module(lab)
    cells = {c.metadata["nbgrader"]["grade_id"]: c.source
             for c in build.source_notebook(lab).cells if c.metadata.get("nbgrader")}
    for grade_id in facts.kernel_only:
        called = [n for n in dir(module) if n.startswith("check_") and n in cells[grade_id]]
        assert any(getattr(getattr(module, n), "kernel_only", False) for n in called), \
            f"{grade_id} runs in the kernel but calls no kernel_only check"
    assert facts.judged_points + sum(
        c.metadata["nbgrader"]["points"] for c in build.source_notebook(lab).cells
        if c.metadata.get("nbgrader", {}).get("grade_id") in facts.kernel_only) \
        == facts.auto_points


@pytest.mark.parametrize("lab", build.lab_names())
def test_every_check_of_a_lab_is_marked_as_one(lab):
    """@check makes `hidden=True` hide expected values; a check without it would show them."""
    module = inventory.checks_module(lab)
    checks = [n for n in dir(module) if n.startswith("check_")
              and getattr(getattr(module, n), "__module__", "") == module.__name__]
    assert checks
    unmarked = [n for n in checks if not getattr(getattr(module, n), "is_check", False)]
    assert not unmarked, f"{lab}: {unmarked} lack @check"


@pytest.mark.parametrize("lab", build.lab_names())
def test_labs_that_judge_accuracy_ask_for_the_held_out_digits(lab):
    module = inventory.checks_module(lab)
    judges_accuracy = "expect_test_accuracy(" in Path(module.__file__).read_text()
    assert judges_accuracy == bool(getattr(module, "HELD_OUT_DIGITS", False)), lab


def _answer_functions() -> dict[str, str]:
    """{function name: lab} of every function an answer cell defines."""
    names = {}
    for lab in build.lab_names():
        for cell in build.source_notebook(lab).cells:
            if cell.metadata.get("nbgrader", {}).get("solution") and cell.cell_type == "code":
                for node in ast.parse(cell.source).body:
                    if isinstance(node, ast.FunctionDef):
                        names[node.name] = lab
    return names


def test_efflib_functions_named_as_an_answer_are_guarded():
    """An efflib function with an answer's name is that answer: it must be a graded
    reference, refused inside the answer (tests/test_edition.py finds the twins under
    other names by their code)."""
    answers = _answer_functions()
    assert len(answers) > 40
    twins = []
    for path in sorted((build.ROOT / "efflib").rglob("*.py")):
        module = importlib.import_module(module_name(path))
        for name, fn in vars(module).items():
            if name in answers and callable(fn) and getattr(fn, "__module__", "") == \
                    module.__name__:
                twins.append(name)
                assert hasattr(fn, "__efflib_topic__"), \
                    f"efflib's {module.__name__}.{name} is {answers[name]}'s answer, unguarded"
    assert twins  # e.g. conv_output_size, magnitude_mask: the rule is not vacuous


SETTINGS = {f.name for f in dataclasses.fields(Settings)}


def settings_declared(path: Path) -> list[str]:
    """Where `path` declares a grading setting with a default of its own: a parameter, a
    class attribute (a trait, a dataclass field) or a command-line option of that name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args
            defaulted = [*args.args[len(args.args) - len(args.defaults):],
                         *(a for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
                           if d is not None)]
            found += [f"{node.name}({a.arg}=...)" for a in defaulted if a.arg in SETTINGS]
        elif isinstance(node, ast.ClassDef):
            for stmt in node.body:
                targets = (stmt.targets if isinstance(stmt, ast.Assign) else
                           [stmt.target] if isinstance(stmt, ast.AnnAssign) and stmt.value
                           else [])
                found += [f"{node.name}.{t.id}" for t in targets
                          if isinstance(t, ast.Name) and t.id in SETTINGS]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value.startswith("--") and node.value[2:].replace("-", "_") in SETTINGS:
            found.append(f"option {node.value}")
    return found


def test_grading_settings_are_declared_once():
    """Every grading setting's default lives in grading.settings.Settings and nowhere else
    (it was declared in six places, with 3072 typed six times)."""
    home = PACKAGE / "grading" / "settings.py"
    assert len(settings_declared(home)) >= len(SETTINGS)  # the rule can see a declaration
    elsewhere = {module_name(p): found for p in MODULES
                 if p != home and (found := settings_declared(p))}
    assert not elsewhere, f"grading settings declared outside grading.settings: {elsewhere}"


# the one decision still read from words: SQLite's "database is locked" reaches the grader
# only as text in nbgrader's log (nbgrader catches the exception and logs it)
WORDS_ALLOWED = {("autograde.grading.grader", "database is locked")}
_MESSAGES = {"reason", "problem", "evalue", "text", "log", "stderr", "stdout", "message"}


def phrases_searched(path: Path) -> list[str]:
    """Phrases `path` looks for in a message: `"words" in str(e)`, `"words" in x.reason`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant)
                and isinstance(node.left.value, str) and " " in node.left.value.strip()):
            continue
        for op, right in zip(node.ops, node.comparators, strict=True):
            in_str = (isinstance(right, ast.Call) and isinstance(right.func, ast.Name)
                      and right.func.id == "str")
            in_message = isinstance(right, ast.Attribute) and right.attr in _MESSAGES
            if isinstance(op, ast.In | ast.NotIn) and (in_str or in_message):
                found.append(node.left.value)
    return found


def test_grading_decides_on_records_not_on_the_words_of_a_message():
    """Rewording a message must not change what the grader does: outcomes are records
    (grading.outcome), submissions say whether they are readable."""
    searched = {(module_name(p), phrase) for p in MODULES for phrase in phrases_searched(p)}
    assert ("autograde.grading.grader", "database is locked") in searched  # the rule sees it
    assert searched == WORDS_ALLOWED, searched - WORDS_ALLOWED


# where this process's environment may change: each is a process's own start, or the block
# in which a child process (the kernel launcher) is started and reads it
ENVIRON_CHANGED = {
    "autograde.sandbox.environ": "temporary_environ, the one helper for a block",
    "autograde.grading.workers": "a grading worker process's own start",
    "autograde.grading.cluster": "a Dask worker process's own start",
    "autograde.sandbox.kernel": "the kernel launcher, before it execs the kernel",
}


def environ_changes(path: Path) -> list[int]:
    """Lines of `path` that change os.environ: assign or delete an item, update, pop,
    setdefault, clear, putenv."""
    def is_environ(node) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == "environ"
                and isinstance(node.value, ast.Name) and node.value.id == "os")
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        targets = (node.targets if isinstance(node, ast.Assign | ast.Delete)
                   else [node.target] if isinstance(node, ast.AugAssign) else [])
        if any(isinstance(t, ast.Subscript) and is_environ(t.value) for t in targets):
            lines.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
                (is_environ(node.func.value) and node.func.attr in
                 ("update", "pop", "setdefault", "clear", "popitem"))
                or (isinstance(node.func.value, ast.Name) and node.func.value.id == "os"
                    and node.func.attr in ("putenv", "unsetenv"))):
            lines.append(node.lineno)
    return lines


def test_the_environment_changes_only_where_a_process_boundary_needs_it():
    """Issue 30: the grading folder went from module to module as EFFLAB_COURSE_ROOT, and two
    modules saved and restored os.environ by hand. Values inside the grader travel as
    arguments or config (grading.course_folder); the environment is for child processes."""
    changed = {module_name(p): lines for p in MODULES if (lines := environ_changes(p))}
    assert set(ENVIRON_CHANGED) <= set(changed)  # the rule sees each of them
    assert set(changed) == set(ENVIRON_CHANGED), {
        m: lines for m, lines in changed.items() if m not in ENVIRON_CHANGED}
    read = [module_name(p) for p in MODULES if "EFFLAB_COURSE_ROOT" in p.read_text()]
    assert not read, f"still read from the environment: {read}"


def test_judging_names_no_check_module():
    """Issue 30: judging/layers.py listed check modules' classes by name and imported them
    at run time (a circle the import graph did not show); checks register them instead."""
    named = {(module_name(p), name) for p in (PACKAGE / "judging").glob("*.py")
             for name in re.findall(r"autograde\.checks\.\w+", p.read_text())
             if name != "autograde.checks.api"}  # a docstring's pointer to the checks' side
    assert not named, named
