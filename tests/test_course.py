"""Course gate, through the instructor's grading command (real nbgrader, sandboxed kernels,
judged test cells): solutions earn full marks, blank labs earn zero, a lookup of the cases
a student can draw at home earns nothing where hidden cases check it and gives no expected
value away, labs/ matches a fresh build, and no hidden test or solution reaches the
students."""

import csv
import re
import shutil

import nbformat
import pytest
from lookup import hidden_calls, lookup_notebook
from nbgrader.api import Gradebook
from test_hidden_cases import MODULES

from autograde.course import build
from autograde.grading.grader import Grader
from autograde.grading.settings import Settings
from autograde.nbgrader_seam.command import COURSE_ID

LABS = build.lab_names()
STUDENTS = ("solution", "blank", "lookup")
# "expected" followed by a value: how a visible failure shows the answer
SHOWS_EXPECTED = re.compile(r"\bexpected:?\s+[-\d(\[]")
# `make test` runs with `--dist loadfile`: one worker grades these (the graded fixture is
# shared), the Validate test lives in its own file so the other worker runs it meanwhile.
pytestmark = pytest.mark.course


@pytest.fixture(scope="module", params=LABS)
def graded(request, tmp_path_factory):
    """Grade the solution and the blank student release with the instructor's grading
    command (sandboxed kernels, judged test cells), as a class would be graded."""
    lab = request.param
    root = tmp_path_factory.mktemp(lab)
    incoming = root / "incoming"
    incoming.mkdir()
    nbformat.write(build.source_notebook(lab), incoming / "solution.ipynb")
    shutil.copy(build.LABS / lab / f"{lab}.ipynb", incoming / "blank.ipynb")
    nbformat.write(lookup_notebook(lab), incoming / "lookup.ipynb")
    grader = Grader(lab, root / "course", workers=2,
                    settings=Settings(cell_timeout=120))
    results = grader.run(incoming, progress=False)
    assert [r.status for r in results] == ["graded"] * 3, results
    with Gradebook(grader.db_url, COURSE_ID) as gb:
        cells = {student: {g.name: (g.score, g.max_score, g.auto_score, g.needs_manual_grade)
                           for g in gb.find_submission_notebook(lab, lab, student).grades}
                 for student in STUDENTS}
    autograded = {s: nbformat.read(grader.course / "autograded" / s / lab / f"{lab}.ipynb", 4)
                  for s in STUDENTS}
    return lab, cells, autograded, grader.course


def auto_cells(cells: dict) -> dict:
    return {name: v for name, v in cells.items() if not v[3]}


def test_solution_earns_full_marks(graded):
    lab, cells, _, _ = graded
    auto = auto_cells(cells["solution"])
    assert auto, f"{lab} has no autograded cells"
    wrong = {name: v[:2] for name, v in auto.items() if v[0] != v[1]}
    assert not wrong, f"{lab} solution loses marks in (score, max): {wrong}"


def test_blank_lab_earns_zero(graded):
    lab, cells, _, _ = graded
    auto = auto_cells(cells["blank"])
    earned = {name: v[0] for name, v in auto.items() if v[0] != 0}
    assert not earned, f"{lab} blank lab earns points in {earned}"
    assert sum(v[1] for v in auto.values()) > 0


def test_manual_cells_wait_for_a_person(graded):
    lab, cells, _, _ = graded
    manual = {name for name, v in cells["solution"].items() if v[3]}
    assert manual, f"{lab} needs at least one hand-graded reflection question"
    assert all(name.startswith("q") for name in manual)


def _errored_cells(nb) -> list[tuple[str, str, dict]]:
    return [(c.id, "".join(o.get("traceback", [""])[-1:])[-300:], c.metadata.get("nbgrader", {}))
            for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if o.output_type == "error"]


def test_solution_runs_without_errors(graded):
    lab, _, autograded, _ = graded
    errors = _errored_cells(autograded["solution"])
    assert not errors, f"{lab} solution raises in cells {errors}"


def test_plots_reach_the_autograded_notebook_once_each(graded):
    """Students see their plots in feedback: images, not `<Figure size ...>` text."""
    lab, _, autograded, _ = graded
    shown = [o for c in autograded["solution"].cells if c.cell_type == "code"
             for o in c.get("outputs", []) if o.output_type in ("display_data", "execute_result")]
    images = [o for o in shown if "image/png" in o.get("data", {})]
    assert images, f"{lab}: no plot reached the autograded notebook"
    assert not [o for o in shown if "<Figure size" in o.get("data", {}).get("text/plain", "")
                and "image/png" not in o.get("data", {})], f"{lab}: a plot is shown as text"
    for cell in autograded["solution"].cells:  # a figure shown twice in one cell is a bug
        pngs = [o["data"]["image/png"] for o in cell.get("outputs", [])
                if "image/png" in o.get("data", {})]
        assert len(pngs) == len(set(pngs)), f"{lab}: a plot appears twice in {cell.id}"


