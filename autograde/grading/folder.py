"""One lab's grading folder: its nbgrader config, what is set up before grading (release,
intake) and what is written after it (feedback pages, grades.csv, the summary).

`grading.grader.Grader` grades in it; a regrade (grading.regrade) uses the same folder
with the settings of its last run (SETTINGS_FILE).
"""

import json
import os
import shutil
import stat
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import nbformat

from autograde.course import build
from autograde.grading import audit, feedback, secret, similarity
from autograde.grading.cluster import ClusterExecute
from autograde.grading.executor import SandboxedExecute
from autograde.grading.feedback import MathML, QuestionTitles, ShortTracebacks
from autograde.grading.journal import Journal, Result
from autograde.grading.own_run import StudentsOwnRun
from autograde.grading.report import whole_reasons, write_reports
from autograde.grading.settings import DEFAULTS, Settings
from autograde.grading.submissions import Submission, reasons, repair
from autograde.nbgrader_seam import command, gradebook
from autograde.nbgrader_seam.cells import grade_id
from autograde.nbgrader_seam.command import NbgraderError
from autograde.sandbox import cleanup
from autograde.sandbox.kernel import write_kernelspec

SETTINGS_FILE = "grading.json"  # the settings of the folder's last `grade` run (a regrade's)


class GradingFolder:
    """One lab in one grading folder: set up before grading, reported after."""

    def __init__(self, lab: str, course: Path, workers: int = 2, db_url: str | None = None,
                 settings: Settings = DEFAULTS, scheduler: str | None = None,
                 secret_file: Path | None = None, due: datetime | None = None):
        if lab not in build.lab_names():
            raise ValueError(f"unknown lab {lab!r}; labs: {', '.join(build.lab_names())}")
        self.lab, self.course, self.workers = lab, course.resolve(), max(1, workers)
        self.secret_file = (secret_file or self.course / secret.SECRET_FILE).resolve()
        self.fingerprint = ""  # of the secret, once `release` has read it
        self.db_url = db_url or f"sqlite:///{self.course / 'gradebook.db'}"
        self.journal = Journal(self.course / "journal" / lab)
        self.settings = settings
        self.scheduler = scheduler  # a Dask scheduler: notebooks run on its workers
        self.due = due  # the lab's due date (UTC), kept in the gradebook once given
        self.config = command.grading_config(
            self.course, self.db_url, settings.to_dict(),
            ClusterExecute if scheduler else SandboxedExecute,
            [ShortTracebacks, QuestionTitles, MathML], (StudentsOwnRun,))
        if scheduler:
            self.config.ClusterExecute.scheduler = scheduler

    def env(self) -> dict[str, str]:
        """What nbgrader and its kernels need on top of nbgrader_seam.command.env()."""
        return {"JUPYTER_PATH": str(self.course / "jupyter"),
                "EFFLAB_GRADER_PID": str(os.getpid())}

    def nbgrader(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
        return command.run(self.course, *args, timeout=timeout, extra_env=self.env())

    def release(self) -> None:
        """The folder's config, kernel, grading key, the lab's source and gradebook rows."""
        self.course.mkdir(parents=True, exist_ok=True)
        # every student's notebook and the course's key: no other account reads them (a
        # group, the course's TAs, keeps what it had)
        self.course.chmod(stat.S_IMODE(self.course.stat().st_mode) & ~0o007)
        course_secret = secret.load(self.secret_file)
        self.fingerprint = secret.fingerprint(course_secret)
        secret.prepare(self.course, self.lab, course_secret)
        command.write_config(self.config, self.course)
        (self.course / SETTINGS_FILE).write_text(json.dumps(self.saved()) + "\n")
        (self.course / "exchange").mkdir(exist_ok=True)  # its Exchange.root, unused but there
        write_kernelspec(self.course / "jupyter")
        build.write_sources([self.lab], self.course / "source")
        self.nbgrader("generate_assignment", self.lab, "--force")
        if self.due is not None:
            gradebook.set_due(self.db_url, self.lab, self.due)

    def intake(self, subs: list[Submission]) -> None:
        """Register every student; copy each notebook not yet graded into submitted/."""
        gradebook.register_students(self.db_url, [s.student for s in subs])
        known = {c.metadata["nbgrader"]["grade_id"]: dict(c.metadata["nbgrader"])
                 for c in build.source_notebook(self.lab).cells if "nbgrader" in c.metadata}
        for sub in subs:
            dest = self.course / "submitted" / sub.student / self.lab
            if self.journal.done(sub.student, sub.digest, self.fingerprint):
                continue
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            if sub.notebook is not None:
                nb, notes = repair(sub.notebook, known)
                nbformat.write(nb, dest / f"{self.lab}.ipynb")
                sub.problem = reasons(sub.problem, *notes)
                for name, text in sub.exchange.items():  # nbgrader reads them from here
                    (dest / name).write_text(text)

    def autograded(self, student: str) -> Path:
        return self.course / "autograded" / student / self.lab / f"{self.lab}.ipynb"


    def saved(self) -> dict:
        """What a regrade needs of this run (SETTINGS_FILE): the same kernel, judge and key."""
        return {"workers": self.workers, "db_url": self.db_url,
                "secret_file": str(self.secret_file), "settings": self.settings.to_dict()}

    def report(self, subs: list[Submission], student: str | None = None) -> list[Result]:
        """After a batch: every student's feedback page (or only `student`'s), grades.csv and
        the summary."""
        cleanup.remove_empty_cgroups()
        results = [self.journal.read(s.student) for s in subs]
        if any((self.course / "autograded").glob(f"*/{self.lab}")):
            try:
                feedback.generate(self.course, self.lab, student, extra_env=self.env())
            except NbgraderError as e:  # grades are safe in the gradebook either way
                print(f"warning: feedback not generated: {str(e)[-500:]}", file=sys.stderr)
        scores, ids = gradebook.scores(self.db_url, self.lab, [r.student for r in results])
        out = self.course / "reports" / self.lab
        notebooks = {r.student: nb for r in results
                     if (nb := _read(self.course / "submitted" / r.student / self.lab
                                     / f"{self.lab}.ipynb")) is not None}
        starter = _read(self.course / "release" / self.lab / f"{self.lab}.ipynb")
        if starter is not None:  # the columns in the lab's own order (scores gives q1 ... q10)
            order = [grade_id(c) for c in starter.cells if "nbgrader" in c.metadata]
            ids = sorted(ids, key=lambda i: order.index(i) if i in order else len(order))
        matches, findings = [], {}
        try:  # evidence for the instructor: never a reason to lose the grades
            if starter is not None:
                matches = similarity.compare(notebooks, starter)
                released = audit.released_lines(starter)
                findings = {s: audit.audit(nb, released) for s, nb in notebooks.items()}
            similarity.write_report(out, self.lab, matches, notebooks, findings)
        except Exception as e:  # noqa: BLE001 - whatever a submission made of it
            print(f"warning: no similarity report: {type(e).__name__}: {e}", file=sys.stderr)
        whole = {s.student: reasons(s.problem, whole_reasons(self.autograded(s.student)))
                 for s, r in zip(subs, results, strict=True) if r.status == "graded"}
        late = gradebook.seconds_late(self.db_url, self.lab, [r.student for r in results])
        path = write_reports(out, self.lab, results, scores, ids, similarity.flags(matches),
                             audit.flags(findings), whole, self.course, late)
        print(f"grades: {path}\nwhy marks were lost: {out / 'reasons.txt'}\n"
              f"feedback: {self.course / 'feedback'}\nsummary: {out}")
        return results


def _read(path: Path) -> nbformat.NotebookNode | None:
    """The notebook at `path`, or None where there is none to read."""
    try:
        return nbformat.read(path, as_version=4)
    except (OSError, ValueError):
        return None
