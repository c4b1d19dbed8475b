"""Hand grading as the formgrader does it, then `python -m autograde export`: final grades
per lab and for the course, and feedback that carries the hand-given points and comment."""

import csv
import json
import subprocess
import sys
import urllib.request

import nbformat
import pytest
from conftest import autograde_server

from autograde.course import build
from autograde.grading import export
from autograde.grading.grader import Grader
from autograde.grading.settings import Settings
from autograde.nbgrader_seam import command, gradebook

LAB = "lab01_layers"
pytestmark = pytest.mark.course


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    grading = tmp_path_factory.mktemp("grading")
    incoming = grading / "incoming"
    incoming.mkdir()
    nbformat.write(build.source_notebook(LAB), incoming / "ann.ipynb")
    nbformat.write(nbformat.read(build.LABS / LAB / f"{LAB}.ipynb", 4), incoming / "bob.ipynb")
    done = subprocess.run([sys.executable, "-m", "autograde", "grade", LAB, str(incoming),
                           "--course", str(grading / LAB), "--workers", "2"],
                          capture_output=True, text=True, env=command.env(), cwd=build.ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    grader = Grader(LAB, grading / LAB, workers=2,
                    settings=Settings(cell_timeout=120))
    return grading, grader, done.stdout + done.stderr


def test_the_console_says_little(graded):
    """A progress bar, the summary, one line per problem and where the results are."""
    output = graded[2]
    for noise in ("SAWarning", "Ctrl-C will not work", "--existing", "without encryption"):
        assert noise not in output
    lines = [line for line in output.replace("\r", "\n").splitlines()
             if line.strip() and not line.startswith("grading lab01")]
    assert len(lines) <= 10, lines
    assert any(line.startswith("grades: ") for line in lines)


def rows(path) -> dict:
    return {r["student"]: r for r in csv.DictReader(open(path))}


def test_before_hand_grading_the_reflection_is_pending(graded):
    grading, grader, _ = graded
    report = rows(grading / LAB / "reports" / LAB / "grades.csv")
    assert report["ann"]["needs_hand_grading"] == "q9_reflection"
    assert report["ann"]["q9_reflection"] == "pending" and report["ann"]["score"] == "25"
    summary = (grading / LAB / "reports" / LAB / "summary.txt").read_text()
    assert "needs hand grading: 1 of 2" in summary  # bob's untouched answer is 0 already
    assert "q9_reflection" not in summary.split("failures by question:")[1]
    page = (grading / LAB / "feedback" / "ann" / LAB / f"{LAB}.html").read_text()
    assert "not graded yet" in page  # the reflection, before a person has read it
    export.export(grading, feedback=False)
    final = rows(grading / LAB / "reports" / LAB / "final.csv")
    assert final["ann"]["automatic"] == "25" and final["ann"]["by_hand"] == "0"
    assert final["ann"]["needs_hand_grading"] == "q9_reflection"


def test_export_after_hand_grading(graded):
    grading, grader, _ = graded
    with gradebook.connect(grader.db_url) as gb:  # what the formgrader does on "save"
        for student, points in (("ann", 2.0), ("bob", 0.5)):
            grade = gb.find_grade("q9_reflection", LAB, LAB, student)
            grade.manual_score, grade.needs_manual_grade = points, False
            comment = gb.find_comment("q9_reflection", LAB, LAB, student)
            comment.manual_comment = f"Well argued, {student}."
        gb.db.commit()
    done = subprocess.run([sys.executable, "-m", "autograde", "export", "--grading",
                           str(grading)], capture_output=True, text=True, env=command.env())
    assert done.returncode == 0, done.stderr
    final = rows(grading / LAB / "reports" / LAB / "final.csv")
    assert (final["ann"]["automatic"], final["ann"]["by_hand"], final["ann"]["total"],
            final["ann"]["max_score"], final["ann"]["needs_hand_grading"]) == \
        ("25", "2", "27", "27", "")
    assert (final["bob"]["automatic"], final["bob"]["total"]) == ("0", "0.5")
    course = rows(grading / "course.csv")
    assert course["ann"][LAB] == "27" and course["bob"]["total"] == "0.5"
    html = (grading / LAB / "feedback" / "ann" / LAB / f"{LAB}.html").read_text()
    assert "Well argued, ann." in html and "2.0 / 2.0" in html
    assert "not graded yet" not in html


def test_feedback_pages_read_well_offline(graded):
    grading, *_ = graded
    for student in ("ann", "bob"):
        html = (grading / LAB / "feedback" / student / LAB / f"{LAB}.html").read_text()
        assert "<script" not in html.lower() and "cdnjs" not in html  # nothing to fetch
        assert "<math" in html and "$\\" not in html  # formulas are MathML, not raw TeX
        assert "Q1. Linear layer" in html and "Q2. Convolution output sizes" in html
        assert "Test cell" not in html
        assert "pre-wrap" in html  # long check messages wrap instead of scrolling sideways
        assert "data:image/png" in html  # the student's plots
    assert "No response." not in \
        (grading / LAB / "feedback" / "bob" / LAB / f"{LAB}.html").read_text()


def test_export_names_what_is_missing(graded, tmp_path):
    grading, *_ = graded
    with pytest.raises(ValueError, match="not graded yet: lab02_metrics"):
        export.export(grading, ["lab02_metrics"])
    with pytest.raises(ValueError, match="no graded lab"):
        export.export(tmp_path)


def post(url: str, token: str) -> dict:
    req = urllib.request.Request(url, method="POST", data=b"",
                                 headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=300) as resp:
        return json.loads(resp.read())


def test_formgrader_command_serves_the_graded_lab(graded, tmp_path):
    grading, *_ = graded
    with autograde_server(tmp_path, "formgrader", LAB, "--course", str(grading / LAB),
                          token="t") as (base, token, _):
        req = urllib.request.Request(f"{base}/formgrader/api/submissions/{LAB}",
                                     headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            submissions = {s["student"] for s in json.loads(resp.read())}
        assert submissions == {"ann", "bob"}
        req = urllib.request.Request(f"{base}/formgrader/api/students",
                                     headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            names = {s["id"]: s["last_name"] for s in json.loads(resp.read())}
        assert names == {"ann": "ann", "bob": "bob"}  # not "None, None"
        req = urllib.request.Request(f"{base}/formgrader/manage_assignments",
                                     headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            page = resp.read().decode()
        assert "warning-exchange" not in page and "warning-course-id" not in page
        # the button's own request: Generate Feedback writes the course's page, offline
        # (Autograde: tests/test_grading_regrade.py)
        page = grading / LAB / "feedback" / "ann" / LAB / f"{LAB}.html"
        page.unlink()
        said = post(f"{base}/formgrader/api/assignment/{LAB}/ann/generate_feedback", token)
        assert said["success"] is True, said
        html = page.read_text()
        assert "<script" not in html.lower() and "cdnjs" not in html and "<math" in html
    missing = subprocess.run([sys.executable, "-m", "autograde", "formgrader", "lab02_metrics",
                              "--course", str(tmp_path / "nothing")], capture_output=True,
                             text=True, env=command.env())
    assert missing.returncode == 2 and "make grade LAB=lab02_metrics" in missing.stderr
