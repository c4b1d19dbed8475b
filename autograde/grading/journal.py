"""The journal: one finished student per JSON file, so an interrupted run resumes.

Each record is written to a temporary file and renamed into place, so a run
killed with kill -9 leaves every student either fully recorded or not at all.
"""

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Result:
    """What happened to one student's submission."""

    student: str
    status: str            # graded | no-notebook | failed (scored 0) | not-graded (the
    #                        grader's trouble: a previous grade stands)
    reason: str = ""
    seconds: float = 0.0
    digest: str = ""       # of the notebook graded (Submission.digest)
    secret: str = ""       # fingerprint of the secret its hidden cases came from
    problem: str = ""      # what intake said of the submission (part of reason)
    regraded: str = ""     # when the formgrader's Autograde graded it again (ISO time)


class Journal:
    """The finished students of one lab in one grading folder."""

    def __init__(self, folder: Path):
        self.folder = folder

    def done(self, student: str, digest: str | None = None, secret: str | None = None
             ) -> bool:
        """Graded already (and, given a digest, from that very notebook; given a secret's
        fingerprint, with hidden cases from that secret); a student whose grading failed
        (the grader's trouble, not a score) is not done: the next run tries again."""
        path = self.folder / f"{student}.json"
        if not path.exists():
            return False
        result = self.read(student)
        return (result.status not in ("failed", "not-graded")
                and (digest is None or result.digest == digest)
                and (secret is None or result.secret == secret))

    def record(self, result: Result) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{result.student}.tmp"
        tmp.write_text(json.dumps(asdict(result)))
        os.replace(tmp, self.folder / f"{result.student}.json")  # atomic: all or nothing

    def known(self, student: str) -> bool:
        return (self.folder / f"{student}.json").exists()

    def all(self) -> list[Result]:
        """Every student recorded, by name."""
        return [self.read(p.stem) for p in sorted(self.folder.glob("*.json"))]

    def read(self, student: str) -> Result:
        return Result(**json.loads((self.folder / f"{student}.json").read_text()))

    def forget(self) -> None:
        """Start over: every student is graded again."""
        shutil.rmtree(self.folder, ignore_errors=True)
