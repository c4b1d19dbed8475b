"""The course's gradebook: students named after their submission, scores of what could not
be graded, and every student's marks read back."""

from datetime import UTC, datetime
from typing import NamedTuple

from dateutil.tz import gettz
from nbgrader.api import Gradebook, MissingEntry

from autograde.nbgrader_seam.cells import natural
from autograde.nbgrader_seam.command import COURSE_ID


def connect(db_url: str) -> Gradebook:
    """The course's gradebook (a context manager)."""
    return Gradebook(db_url, COURSE_ID)


def register_students(db_url: str, students: list[str]) -> None:
    """Every student in the gradebook, named after their submission (the formgrader shows
    "None, None" for a student without a name); a name given in the formgrader is kept."""
    with connect(db_url) as gb:
        for student in students:
            try:
                named = gb.find_student(student).last_name is not None
            except MissingEntry:
                named = False
            if not named:
                gb.update_or_create_student(student, last_name=student, first_name="")


def parse_due(text: str) -> datetime:
    """'2026-12-10 17:00', '2026-12-10T17:00+01:00' or '2026-12-10 17:00 Europe/Berlin' as
    a UTC time without a zone, as nbgrader keeps due dates (ValueError saying why not)."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        day_time, _, zone_name = text.rpartition(" ")
        zone = gettz(zone_name) if day_time and "/" in zone_name or zone_name == "UTC" \
            else None
        if zone is None:
            raise ValueError(f"not a due date: {text!r}; write 'YYYY-MM-DD HH:MM', with an "
                             "offset (+01:00) or a zone name (Europe/Berlin) after it for a "
                             "time that is not UTC") from None
        try:
            when = datetime.fromisoformat(day_time).replace(tzinfo=zone)
        except ValueError:
            raise ValueError(f"not a due date: {text!r}: {day_time!r} is not "
                             "'YYYY-MM-DD HH:MM'") from None
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when


def set_due(db_url: str, lab: str, due: datetime) -> None:
    """The lab's due date (UTC, no zone): nbgrader's autograde marks a later submission
    late (a submission's time is the exchange's timestamp.txt beside its notebook)."""
    with connect(db_url) as gb:
        gb.update_or_create_assignment(lab, duedate=due)


def seconds_late(db_url: str, lab: str, students: list[str]) -> dict[str, float]:
    """{student: seconds after the due date} of each late submission in the gradebook."""
    late = {}
    with connect(db_url) as gb:
        for student in students:
            try:
                seconds = gb.find_submission(lab, student).total_seconds_late
            except MissingEntry:
                continue
            if seconds and seconds > 0:
                late[student] = float(seconds)
    return late


def zero_scores(db_url: str, lab: str, student: str) -> None:
    """Every grade of a student whose notebook could not be graded is 0, not missing."""
    with connect(db_url) as gb:
        try:
            sub = gb.update_or_create_submission(lab, student)
        except MissingEntry:
            return
        for nb in sub.notebooks:
            for grade in nb.grades:
                grade.auto_score = 0
                grade.needs_manual_grade = False
        gb.db.commit()


def by_hand(grade) -> bool:
    """A written answer a person grades (a markdown cell), not a test cell. nbgrader gives an
    unchanged one an automatic 0, so the automatic score cannot tell them apart."""
    return grade.cell.cell_type == "markdown"


def zero_deleted_tests(db_url: str, lab: str, student: str) -> list[str]:
    """Score 0 for each test cell missing from a graded submission (deleted, or a release
    from before the question was added), and return their grade ids. nbgrader leaves such
    a grade unscored and waiting for a person, so the formgrader, grades.csv and the
    export would show it pending; no person can grade a cell that is not there."""
    with connect(db_url) as gb:
        try:
            nb = gb.find_submission_notebook(lab, lab, student)
        except MissingEntry:
            return []
        missing = [g for g in nb.grades if not by_hand(g) and g.auto_score is None
                   and g.manual_score is None]
        for grade in missing:
            grade.auto_score = 0
            grade.needs_manual_grade = False
        gb.db.commit()
        return [g.name for g in missing]


class Mark(NamedTuple):
    """One graded cell of one student: points earned, points possible, and whether it still
    waits for a person (a reflection before hand grading)."""

    score: float
    max: float
    pending: bool = False
    manual: bool = False  # a written answer graded by a person


def scores(db_url: str, lab: str, students: list[str]):
    """{student: {grade_id: Mark}} and the ordered grade ids, from the gradebook."""
    found, ids = {}, []
    with connect(db_url) as gb:
        for student in students:
            try:
                nb = gb.find_submission_notebook(lab, lab, student)
            except MissingEntry:
                found[student] = {}
                continue
            found[student] = {g.name: Mark(float(g.score or 0), float(g.max_score),
                                           bool(g.needs_manual_grade), by_hand(g))
                              for g in nb.grades}
            ids = ids or sorted((g.name for g in nb.grades), key=natural)
    return found, ids
