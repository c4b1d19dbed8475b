"""Course gate, through the instructor's grading command (real nbgrader, sandboxed kernels,
judged test cells): solutions earn full marks, blank labs earn zero, labs/ matches a fresh
build, and no hidden test or solution reaches the students."""

import shutil

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograde import build
from autograde.grading.grader import Grader
from autograde.nbgrader_glue import COURSE_ID

LABS = build.lab_names()
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
    grader = Grader(lab, root / "course", workers=2, cell_timeout=120)
    results = grader.run(incoming, progress=False)
    assert [r.status for r in results] == ["graded", "graded"], results
    with Gradebook(grader.db_url, COURSE_ID) as gb:
        cells = {student: {g.name: (g.score, g.max_score, g.auto_score, g.needs_manual_grade)
                           for g in gb.find_submission_notebook(lab, lab, student).grades}
                 for student in ("solution", "blank")}
    autograded = {s: nbformat.read(grader.course / "autograded" / s / lab / f"{lab}.ipynb", 4)
                  for s in ("solution", "blank")}
    return lab, cells, autograded


def auto_cells(cells: dict) -> dict:
    return {name: v for name, v in cells.items() if not v[3]}


def test_solution_earns_full_marks(graded):
    lab, cells, _ = graded
    auto = auto_cells(cells["solution"])
    assert auto, f"{lab} has no autograded cells"
    wrong = {name: v[:2] for name, v in auto.items() if v[0] != v[1]}
    assert not wrong, f"{lab} solution loses marks in (score, max): {wrong}"


def test_blank_lab_earns_zero(graded):
    lab, cells, _ = graded
    auto = auto_cells(cells["blank"])
    earned = {name: v[0] for name, v in auto.items() if v[0] != 0}
    assert not earned, f"{lab} blank lab earns points in {earned}"
    assert sum(v[1] for v in auto.values()) > 0


def test_manual_cells_wait_for_a_person(graded):
    lab, cells, _ = graded
    manual = {name for name, v in cells["solution"].items() if v[3]}
    assert manual, f"{lab} needs at least one hand-graded reflection question"
    assert all(name.startswith("q") for name in manual)


def _errored_cells(nb) -> list[tuple[str, str, dict]]:
    return [(c.id, "".join(o.get("traceback", [""])[-1:])[-300:], c.metadata.get("nbgrader", {}))
            for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if o.output_type == "error"]


def test_solution_runs_without_errors(graded):
    lab, _, autograded = graded
    errors = _errored_cells(autograded["solution"])
    assert not errors, f"{lab} solution raises in cells {errors}"


def test_plots_reach_the_autograded_notebook_once_each(graded):
    """Students see their plots in feedback: images, not `<Figure size ...>` text."""
    lab, _, autograded = graded
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
    lab, _, autograded = graded
    errors = _errored_cells(autograded["blank"])
    outside = [(cid, tb) for cid, tb, meta in errors
               if not (meta.get("solution") or meta.get("grade"))]
    assert not outside, f"{lab} blank lab raises outside answer/test cells: {outside}"
    assert errors, "a blank lab whose tests all pass cannot be graded"


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
