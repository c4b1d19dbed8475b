"""What each lab holds, read from its source: questions, points, and where its tests run.

One place answers "how many points does Lab N have, and how many are judged in
the grader?" for the README, the tests and instructors alike.
"""

import re
from dataclasses import dataclass

from autograde import checks
from autograde.course import build
from autograde.headings import headings
from autograde.judging.judge import judged_checks
from autograde.nbgrader_seam.cells import is_test_cell

_TITLE = re.compile(r"^# Lab \d+: (.+)$", re.M)


@dataclass(frozen=True)
class Question:
    qid: str
    title: str
    points: int


@dataclass(frozen=True)
class LabFacts:
    """A lab's questions and points, and which test cells run in the student's kernel."""

    lab: str
    title: str
    questions: tuple[Question, ...]
    auto_points: int
    manual_points: int
    judged_points: int
    kernel_only: tuple[str, ...]  # grade ids of test cells that run in the kernel


def facts(lab: str) -> LabFacts:
    nb = build.source_notebook(lab)
    title, questions = lab, []
    auto = manual = judged = 0
    kernel_only = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            if m := _TITLE.search(cell.source):
                title = title if title != lab else m.group(1).strip()
            questions += [Question(h.qid, h.title, h.points)
                          for h in headings(cell.source) if h.points is not None]
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("grade"):
            continue
        if is_test_cell(cell):
            auto += meta["points"]
            if judged_checks(cell.source):
                judged += meta["points"]
            else:
                kernel_only.append(meta["grade_id"])
        else:
            manual += meta["points"]
    return LabFacts(lab, title, tuple(questions), auto, manual, judged, tuple(kernel_only))


def checks_module(lab: str):
    """The lab's checks module, autograde/checks/LAB.py."""
    return checks.of(lab)
