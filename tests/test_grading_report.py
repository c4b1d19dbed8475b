"""autograde.grading.report: reasons with the check's words, and summaries that read well."""

import csv

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from autograde.grading.journal import Result
from autograde.grading.report import lost_marks, write_reports
from autograde.nbgrader_glue import Mark, error_output


def test_lost_marks_quote_the_checks_first_line(tmp_path):
    meta = {"grade": True, "solution": False, "grade_id": "q1_x_test", "points": 1}
    failed = new_code_cell("check(x)", metadata={"nbgrader": meta})
    failed.outputs = [error_output("CheckFailed", "f(2): expected a tensor.\nmore detail")]
    passed = new_code_cell("check(y)", metadata={"nbgrader": {**meta, "grade_id": "q2_y_test"}})
    path = tmp_path / "nb.ipynb"
    nbformat.write(new_notebook(cells=[failed, passed]), path)
    assert lost_marks(path) == "q1_x_test: CheckFailed: f(2): expected a tensor."
    assert lost_marks(tmp_path / "missing.ipynb") == "no autograded notebook"


def test_reports_of_a_clean_class(tmp_path):
    results = [Result("ann", "graded"), Result("bob", "graded", "q1_x_test: CheckFailed: f")]
    scores = {"ann": {"q1_x_test": Mark(2.0, 2.0)}, "bob": {"q1_x_test": Mark(0.0, 2.0)}}
    path = write_reports(tmp_path, "lab01_layers", results, scores, ["q1_x_test"])
    rows = list(csv.DictReader(open(path)))
    assert [(r["student"], r["score"], r["max_score"]) for r in rows] == \
        [("ann", "2", "2"), ("bob", "0", "2")]
    summary = (tmp_path / "summary.txt").read_text()
    assert summary.endswith("students with problems: none\n")  # no empty header
    assert (tmp_path / "summary.png").stat().st_size > 5_000


def test_answers_awaiting_hand_grading_are_marked(tmp_path):
    results = [Result("ann", "graded"), Result("bob", "graded")]
    ids = ["q1_x_test", "q2_reflection"]
    scores = {"ann": {"q1_x_test": Mark(2.0, 2.0), "q2_reflection": Mark(0.0, 2.0, True, True)},
              "bob": {"q1_x_test": Mark(1.0, 2.0), "q2_reflection": Mark(2.0, 2.0, False, True)}}
    path = write_reports(tmp_path, "lab01_layers", results, scores, ids)
    rows = {r["student"]: r for r in csv.DictReader(open(path))}
    assert rows["ann"]["needs_hand_grading"] == "q2_reflection"
    assert rows["ann"]["q2_reflection"] == "pending" and rows["ann"]["score"] == "2"
    assert rows["bob"]["needs_hand_grading"] == "" and rows["bob"]["q2_reflection"] == "2"
    summary = (tmp_path / "summary.txt").read_text()
    assert "needs hand grading: 1 of 2" in summary
    assert "q2_reflection" not in summary.split("failures by question:")[1].split("students")[0]
