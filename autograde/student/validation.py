"""What a student's Validate button says: one line per question, passed or not.

nbgrader's Validate dialog lists each failed test cell (its source, then its
error), and says nothing of the questions that pass. `QuestionSummary` runs last
among the Validator's steps in the student's JupyterLab: this module is also a
Jupyter server extension, enabled there by `lab_server`, that hands nbgrader's
Validate handler a `SummarizingValidator`. It puts one line per question into
the first failed cell's error: passed, not answered yet, failed with the check's
message, or a written answer for a person to grade. It empties the other failed
cells' errors, which the dialog's CSS then hides. Grading never runs it.
"""

import re
import secrets

from nbformat import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import CheckCellMetadata, ClearOutput, Execute, NbGraderPreprocessor
from nbgrader.server_extensions.validate_assignment import handlers
from nbgrader.validator import Validator
from traitlets import List

from autograde.headings import headings
from autograde.judging import answer_pairs, definitions
from autograde.nbgrader_seam.cells import (
    answer_and_test_ids,
    grade_id,
    is_answer_cell,
    is_test_cell,
    side_cell,
)

TIMED_OUT = ("CellTimeoutError",)  # nbclient's error for a cell past Validate's time limit
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _status(cell) -> str:
    """One test cell's verdict: "passed", "not answered yet" or "failed: MESSAGE"."""
    errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
    if not errors:
        return "passed"
    if any(o.get("ename") in TIMED_OUT for o in errors):
        return "failed: ran out of time and was stopped (an endless loop?)"
    error = errors[0]
    message = _ANSI.sub("", str(error.evalue)).splitlines()[0] if error.evalue else ""
    if error.ename in ("NotImplementedError", "NotAnswered"):  # checks.api.call says so
        return "not answered yet"
    return f"failed: {message[:300] or error.ename}"


def summary(nb) -> list[str]:
    """One line per question of an executed notebook, in the notebook's order."""
    verdicts: dict[str, list[str]] = {}
    title = "Before the questions"
    for cell in nb.cells:
        if cell.cell_type == "markdown" and (heads := headings(cell.source)):
            title = heads[0].label
        if not utils.is_grade(cell):
            continue
        if cell.cell_type == "code":
            verdicts.setdefault(title, []).append(_status(cell))
        else:
            score, _ = utils.determine_grade(cell)
            verdicts.setdefault(title, []).append(
                "not answered yet" if score == 0 else "written answer, graded by a person")
    lines = []
    for title, found in verdicts.items():
        worst = next((v for v in found if v.startswith("failed")), None) or next(
            (v for v in found if v != "passed"), "passed")
        mark = {"passed": "✓"}.get(worst, "·" if "person" in worst else "✗")
        lines.append(f"{mark} {title}: {worst}")
    return lines


def timed_out(nb) -> list[str]:
    """A line for each cell that Validate's time limit stopped, naming it."""
    lines = []
    for i, cell in enumerate(nb.cells):
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        if cell.cell_type == "code" and any(o.get("ename") in TIMED_OUT for o in errors):
            name = grade_id(cell) if "nbgrader" in cell.metadata else f"cell {i + 1}"
            lines.append(f"⏱ {name} ran out of time and was stopped (an endless loop?)")
    return lines


class QuestionSummary(NbGraderPreprocessor):
    """The last of the Validator's steps: the per-question lines in the first failure."""

    def preprocess(self, nb, resources):
        failed = [c for c in nb.cells if utils.is_grade(c) and c.cell_type == "code"
                  and any(o.output_type == "error" for o in c.get("outputs", []))]
        if not failed:
            return nb, resources  # nothing failed: nbgrader's own "Success!" (or the
            # unanswered written question) says it
        lines = timed_out(nb) + summary(nb)
        for cell in failed:
            errors = [o for o in cell.outputs if o.output_type == "error"]
            # a timed-out cell has two errors (the time limit's, then the interrupted
            # kernel's): one is kept, and the summary is said once
            cell.outputs = [o for o in cell.outputs if o.get("name") != "stderr"
                            and (o.output_type != "error" or o is errors[0])]
            errors[0].traceback = lines if cell is failed[0] else []
        for cell in nb.cells:  # already a line above: not listed again on its own
            if utils.is_grade(cell) and cell.cell_type == "markdown":
                cell.source += "\n"
        return nb, resources


class RecordingExecute(Execute):
    """nbgrader's Execute that records what each answer cell calls and tells the kernel
    which answer cells a test cell judges, so Validate refuses what grading refuses
    (judging.answer_cells); and fails a test that reads a function the grader's clean room
    would not have (judging.definitions), as grading will."""

    def preprocess(self, nb, resources=None, km=None):
        self._answer_ids, self._test_ids = answer_and_test_ids(nb)
        self._defined = definitions.bound(definitions.definitions(
            [c.source for c in nb.cells if c.cell_type == "code" and not is_test_cell(c)]))
        return super().preprocess(nb, resources, km)

    def preprocess_cell(self, cell, resources, index):
        def side(source: str) -> str:
            return side_cell(super(RecordingExecute, self).preprocess_cell, self.nb,
                             resources, source, index)

        if is_answer_cell(cell):
            side(answer_pairs.begin_code(grade_id(cell)))
            done = super().preprocess_cell(cell, resources, index)
            side(answer_pairs.end_code(secrets.token_hex(16)))
            return done
        if is_test_cell(cell):
            side(answer_pairs.use_code(answer_pairs.answers_of(
                grade_id(cell), self._answer_ids, self._test_ids)))
            nonce = secrets.token_hex(16)
            lacking = definitions.read_preview(side(definitions.preview_code(
                definitions.read_names(cell.source), self._defined, nonce)), nonce)
            cell, out = super().preprocess_cell(cell, resources, index)
            if lacking and not any(o.output_type == "error" for o in cell.outputs):
                cell.outputs.append(not_in_the_clean_room(lacking[0]))
            return cell, out
        return super().preprocess_cell(cell, resources, index)


def not_in_the_clean_room(name: str) -> NotebookNode:
    """The error grading will give a test that reads `name` (grading.clean_kernel)."""
    message = definitions.not_defined_message(name)
    return NotebookNode(output_type="error", ename="NotDefinedOnItsOwn", evalue=message,
                        traceback=[message])


class SummarizingValidator(Validator):
    """nbgrader's Validator with the per-question summary as its last step."""

    preprocessors = List([CheckCellMetadata, ClearOutput, RecordingExecute, QuestionSummary])


def _jupyter_server_extension_points():
    return [{"module": "autograde.student.validation"}]


def _load_jupyter_server_extension(serverapp) -> None:
    """In the student's JupyterLab: the Validate button's handler validates with the
    summary (nbgrader's `Validator.preprocessors` is not configurable)."""
    handlers.Validator = SummarizingValidator
