"""What happened to one student's notebook in the Execute step, as a record, not as words.

The executor writes `outcomes/LAB/STUDENT.json` in the grading folder (a Dask task
sends it back with the notebook), the way the journal keeps one file per student;
the grader and the reports decide on its fields, never on the wording of a message
in a log, an exception or a cell's output. It is cleared before each attempt.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Outcome:
    """One run of a notebook: each field empty where nothing of the kind happened."""

    kernel_start_error: str = ""   # no kernel came up: the grader's trouble, tried again
    kernel_died: str = ""          # why the kernel stopped before the end (later tests not run)
    timed_out_cells: list[int] = field(default_factory=list)  # interrupted for time
    tampered: str = ""             # what the integrity probe found (kernel-run tests then fail)

    def to_dict(self) -> dict:
        return asdict(self)


def path(course: Path, lab: str, student: str) -> Path:
    return Path(course) / "outcomes" / lab / f"{student}.json"


def write(course: Path, lab: str, student: str, outcome: Outcome) -> None:
    p = path(course, lab, student)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(outcome.to_dict()))
    tmp.replace(p)  # whole or not at all


def read(course: Path, lab: str, student: str) -> Outcome | None:
    """The outcome of the student's last run, or None where none was written."""
    try:
        return Outcome(**json.loads(path(course, lab, student).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def clear(course: Path, lab: str, student: str) -> None:
    path(course, lab, student).unlink(missing_ok=True)
