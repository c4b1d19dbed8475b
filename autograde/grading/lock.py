"""One grading run at a time in a grading folder: `grade` and the formgrader's regrade."""

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = ".grading.lock"


class Busy(RuntimeError):
    """Another run is grading in this folder."""


@contextmanager
def grading_lock(course: Path, then: str) -> Iterator[None]:
    """Held while grading in `course`; Busy (saying `then`, what to do) if another run is."""
    course.mkdir(parents=True, exist_ok=True)
    with open(course / LOCK_FILE, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(f"{course} is being graded by another run (pid "
                       f"{_holder(course)}); {then} when it has finished") from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        yield


def _holder(course: Path) -> str:
    try:
        return (course / LOCK_FILE).read_text().strip() or "unknown"
    except OSError:
        return "unknown"
