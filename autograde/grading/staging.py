"""Autograde into a staging folder: a graded notebook is replaced only by a complete one.

nbgrader's autograde with --force deletes `autograded/STUDENT/LAB` before it runs the
notebook, so a grade that fails (a kernel that does not start, a worker that dies)
would lose the previous graded notebook. The grader's autograde writes to
`autograding/STUDENT/LAB` instead; `promote` moves a finished one into `autograded/`
file by file (each an atomic rename: the graded notebook exists at every point), and
`discard` drops one that did not finish.
"""

import copy
import os
import shutil
from pathlib import Path

from traitlets.config import Config

STAGING = "autograding"  # CourseDirectory.autograded_directory of the autograde step


def staged_config(config: Config) -> Config:
    """`config` with nbgrader's autograde writing into the staging folder."""
    staged = copy.deepcopy(config)
    staged.CourseDirectory.autograded_directory = STAGING
    return staged


def cli_option() -> str:
    """The same, for an `nbgrader autograde` command line."""
    return f"--CourseDirectory.autograded_directory={STAGING}"


def staged_notebook(course: Path, student: str, lab: str) -> Path:
    return course / STAGING / student / lab / f"{lab}.ipynb"


def settle(course: Path, student: str, lab: str, complete: bool) -> None:
    """`promote` a complete autograde, `discard` one that is not."""
    (promote if complete else discard)(course, student, lab)


def promote(course: Path, student: str, lab: str) -> None:
    """Move a finished autograde into `autograded/`, replacing the previous one."""
    staged = course / STAGING / student / lab
    final = course / "autograded" / student / lab
    new = {p.relative_to(staged) for p in staged.rglob("*") if p.is_file()}
    for rel in sorted(new):
        (final / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged / rel, final / rel)
    for old in sorted(final.rglob("*"), reverse=True):  # what the new grade did not make
        if old.is_file() and old.relative_to(final) not in new:
            old.unlink()
        elif old.is_dir() and not any(old.iterdir()):
            old.rmdir()
    discard(course, student, lab)


def discard(course: Path, student: str, lab: str) -> None:
    """Drop an autograde that did not finish; the previous graded notebook stays."""
    shutil.rmtree(course / STAGING / student / lab, ignore_errors=True)
    try:  # the staging root stays: other students' grades may be written there now
        (course / STAGING / student).rmdir()
    except OSError:  # another lab of this student is being graded there, or it is gone
        pass
