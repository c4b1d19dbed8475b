"""The formgrader's buttons, on the course's side (a server extension of `make formgrader`).

nbgrader's own Generate Feedback renders its default page, which loads MathJax from a CDN,
and its Autograde runs the notebook outside the course's sandbox (where the grader's kernel
does not exist) after deleting the graded notebook. Here Generate Feedback writes the page
`export` writes, offline; Autograde changes nothing and says which command grades again.
"""

from pathlib import Path

from nbgrader.apps.api import NbGraderAPI

from autograde import nbgrader_glue
from autograde.grading import feedback


def generate_feedback(api, assignment_id: str, student_id: str | None = None,
                      force: bool = True) -> dict:
    """The course's feedback page for one student (or all), as `export` writes it."""
    try:
        done = feedback.generate(Path(api.coursedir.root), assignment_id, student_id)
    except nbgrader_glue.NbgraderError as e:
        return {"success": False, "error": str(e)[-2000:], "log": ""}
    return {"success": True, "log": (done.stdout + done.stderr)[-2000:]}


def autograde(api, assignment_id: str, student_id: str, force: bool = True,
              create: bool = True) -> dict:
    """Refused, with nothing changed: the course's grader grades in its sandbox."""
    course = Path(api.coursedir.root)
    return {"success": False, "log": "", "error": (
        f"Not graded here: {student_id}'s graded notebook and score are unchanged. The "
        "course grades in a sandboxed kernel with its judge and hidden cases, which this "
        "server does not run. To grade again, from the course's repository: "
        f"`.venv/bin/python -m autograde grade {assignment_id} SUBMISSIONS --course {course}` "
        "(a submission that changed is graded again; the others keep their grades).")}


def _load_jupyter_server_extension(server_app) -> None:
    NbGraderAPI.generate_feedback = generate_feedback
    NbGraderAPI.autograde = autograde


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "autograde.formgrader_bridge"}]