def test_blank_lab_fails_only_in_answer_and_test_cells(graded):
    lab, _, autograded, _ = graded
    errors = _errored_cells(autograded["blank"])
    outside = [(cid, tb) for cid, tb, meta in errors
               if not (meta.get("solution") or meta.get("grade"))]
    assert not outside, f"{lab} blank lab raises outside answer/test cells: {outside}"
    assert errors, "a blank lab whose tests all pass cannot be graded"
    # JupyterLab's Run All goes on past a cell tagged so (tests/test_browser.py): on a
    # blank lab it reaches the last cell, and the student sees every question's state
    released = {c.id: c for c in nbformat.read(build.LABS / lab / f"{lab}.ipynb", 4).cells}
    stopping = [cid for cid, _, _ in errors
                if build.RUN_ON not in released[cid].metadata.get("tags", [])]
    assert not stopping, f"{lab}: Run All of the blank lab stops at {stopping}"
    unanswered = [tb for cid, tb, meta in errors if meta.get("grade")
                  and "Not answered yet" not in tb and "NotAnswered" not in tb]
    assert not unanswered, f"{lab}: a blank test cell says more than 'not answered yet'"


def test_a_lookup_of_the_cases_drawn_at_home_earns_nothing_where_hidden_cases_check(graded):
    """The lookup attack, graded: with hidden cases drawn from the course's secret, a table
    of the cases a student's own kernel draws misses every hidden check of a function."""
    lab, cells, autograded, _ = graded
    targeted = {c.grade_id for c in hidden_calls(lab) if c.check not in MODULES}
    assert targeted
    kept = {gid: cells["lookup"][gid][0] for gid in targeted if cells["lookup"][gid][0]}
    assert not kept, f"{lab}: a lookup made at home keeps points in {kept}"
    errors = {c.id: o.evalue for c in autograded["lookup"].cells
              for o in c.get("outputs", []) if o.output_type == "error"}
    assert all(gid in errors for gid in targeted), errors


def test_no_hidden_failure_shows_an_expected_value(graded):
    """Everything the lookup student gets back (feedback page, and the instructor's grades
    and summary) fails only hidden cases: none of it shows an expected value."""
    lab, _, _, course = graded
    pages = list((course / "feedback" / "lookup" / lab).glob("*.html"))
    assert pages, "no feedback page for the lookup student"
    reports = course / "reports" / lab
    texts = {p.name: p.read_text() for p in [*pages, reports / "summary.txt"]}
    with open(reports / "grades.csv") as f:
        texts["grades.csv"] = next(r["reason"] for r in csv.DictReader(f)
                                   if r["student"] == "lookup")
    for name, text in texts.items():
        found = SHOWS_EXPECTED.search(text)
        assert not found, f"{lab}: {name} shows {text[found.start():found.start() + 150]!r}"
    assert "which is too" in texts["grades.csv"] or "values are wrong" in texts["grades.csv"]


def test_labs_match_a_fresh_build():
    stale = build.stale_labs()
    assert not stale, f"labs/ is out of date (run `make build` and commit): {stale}"


@pytest.mark.parametrize("lab", LABS)
def test_release_hides_tests_and_solutions(lab):
    text = (build.LABS / lab / f"{lab}.ipynb").read_text()
    for marker in ("BEGIN HIDDEN TESTS", "hidden=True", "BEGIN SOLUTION", "END SOLUTION"):
        assert marker not in text, f"labs/{lab} contains {marker!r}"
    release = nbformat.read(build.LABS / lab / f"{lab}.ipynb", 4)
    source = build.source_notebook(lab)
    assert [c.id for c in release.cells] == [c.id for c in source.cells]
    for rel, src in zip(release.cells, source.cells, strict=True):
        meta = src.metadata.get("nbgrader", {})
        if meta.get("solution"):
            stub = "raise NotImplementedError()" if src.cell_type == "code" else "YOUR ANSWER"
            assert stub in rel.source, f"{lab}:{src.id} has no stub in the release"
        if meta.get("grade") and not meta.get("solution"):
            assert rel.metadata["nbgrader"]["locked"], f"{lab}:{src.id} test cell not locked"


@pytest.mark.parametrize("lab", LABS)
def test_headings_and_points_agree(lab):
    """Each '## Qn. Title (P points)' heading equals the points of its graded cells."""
    import re

    nb = build.source_notebook(lab)
    stated, graded, current = {}, {}, None
    for cell in nb.cells:
        m = re.search(r"^## (Q\d+)\. .*\((\d+) points?", cell.source, re.M)
        if cell.cell_type == "markdown" and m:
            current = m.group(1)
            stated[current] = int(m.group(2))
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            assert meta["grade_id"].lower().startswith(current.lower() + "_"), meta["grade_id"]
            graded[current] = graded.get(current, 0) + meta["points"]
    assert stated == graded
