"""autograde.grading.report: reasons with the check's words, and summaries that read well."""

import csv
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from lazy import LAB02
from nbformat.v4 import new_code_cell, new_notebook
from test_grading_corpus import lazy_notebook

from autograde.course import build
from autograde.grading import outcome
from autograde.grading.journal import Result
from autograde.grading.report import (
    SHORT,
    formgrader_hint,
    late_text,
    lost_marks,
    short,
    whole_reasons,
    write_reports,
)
from autograde.nbgrader_seam import cells, command
from autograde.nbgrader_seam.cells import error_output
from autograde.nbgrader_seam.gradebook import Mark


def _failed(grade_id: str, ename: str, evalue: str):
    meta = {"grade": True, "solution": False, "grade_id": grade_id, "points": 1}
    cell = new_code_cell("check(x)", metadata={"nbgrader": meta})
    cell.outputs = [error_output(ename, evalue)]
    return cell


def test_lost_marks_quote_the_checks_first_line(tmp_path):
    meta = {"grade": True, "solution": False, "grade_id": "q2_y_test", "points": 1}
    passed = new_code_cell("check(y)", metadata={"nbgrader": meta})
    long = "g(3): " + "the value is wrong in a way that takes many words to say " * 3
    path = tmp_path / "nb.ipynb"
    nbformat.write(new_notebook(cells=[
        _failed("q1_x_test", "CheckFailed", "f(2): expected a tensor.\nmore detail"), passed,
        _failed("q3_z_test", "NameError", "name 'f' is not defined"),
        _failed("q4_w_test", "CheckFailed", long), _failed("q5_v_test", "CheckFailed", long)]),
        path)
    cut = short(long)
    assert cut.endswith(" …") and len(cut) <= SHORT + 2 and long.startswith(cut[:-2])
    assert not cut[:-2].endswith(" ")  # cut at a word, not inside one
    # a reason shared by two questions is said once
    assert lost_marks(path) == ("q1_x_test: CheckFailed: f(2): expected a tensor.; q3_z_test: "
                                f"NameError: name 'f' is not defined; q4_w_test, q5_v_test: "
                                f"{short('CheckFailed: ' + long)}")
    assert whole_reasons(path).splitlines()[-1] == \
        f"q4_w_test, q5_v_test: CheckFailed: {long.strip()}"
    assert "more detail" in whole_reasons(path)
    assert lost_marks(tmp_path / "missing.ipynb") == "no autograded notebook"


def test_the_formgrader_hint_works_as_printed_from_the_repository_root(tmp_path):
    assert formgrader_hint("lab02_metrics", build.ROOT / "grading" / "lab02_metrics") == \
        "make formgrader LAB=lab02_metrics"
    assert formgrader_hint("lab02_metrics", tmp_path) == \
        f".venv/bin/python -m autograde formgrader lab02_metrics --course {tmp_path}"


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
    assert "bob (graded):\n  q1_x_test: CheckFailed: f" in (tmp_path / "reasons.txt").read_text()


def test_the_summary_lists_a_dead_or_tampered_kernel_from_its_outcome_record(tmp_path):
    """Graded, but not cleanly: the summary's problems come from grading.outcome's record,
    whatever the reason's words say."""
    course, lab = tmp_path / "course", "lab01_layers"
    outcome.write(course, lab, "bob", outcome.Outcome(tampered="sys.displayhook replaced"))
    outcome.write(course, lab, "cat", outcome.Outcome(kernel_died="DeadKernelError"))
    outcome.write(course, lab, "ann", outcome.Outcome())
    results = [Result(s, "graded", "same words for all") for s in ("ann", "bob", "cat")]
    scores = {s: {"q1_x_test": Mark(0.0, 2.0)} for s in ("ann", "bob", "cat")}
    write_reports(tmp_path / "out", lab, results, scores, ["q1_x_test"], course=course)
    problems = (tmp_path / "out" / "summary.txt").read_text().split("students with problems:")[1]
    assert "bob" in problems and "cat" in problems and "ann" not in problems


def test_no_heading_stands_empty_and_questions_come_in_their_order(tmp_path):
    ids = sorted(["q10_energy_test", "q1_conv_params_test", "q2_model_size_test"],
                 key=cells.natural)  # as the gradebook's scores come
    full = {i: Mark(1.0, 1.0) for i in ids}
    path = write_reports(tmp_path, "lab02_metrics", [Result("ann", "graded")], {"ann": full},
                         ids)
    header = next(csv.reader(open(path)))
    assert header[-3:] == ["q1_conv_params_test", "q2_model_size_test", "q10_energy_test"]
    summary = (tmp_path / "summary.txt").read_text()
    assert "failures by question: none\n" in summary
    assert (tmp_path / "reasons.txt").read_text().endswith("no marks lost\n")


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


