"""Notebook cells as nbgrader marks them: answer cells, test cells, their grade ids, and a
cell of the grader's own run beside them."""

import re

from nbformat.notebooknode import NotebookNode
from nbgrader.utils import is_grade, is_solution


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


def natural(name: str) -> list:
    """Sort key of a grade id in the lab's order: q2_a before q10_b."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def error_output(ename: str, evalue: str):
    """An error output: nbgrader scores the test cell that holds one as failed."""
    return NotebookNode(output_type="error", ename=ename, evalue=evalue,
                        traceback=[f"{ename}: {evalue}"])
