"""autograde.nbgrader_seam.cells: test cells, grade ids and error outputs in nbgrader's terms."""

from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from autograde.nbgrader_seam import cells


def test_test_cells_are_graded_code_cells_without_an_answer():
    meta = {"grade": True, "solution": False, "grade_id": "q1_test", "points": 1}
    assert cells.is_test_cell(new_code_cell("check()", metadata={"nbgrader": meta}))
    answer = {**meta, "solution": True}
    assert not cells.is_test_cell(new_code_cell("x = 1", metadata={"nbgrader": answer}))
    assert not cells.is_test_cell(new_markdown_cell("text", metadata={"nbgrader": answer}))
    assert not cells.is_test_cell(new_code_cell("x = 1"))


def test_error_outputs_fail_a_test_in_nbgrader_terms():
    out = cells.error_output("NotRun", "the kernel stopped")
    assert out.output_type == "error" and out.traceback == ["NotRun: the kernel stopped"]


def test_grade_ids_come_in_the_notebook_and_the_lab_order():
    def graded(grade_id, solution, source="x = 1"):
        meta = {"grade": not solution or grade_id.endswith("_both"), "solution": solution,
                "grade_id": grade_id, "points": 1}
        return new_code_cell(source, metadata={"nbgrader": meta})

    nb = new_notebook(cells=[graded("q1_a", True), graded("q1_a_test", False),
                             new_markdown_cell("text"), graded("q10_b", True),
                             graded("q10_b_test", False)])
    assert cells.answer_and_test_ids(nb) == (["q1_a", "q10_b"], ["q1_a_test", "q10_b_test"])
    assert cells.grade_id(new_code_cell("x")) == ""
    assert sorted(["q10_b", "q2_a", "q1_c"], key=cells.natural) == ["q1_c", "q2_a", "q10_b"]
