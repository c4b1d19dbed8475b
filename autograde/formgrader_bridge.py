"""The formgrader's buttons, on the course's side (a server extension of `make formgrader`).

nbgrader's own Generate Feedback renders its default page, which loads MathJax from a CDN,
and its Autograde runs the notebook outside the course's sandbox (where the grader's kernel
does not exist) after deleting the graded notebook. Here Generate Feedback writes the page
`export` writes, offline; Autograde grades with the course's grader, as
`python -m autograde regrade` does (grading.regrade), and keeps the previous graded
notebook and score until the new grade is complete.
"""

import subprocess
import sys
from pathlib import Path

from nbgrader.apps.api import NbGraderAPI

from autograde.course import build
from autograde.grading import feedback
from autograde.nbgrader_seam import command

REGRADE_TIMEOUT = 1800  # a lab's own notebook timeout is 600 s, and a kernel is tried twice


def generate_feedback(api, assignment_id: str, student_id: str | None = None,
                      force: bool = True) -> dict:
    """The course's feedback page for one student (or all), as `export` writes it."""
    try:
        done = feedback.generate(Path(api.coursedir.root), assignment_id, student_id)
    except command.NbgraderError as e:
        return {"success": False, "error": str(e)[-2000:], "log": ""}
    return {"success": True, "log": (done.stdout + done.stderr)[-2000:]}


def autograde(api, assignment_id: str, student_id: str, force: bool = True,
              create: bool = True) -> dict:
    """The course's grader on one student (`python -m autograde regrade`), in its sandbox;
    the previous graded notebook and score stay until the new grade is complete."""
    course = Path(api.coursedir.root)
    cmd = [sys.executable, "-m", "autograde", "regrade", assignment_id, student_id,
           "--course", str(course)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=build.ROOT,
                              env=command.env(), timeout=REGRADE_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {"success": False, "log": "", "error": (
            f"{student_id} was not graded again within {REGRADE_TIMEOUT} s; the previous "
            "graded notebook and score are unchanged.")}
    if done.returncode != 0:
        said = done.stderr.strip().removeprefix("error: ")
        return {"success": False, "log": done.stdout[-2000:], "error": said[-3000:]}
    return {"success": True, "log": (done.stdout + done.stderr)[-2000:]}


def _load_jupyter_server_extension(server_app) -> None:
    NbGraderAPI.generate_feedback = generate_feedback
    NbGraderAPI.autograde = autograde


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "autograde.formgrader_bridge"}]