def _headings_with_nothing_under_them(lines: list[str]) -> list[str]:
    return [line for i, line in enumerate(lines) if line.endswith(":")
            and (i + 1 == len(lines) or not lines[i + 1].startswith("  "))]


@pytest.mark.course
def test_grade_and_export_say_it_whole_in_the_labs_order(tmp_path):
    """`grade` and `export` on three Lab 02 submissions (the solution, the blank lab and a
    lazy one): no heading stands empty, q1 ... q9 come before q10 everywhere, and a reason
    shortened in grades.csv says so and stands whole in reasons.txt."""
    lab, incoming = "lab02_metrics", tmp_path / "incoming"
    incoming.mkdir()
    nbformat.write(build.source_notebook(lab), incoming / "ann.ipynb")
    nbformat.write(nbformat.read(build.LABS / lab / f"{lab}.ipynb", 4), incoming / "bob.ipynb")
    nbformat.write(lazy_notebook(lab, LAB02), incoming / "cid.ipynb")
    done = subprocess.run([sys.executable, "-m", "autograde", "grade", lab, str(incoming),
                           "--grading", str(tmp_path), "--workers", "2"], capture_output=True,
                          text=True, env=command.env(), cwd=build.ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    console = [line for line in done.stdout.splitlines() if line.strip()]
    reports = tmp_path / lab / "reports" / lab
    summary = (reports / "summary.txt").read_text().splitlines()
    assert not _headings_with_nothing_under_them(console), console
    assert not _headings_with_nothing_under_them(summary), summary
    ids = [c.metadata["nbgrader"]["grade_id"] for c in build.source_notebook(lab).cells
           if c.metadata.get("nbgrader", {}).get("points")]
    assert ids.index("q9_roofline_test") < ids.index("q10_energy_test")
    rows = list(csv.DictReader(open(reports / "grades.csv")))
    assert list(rows[0])[-len(ids):] == ids  # the lab's own order
    whole = (reports / "reasons.txt").read_text()
    for row in rows:
        for part in filter(None, row["reason"].split("; ")):
            said = part.removesuffix(" …")
            assert said in whole.replace("\n  ", "; "), (part, whole)
            assert part.endswith(" …") or part in whole, part
    assert "bob" in whole and "still raises NotImplementedError" in whole
    exported = subprocess.run([sys.executable, "-m", "autograde", "export", "--grading",
                               str(tmp_path), "--no-feedback"], capture_output=True,
                              text=True, env=command.env(), cwd=build.ROOT)
    assert exported.returncode == 0, exported.stderr
    assert f"{lab}: 3 students from the gradebook; 0 with points given by hand, " \
        "2 still waiting for hand grading" in exported.stdout
    final = list(csv.DictReader(open(reports / "final.csv")))
    assert {r["student"] for r in final} == {"ann", "bob", "cid"}
    Path(tmp_path / lab / "autograded" / "cid" / lab / f"{lab}.ipynb").unlink()
    exported = subprocess.run([sys.executable, "-m", "autograde", "export", "--grading",
                               str(tmp_path), "--no-feedback"], capture_output=True,
                              text=True, env=command.env(), cwd=build.ROOT)
    assert "no autograded notebook for cid" in exported.stdout


def test_late_submissions_are_marked_in_the_csv_and_the_summary(tmp_path):
    results = [Result(s, "graded") for s in ("ann", "bob")]
    scores = {s: {"q1_x_test": Mark(2.0, 2.0)} for s in ("ann", "bob")}
    path = write_reports(tmp_path, "lab01_layers", results, scores, ["q1_x_test"],
                         late={"bob": 2 * 3600 + 301})
    rows = {r["student"]: r for r in csv.DictReader(open(path))}
    assert rows["ann"]["late"] == "" and rows["bob"]["late"] == "2 h 06 min"
    assert "submitted after the due date: 1 (bob by 2 h 06 min)" in \
        (tmp_path / "summary.txt").read_text()
    assert [late_text(s) for s in (1, 60, 61, 86400 + 5 * 60)] == \
        ["1 min", "1 min", "2 min", "1 d 05 min"]
