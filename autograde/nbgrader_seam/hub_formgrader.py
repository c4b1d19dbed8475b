"""The formgrader of a course JupyterHub's instructor (a server extension of the hub's
instructor servers): Autograde refused, with where grading happens instead.

nbgrader's own Autograde would run every student's notebook in the instructor's server,
as the instructor's account and outside the course's sandbox, with the instructor's
course folder in reach. On the hub, the collected submissions are graded with
`python -m autograde grade` (as root, sandboxed) and returned with `hub return`; the
formgrader still releases, collects and shows the course.
"""

from nbgrader.apps.api import NbGraderAPI

REFUSAL = ("Autograde is off on the course hub: here it would run the students' code as "
           "your account, outside the grader's sandbox. Collect, then grade on the hub's "
           "machine as root: python -m autograde grade {lab} {submitted} (docs/instructors.md, "
           "'A course on JupyterHub'), and return the feedback with python -m autograde hub "
           "return.")


def autograde(api, assignment_id: str, student_id: str, force: bool = True,
              create: bool = True) -> dict:
    """Refused: where and how the hub's submissions are graded."""
    return {"success": False, "log": "", "error": REFUSAL.format(
        lab=assignment_id, submitted=f"{api.coursedir.root}/submitted")}


def _load_jupyter_server_extension(server_app) -> None:
    NbGraderAPI.autograde = autograde


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "autograde.nbgrader_seam.hub_formgrader"}]
