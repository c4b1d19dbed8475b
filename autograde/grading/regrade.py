"""One student graded again with the course's grader: the formgrader's Autograde button.

`python -m autograde regrade LAB STUDENT --course FOLDER` (what the button runs) grades
the notebook in `submitted/STUDENT/LAB` with the settings, secret and gradebook of the
folder's last `grade` run, in the same sandbox and judge, so the same submission gets
the same score. The new graded notebook replaces the old one only when complete; a
regrade that fails leaves the previous graded notebook, score and journal entry as
they were. The class's reports are written again, and say who was regraded when.
"""

import json
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from autograde.grading.folder import SETTINGS_FILE
from autograde.grading.grader import Grader, warn_if_unisolated
from autograde.grading.journal import Result
from autograde.grading.lock import Busy, grading_lock
from autograde.grading.settings import Settings
from autograde.grading.submissions import Submission


class RegradeError(RuntimeError):
    """A regrade that did not happen, or did not finish; nothing was changed."""


def graded_before(lab: str, course: Path) -> Grader:
    """The grader of the folder's last `grade` run, with that run's settings."""
    path = course / SETTINGS_FILE
    if not path.is_file():
        raise RegradeError(f"{course} has no graded class of {lab} (no {path.name}): run "
                           f"`make grade LAB={lab} SUBMISSIONS=...` first")
    saved = json.loads(path.read_text())
    # a folder graded before the settings were one record keeps them beside the others
    settings = saved.pop("settings", None) or {
        k: saved.pop(k) for k in [*saved] if k not in ("workers", "db_url", "secret_file")}
    try:
        return Grader(lab, course, saved["workers"], saved["db_url"],
                      Settings.from_dict(settings), secret_file=Path(saved["secret_file"]))
    except (KeyError, TypeError, ValueError) as e:
        raise RegradeError(f"{path} does not hold a grade run's settings ({type(e).__name__}: "
                           f"{e}): run `make grade LAB={lab} SUBMISSIONS=...` again") from None


def regrade(lab: str, course: Path, student: str) -> Result:
    """Grade `student`'s submitted notebook again; RegradeError (nothing changed) if not."""
    course = course.resolve()
    notebook = course / "submitted" / student / lab / f"{lab}.ipynb"
    if not notebook.is_file():
        raise RegradeError(f"{student} has no submitted notebook of {lab} in {course}")
    grader = graded_before(lab, course)
    before = grader.journal.read(student) if grader.journal.known(student) else None
    with grading_lock(course, "press Autograde again"):
        warn_if_unisolated()
        grader.release()
        result = grader.grade_one(Submission(student, notebook,
                                             before.problem if before else ""), alone=True)
        if result.status != "graded":
            if before is not None:
                grader.journal.record(before)  # the previous grade stands, as it was
            raise RegradeError(f"{student} was not graded again ({result.status}): "
                               f"{result.reason}. The previous graded notebook and score "
                               "are unchanged.")
        # the digest of what the student handed in, as `grade` read it, so that `grade`
        # does not take the submitted copy for a new submission
        result = replace(result, digest=before.digest if before else result.digest,
                         regraded=datetime.now().isoformat(timespec="seconds"))
        grader.journal.record(result)
        subs = [Submission(r.student, course / "submitted" / r.student / lab
                           / f"{lab}.ipynb", r.problem) for r in grader.journal.all()]
        grader.report(subs, student)
    return result


def main(lab: str, course: Path, student: str) -> int:
    try:
        result = regrade(lab, course, student)
    except (RegradeError, Busy, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{student}: regraded ({result.seconds:g} s)" + (f"; {result.reason}"
                                                           if result.reason else ""))
    return 0
