"""autograde.student.validation: Validate's dialog says one line per question, passed or not."""

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from nbgrader.utils import compute_checksum

from autograde.nbgrader_seam.cells import error_output
from autograde.student.validation import QuestionSummary, summary


def _test_cell(grade_id: str, *outputs):
    cell = new_code_cell(f"check_{grade_id}()", metadata={"nbgrader": {
        "grade": True, "solution": False, "locked": True, "points": 1, "grade_id": grade_id,
        "schema_version": 3}})
    cell.outputs = list(outputs)
    return cell


def _notebook():
    reflection = new_markdown_cell("YOUR ANSWER HERE", metadata={"nbgrader": {
        "grade": True, "solution": True, "locked": False, "points": 2,
        "grade_id": "q4_reflection", "schema_version": 3}})
    reflection.metadata.nbgrader["checksum"] = compute_checksum(reflection)
    return new_notebook(cells=[
        new_markdown_cell("## Q1. Linear layer (3 points)"),
        _test_cell("q1_a_test"),
        _test_cell("q1_b_test", new_output("stream", name="stdout", text="ok\n")),
        new_markdown_cell("## Q2. Padding (2 points)"),
        _test_cell("q2_test", error_output("CheckFailed", "pad2d(x, 1): expected (1, 1, 5, 5), "
                                                          "got (1, 1, 3, 3)\nmore")),
        new_markdown_cell("## Q3. Pooling (2 points)"),
        _test_cell("q3_a_test"),
        _test_cell("q3_b_test", error_output(
            "NotAnswered", "max_pool(x): the answer cell still raises NotImplementedError")),
        new_markdown_cell("## Q4. Reflection (2 points)"), reflection,
    ])


def test_one_line_per_question():
    assert summary(_notebook()) == [
        "✓ Q1. Linear layer: passed",
        "✗ Q2. Padding: failed: pad2d(x, 1): expected (1, 1, 5, 5), got (1, 1, 3, 3)",
        "✗ Q3. Pooling: not answered yet",
        "✗ Q4. Reflection: not answered yet",
    ]


def test_the_lines_take_the_first_failures_place_and_the_rest_stay_quiet():
    nb, _ = QuestionSummary().preprocess(_notebook(), {})
    failed = [c for c in nb.cells if any(o.output_type == "error" for o in c.get("outputs", []))]
    assert failed[0].outputs[0].traceback == summary(_notebook())
    assert failed[1].outputs[0].traceback == []
    nbformat.validate(nb)
    passing = _notebook()
    for cell in passing.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    assert QuestionSummary().preprocess(passing, {})[0] == passing  # nbgrader's "Success!"


def test_a_cell_out_of_time_is_said_once_and_named():
    """nbclient leaves two errors in a cell past the time limit (its own, then the
    interrupted kernel's): the summary is shown once, with a line naming the cell."""
    nb = _notebook()
    slow = nb.cells[2]  # Q1's second test cell, which passed
    slow.outputs = [error_output("CellTimeoutError", ""),
                    error_output("KeyboardInterrupt", "")]
    lines = summary(nb)
    assert lines[0] == "✗ Q1. Linear layer: failed: ran out of time and was stopped " \
                       "(an endless loop?)"
    done, _ = QuestionSummary().preprocess(nb, {})
    errors = [o for o in done.cells[2].outputs if o.output_type == "error"]
    assert len(errors) == 1
    assert errors[0].traceback[0] == "⏱ q1_b_test ran out of time and was stopped (an " \
                                     "endless loop?)"
    assert errors[0].traceback[1:] == lines
    nbformat.validate(done)


def test_the_server_extension_does_not_load_torch():
    """The Validate extension loads with the Jupyter server, which must not import torch
    (it slowed the server's start and its first kernel); Validate imports it when run."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", "import sys, autograde.student.validation; "
                          "print('torch' in sys.modules)"], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False", out.stderr
