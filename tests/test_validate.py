"""The Validate button of a student's notebook (the lab server's `SummarizingValidator`):
passes the solution, flags the blank lab, and refuses what an answer cell calls as grading
does."""

import nbformat
import pytest

from autograde.course import build
from autograde.student.validation import SummarizingValidator

LABS = build.lab_names()
pytestmark = pytest.mark.course


@pytest.mark.parametrize("lab", LABS)
def test_validate_button_passes_solution_and_flags_blank(lab, tmp_path):
    """What a student's Validate button reports (`nbgrader validate` exits 0 either way)."""
    source = tmp_path / "solution.ipynb"
    nbformat.write(build.source_notebook(lab), source)
    validator = SummarizingValidator()
    validator.execute_timeout = 120
    solution = validator.validate(str(source))
    assert not solution.get("failed") and not solution.get("changed"), solution
    ran = []
    validator._preprocess = lambda nb: ran.append(SummarizingValidator._preprocess(
        validator, nb)) or ran[-1]  # the notebook as Validate ran it, kept for a look
    blank = validator.validate(str(build.LABS / lab / f"{lab}.ipynb"))
    assert blank.get("failed"), "validating the blank lab should list failing cells"
    # JupyterLab's Run All stops at a cell that raises, unless it is tagged raises-exception
    stoppers = [i for i, c in enumerate(ran[-1].cells) if c.cell_type == "code"
                and any(o.output_type == "error" for o in c.get("outputs", []))
                and build.RUN_ON not in c.metadata.get("tags", [])]
    assert not stoppers, f"Run All on blank {lab} would stop at cells {stoppers}"


def _failures(nb, path) -> tuple[list, str]:
    """What Validate lists for `nb` (written to `path`), and its errors' text."""
    nbformat.write(nb, path)
    validator = SummarizingValidator()
    validator.execute_timeout = 120
    failed = validator.validate(str(path)).get("failed", [])
    return failed, "\n".join(str(f.get("error", "")) for f in failed)


def test_validate_refuses_what_an_answer_cell_calls(tmp_path):
    """A comparison with torch's conv2d inside Lab 01's einsum answer cell fails that
    question under Validate, with the message grading gives."""
    nb = build.source_notebook("lab01_layers")
    cell = next(c for c in nb.cells
                if c.metadata.get("nbgrader", {}).get("grade_id") == "q6_einsum")
    cell.source += "\nprint(torch.nn.functional.conv2d(torch.ones(1, 1, 3, 3), " \
                   "torch.ones(1, 1, 2, 2)).shape)\n"
    failed, text = _failures(nb, tmp_path / "compared.ipynb")
    assert "answer cell q6_einsum calls torch" in text and "conv2d" in text, failed
    assert text.count("✗") == 1, text  # Q6 only: every other question still passes


def test_validate_fails_a_test_whose_function_the_clean_room_lacks(tmp_path):
    """An answer bound by a call (`linear_forward = wrap(_linear)`) works in the kernel, but
    the grader's clean room does not run that call: Validate fails that question with the
    message grading gives, and only that one."""
    nb = build.source_notebook("lab01_layers")
    cell = next(c for c in nb.cells
                if c.metadata.get("nbgrader", {}).get("grade_id") == "q1_linear")
    assert "def linear_forward(" in cell.source
    cell.source = cell.source.replace("def linear_forward(", "def _linear(") + \
        "\n\nlinear_forward = (lambda f: f)(_linear)\n"
    failed, text = _failures(nb, tmp_path / "bound_by_a_call.ipynb")
    assert "`linear_forward` is not defined where the grader runs your answers" in text, failed
    assert text.count("✗") == 1, text  # Q1 only: every other question still passes
