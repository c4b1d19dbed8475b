"""Everything efflab asks of nbgrader: the course id, test cells, the grading config, the CLI.

nbgrader stays the engine (gradebook, restoring test cells, scoring, feedback).
The grading folder's settings are a traitlets `Config` built here from classes;
workers use it as it is, and it is also written as `nbgrader_config.json` for
the nbgrader commands an instructor runs in that folder.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbformat.notebooknode import NotebookNode
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearHiddenTests,
    GetGrades,
    IgnorePattern,
    LimitOutput,
    SaveAutoGrades,
)
from nbgrader.utils import is_grade, is_solution
from traitlets.config import Config

# nbgrader's default course id "" creates no course row: SQLite does not mind, but
# PostgreSQL's foreign keys refuse every assignment
COURSE_ID = "efflab"
CONFIG_FILE = "nbgrader_config.json"


class NbgraderError(RuntimeError):
    """An nbgrader command failed; the message holds its command and output."""


def is_test_cell(cell) -> bool:
    """A graded cell the student cannot answer in: nbgrader's autograder tests."""
    return cell.cell_type == "code" and is_grade(cell) and not is_solution(cell)


def is_answer_cell(cell) -> bool:
    """A code cell the student answers in (nbgrader's solution cells)."""
    return cell.cell_type == "code" and is_solution(cell)


def grade_id(cell) -> str:
    return str(cell.metadata.get("nbgrader", {}).get("grade_id", ""))


def answer_and_test_ids(nb) -> tuple[list[str], list[str]]:
    """The grade ids of the notebook's answer cells and of its test cells, in order."""
    return ([grade_id(c) for c in nb.cells if is_answer_cell(c)],
            [grade_id(c) for c in nb.cells if is_test_cell(c)])


