"""The Validate button of a student's notebook: passes the solution, flags the blank lab."""

import nbformat
import pytest

from autograde import build

LABS = build.lab_names()
pytestmark = pytest.mark.course


@pytest.mark.parametrize("lab", LABS)
def test_validate_button_passes_solution_and_flags_blank(lab, tmp_path):
    """What a student's Validate button reports (`nbgrader validate` exits 0 either way)."""
    from nbgrader.validator import Validator

    source = tmp_path / "solution.ipynb"
    nbformat.write(build.source_notebook(lab), source)
    validator = Validator()
    validator.execute_timeout = 120
    solution = validator.validate(str(source))
    assert not solution.get("failed") and not solution.get("changed"), solution
    blank = validator.validate(str(build.LABS / lab / f"{lab}.ipynb"))
    assert blank.get("failed"), "validating the blank lab should list failing cells"
