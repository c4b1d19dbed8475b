"""The formgrader's Autograde grades one student again with the course's grader
(grading.regrade): the same score, a graded notebook at every point, nothing lost when
it fails, and `grade` and `export` say it happened."""

import json
import subprocess
import sys
import threading
import time
import urllib.request

import nbformat
import pytest
from conftest import autograde_server

from autograde.course import build
from autograde.grading import export, own_run, regrade
from autograde.grading import folder as grading_folder
from autograde.grading.grader import Grader
from autograde.grading.lock import Busy, grading_lock
from autograde.nbgrader_seam import command, gradebook

LAB = "lab01_layers"
pytestmark = pytest.mark.course
SAID = "test accuracy: 98.2%"  # what ann's notebook showed in a cell the grader runs again


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("regrade")
    incoming = root / "in"
    incoming.mkdir()
    ann = build.source_notebook(LAB)
    first = next(c for c in ann.cells if c.cell_type == "code")
    first.outputs = [nbformat.v4.new_output("stream", name="stdout", text=SAID + "\n")]
    nbformat.write(ann, incoming / "ann.ipynb")
    nbformat.write(nbformat.read(build.LABS / LAB / f"{LAB}.ipynb", 4), incoming / "bob.ipynb")
    grader = Grader(LAB, root / "course", workers=2)
    grader.run(incoming, progress=False)
    return grader


def totals(grader) -> dict[str, float]:
    found, _ = gradebook.scores(grader.db_url, LAB, ["ann", "bob"])
    return {s: sum(m.score for m in marks.values()) for s, marks in found.items()}


def post(url: str, token: str) -> dict:
    req = urllib.request.Request(url, method="POST", data=b"",
                                 headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=600) as resp:
        return json.loads(resp.read())


def test_the_graded_notebook_shows_the_students_own_numbers(graded):
    """A cell whose output the grader's run changed quotes the student's output after it."""
    nb = nbformat.read(graded.autograded("ann"), 4)
    notes = [o.text for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
             if o.get("output_type") == "stream" and o.text.startswith(own_run.NOTE)]
    assert len(notes) == 1 and SAID in notes[0]
    page = (graded.course / "feedback" / "ann" / LAB / f"{LAB}.html").read_text()
    assert "the grader&#39;s run of this cell" in page or "the grader's run of this cell" in page
    bob = nbformat.read(graded.autograded("bob"), 4)  # no outputs of his own: no note
    assert own_run.NOTE not in json.dumps(bob)


def test_autograde_in_the_formgrader_regrades_with_the_course_grader(graded, tmp_path):
    """The button's own request, on a real formgrader: success, the grader's score, and the
    graded notebook exists at every moment."""
    before = totals(graded)
    assert before["ann"] == 25.0  # every autograded point, the reflection pending
    notebook = graded.autograded("ann")
    stamp = notebook.stat().st_mtime_ns
    missing, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            if not notebook.is_file():
                missing.append(time.monotonic())
            time.sleep(0.005)

    with autograde_server(tmp_path, "formgrader", LAB, "--course", str(graded.course),
                          token="t") as (base, token, _):
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            said = post(f"{base}/formgrader/api/submission/{LAB}/ann/autograde", token)
        finally:
            stop.set()
            watcher.join()
    assert said["success"] is True, said
    assert not missing, "the graded notebook was missing during the regrade"
    assert notebook.stat().st_mtime_ns != stamp  # graded again, not left alone
    assert totals(graded) == before
    entry = graded.journal.read("ann")
    assert entry.regraded and entry.status == "graded"
    assert not (graded.course / "autograding" / "ann").exists()
    summary = (graded.course / "reports" / LAB / "summary.txt").read_text()
    assert "graded again in the formgrader: ann at " in summary
    lines = [export.what_was_used(graded.course, LAB, export.lab_rows(graded.db_url, LAB))]
    assert "graded again in the formgrader: ann" in lines[0]
    # `grade` with the same submissions keeps the regrade and says so
    done = subprocess.run([sys.executable, "-m", "autograde", "grade", LAB,
                           str(graded.course.parent / "in"), "--course", str(graded.course)],
                          capture_output=True, text=True, cwd=build.ROOT, env=command.env())
    assert done.returncode == 0, done.stderr[-2000:]
    assert "already graded" in done.stdout and "graded again in the formgrader: ann" in \
        done.stdout


def test_a_regrade_that_cannot_start_its_kernel_changes_nothing(graded, monkeypatch):
    """The kernel never starts: the previous graded notebook, score and journal entry stay,
    and the error says why."""
    def broken_kernelspec(folder):
        spec = folder / "kernels" / "efflab-sandbox"
        spec.mkdir(parents=True, exist_ok=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-c", "import sys; sys.exit('no sandbox today')",
                     "{connection_file}"], "display_name": "broken", "language": "python"}))
        return spec

    notebook = graded.autograded("bob")
    content, scores = notebook.read_bytes(), totals(graded)
    entry = graded.journal.read("bob")
    monkeypatch.setattr(grading_folder, "write_kernelspec", broken_kernelspec)
    with pytest.raises(regrade.RegradeError,
                       match="(?s)not graded again.*no sandbox today.*unchanged"):
        regrade.regrade(LAB, graded.course, "bob")
    assert notebook.read_bytes() == content and totals(graded) == scores
    assert graded.journal.read("bob") == entry
    monkeypatch.undo()
    graded.release()  # the real kernel back, for the tests after this one


def test_one_grading_run_at_a_time(graded):
    with grading_lock(graded.course, "wait"):
        with pytest.raises(Busy, match="being graded by another run"):
            regrade.regrade(LAB, graded.course, "ann")
        done = subprocess.run([sys.executable, "-m", "autograde", "grade", LAB,
                               str(graded.course.parent / "in"), "--course",
                               str(graded.course)],
                              capture_output=True, text=True, cwd=build.ROOT, env=command.env())
    assert done.returncode == 2 and "being graded by another run" in done.stderr


def test_bad_regrades_are_named(graded, tmp_path):
    with pytest.raises(regrade.RegradeError, match="no submitted notebook"):
        regrade.regrade(LAB, graded.course, "nobody")
    done = subprocess.run([sys.executable, "-m", "autograde", "regrade", LAB, "ann",
                           "--course", str(tmp_path)], capture_output=True, text=True,
                          cwd=build.ROOT, env=command.env())
    assert done.returncode == 1 and "no submitted notebook" in done.stderr