def side_cell(run, nb, resources, source: str, index: int) -> str:
    """Run `source` in the kernel as a cell of the grader's at `index` with `run` (an
    Execute's `preprocess_cell`), leaving the notebook as it was; what it printed."""
    cell = NotebookNode(cell_type="code", source=source, metadata={}, outputs=[],
                        execution_count=None)
    saved = nb.cells[index]
    try:
        run(cell, resources, index)
    finally:
        nb.cells[index] = saved  # nbclient stored our cell at this index
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def grading_config(root: Path, db_url: str, settings: dict, execute: type,
                   feedback: list[type], notes: tuple[type, ...] = ()) -> Config:
    """nbgrader's settings for a grading folder: `execute` runs the notebook in place of
    nbgrader's Execute step with the grading `settings` (grading.settings.Settings, as a
    dict: one trait), `notes` add to the graded notebook after it, `feedback` are the
    preprocessors that shape what students see of it (after nbgrader has read the
    grades). The feedback page's template is not among them: the formgrader reads this
    file too and must keep its own (`feedback.page_args`)."""
    c = Config()
    c.CourseDirectory.root = str(root)
    c.CourseDirectory.source_directory = "source"
    c.CourseDirectory.release_directory = "release"
    c.CourseDirectory.db_url = db_url
    c.CourseDirectory.course_id = COURSE_ID
    # the course hands out labs by git, not by nbgrader's exchange; a folder of its own
    # keeps the formgrader from warning that the default one is missing
    c.Exchange.root = str(root / "exchange")
    c.Autograde.autograde_preprocessors = [
        execute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput, *notes,
        SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    c[execute.__name__].settings = dict(settings)
    for step in (execute, *notes):  # those that read or write inside the grading folder
        if "course_root" in step.class_trait_names():
            c[step.__name__].course_root = str(root)
    c.GenerateFeedback.preprocessors = [GetGrades, CSSHTMLHeaderPreprocessor, *feedback,
                                        ClearHiddenTests]
    # every page rendered from a submission (feedback, the formgrader) passes what the
    # student wrote through an allow-list: markdown, HTML outputs, math (grading.sanitize)
    c.HTMLExporter.sanitize_html = True
    c.HTMLExporter.filters = {name: f"autograde.grading.sanitize.{name}"
                              for name in ("markdown2html", "clean_html")}
    return c


def write_config(config: Config, folder: Path) -> Path:
    """`config` as `nbgrader_config.json` in `folder` (classes become dotted names)."""
    def plain(value):
        if isinstance(value, type):
            return f"{value.__module__}.{value.__qualname__}"
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    path = folder / CONFIG_FILE
    path.write_text(json.dumps(plain(config), indent=1) + "\n")
    return path


def env() -> dict[str, str]:
    """This interpreter's bin folder first on PATH: nbgrader shells out to `alembic`."""
    bindir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": os.pathsep.join([bindir, os.environ.get("PATH", "")])}


def run(root: Path, *args: str, timeout: float | None = None,
        extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`nbgrader ARGS` for the course rooted at `root`; raises NbgraderError on failure."""
    cmd = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={root}"]
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True,
                          env={**env(), **(extra_env or {})}, timeout=timeout)
    if done.returncode != 0:
        raise NbgraderError(f"nbgrader {' '.join(args)} failed (exit {done.returncode}):\n"
                            f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done


def gradebook(db_url: str) -> Gradebook:
    """The course's gradebook (a context manager)."""
    return Gradebook(db_url, COURSE_ID)


def register_students(db_url: str, students: list[str]) -> None:
    """Every student in the gradebook, named after their submission (the formgrader shows
    "None, None" for a student without a name); a name given in the formgrader is kept."""
    with gradebook(db_url) as gb:
        for student in students:
            try:
                named = gb.find_student(student).last_name is not None
            except MissingEntry:
                named = False
            if not named:
                gb.update_or_create_student(student, last_name=student, first_name="")


def zero_scores(db_url: str, lab: str, student: str) -> None:
    """Every grade of a student whose notebook could not be graded is 0, not missing."""
    with gradebook(db_url) as gb:
        try:
            sub = gb.update_or_create_submission(lab, student)
        except MissingEntry:
            return
        for nb in sub.notebooks:
            for grade in nb.grades:
                grade.auto_score = 0
                grade.needs_manual_grade = False
        gb.db.commit()


def by_hand(grade) -> bool:
    """A written answer a person grades (a markdown cell), not a test cell. nbgrader gives an
    unchanged one an automatic 0, so the automatic score cannot tell them apart."""
    return grade.cell.cell_type == "markdown"


def zero_deleted_tests(db_url: str, lab: str, student: str) -> list[str]:
    """Score 0 for each test cell missing from a graded submission (deleted, or a release
    from before the question was added), and return their grade ids. nbgrader leaves such
    a grade unscored and waiting for a person, so the formgrader, grades.csv and the
    export would show it pending; no person can grade a cell that is not there."""
    with gradebook(db_url) as gb:
        try:
            nb = gb.find_submission_notebook(lab, lab, student)
        except MissingEntry:
            return []
        missing = [g for g in nb.grades if not by_hand(g) and g.auto_score is None
                   and g.manual_score is None]
        for grade in missing:
            grade.auto_score = 0
            grade.needs_manual_grade = False
        gb.db.commit()
        return [g.name for g in missing]


class Mark(NamedTuple):
    """One graded cell of one student: points earned, points possible, and whether it still
    waits for a person (a reflection before hand grading)."""

    score: float
    max: float
    pending: bool = False
    manual: bool = False  # a written answer graded by a person


def natural(name: str) -> list:
    """Sort key of a grade id in the lab's order: q2_a before q10_b."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def scores(db_url: str, lab: str, students: list[str]):
    """{student: {grade_id: Mark}} and the ordered grade ids, from the gradebook."""
    found, ids = {}, []
    with gradebook(db_url) as gb:
        for student in students:
            try:
                nb = gb.find_submission_notebook(lab, lab, student)
            except MissingEntry:
                found[student] = {}
                continue
            found[student] = {g.name: Mark(float(g.score or 0), float(g.max_score),
                                           bool(g.needs_manual_grade), by_hand(g))
                              for g in nb.grades}
            ids = ids or sorted((g.name for g in nb.grades), key=natural)
    return found, ids


def error_output(ename: str, evalue: str):
    """An error output: nbgrader scores the test cell that holds one as failed."""
    return NotebookNode(output_type="error", ename=ename, evalue=evalue,
                        traceback=[f"{ename}: {evalue}"])
