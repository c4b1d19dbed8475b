"""The grading pipeline of one lab in one grading folder.

release -> intake -> warm workers run nbgrader's autograde (each notebook in a
sandboxed kernel, test cells judged in the grader) -> journal -> feedback ->
grades.csv and summary. A notebook nbgrader cannot grade scores 0 with a reason;
nothing raised for one student stops the others.
"""

import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import nbformat
from tqdm.auto import tqdm

from autograde import build, nbgrader_glue
from autograde.grading import feedback, workers
from autograde.grading.executor import SandboxedExecute
from autograde.grading.feedback import MathML, QuestionTitles, ShortTracebacks
from autograde.grading.journal import Journal, Result
from autograde.grading.report import lost_marks, write_reports
from autograde.grading.submissions import Submission, collect, reasons, repair
from autograde.nbgrader_glue import GradingSettings, NbgraderError
from autograde.sandbox import cleanup
from autograde.sandbox.kernel import write_kernelspec
from autograde.sandbox.policy import isolation_problem


class Grader:
    """One lab, one grading folder; `run(submissions)` grades and reports."""

    def __init__(self, lab: str, course: Path, workers: int = 2, db_url: str | None = None,
                 cell_timeout: int = 60, notebook_timeout: int = 600, memory_mb: int = 3072,
                 judge: bool = True):
        if lab not in build.lab_names():
            raise ValueError(f"unknown lab {lab!r}; labs: {', '.join(build.lab_names())}")
        self.lab, self.course, self.workers = lab, course.resolve(), max(1, workers)
        self.db_url = db_url or f"sqlite:///{self.course / 'gradebook.db'}"
        self.journal = Journal(self.course / "journal" / lab)
        self.settings = GradingSettings(self.course, self.db_url, cell_timeout,
                                        notebook_timeout, memory_mb, judge)
        self.config = nbgrader_glue.grading_config(
            self.settings, SandboxedExecute, [ShortTracebacks, QuestionTitles, MathML],
            (str(feedback.TEMPLATES), feedback.TEMPLATE))

    def env(self) -> dict[str, str]:
        """What nbgrader and its kernels need on top of nbgrader_glue.env()."""
        return {"JUPYTER_PATH": str(self.course / "jupyter"),
                "EFFLAB_COURSE_ROOT": str(self.course), "EFFLAB_GRADER_PID": str(os.getpid())}

    def nbgrader(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
        return nbgrader_glue.run(self.course, *args, timeout=timeout, extra_env=self.env())

    def release(self) -> None:
        """The grading folder's config, kernel, the lab's source and gradebook entries."""
        self.course.mkdir(parents=True, exist_ok=True)
        nbgrader_glue.write_config(self.config, self.course)
        write_kernelspec(self.course / "jupyter")
        build.write_sources([self.lab], self.course / "source")
        self.nbgrader("generate_assignment", self.lab, "--force")

    def intake(self, subs: list[Submission]) -> None:
        """Register every student; copy each notebook not yet graded into submitted/."""
        nbgrader_glue.register_students(self.db_url, [s.student for s in subs])
        known = {c.metadata["nbgrader"]["grade_id"]: dict(c.metadata["nbgrader"])
                 for c in build.source_notebook(self.lab).cells if "nbgrader" in c.metadata}
        for sub in subs:
            dest = self.course / "submitted" / sub.student / self.lab
            if self.journal.done(sub.student, sub.digest):
                continue
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            if sub.notebook is not None:
                nb, notes = repair(sub.notebook, known)
                nbformat.write(nb, dest / f"{self.lab}.ipynb")
                sub.problem = reasons(sub.problem, *notes)

    def grade_one(self, sub: Submission, pool=None) -> Result:
        """nbgrader autograde for one student, in a warm worker process; never raises."""
        start = time.monotonic()
        status, reason = "no-notebook", sub.problem
        if sub.notebook is not None:
            status, reason = self._autograde(sub.student, pool, reason)
        if status != "graded":
            nbgrader_glue.zero_scores(self.db_url, self.lab, sub.student)
        result = Result(sub.student, status, reason, round(time.monotonic() - start, 1),
                        sub.digest)
        self.journal.record(result)
        return result

    def _autograde(self, student: str, pool, reason: str) -> tuple[str, str]:
        timeout = self.settings.notebook_timeout + 180
        for attempt in range(3):
            try:
                workers.autograde_in(pool, self.lab, student, timeout, fallback=lambda: (
                    self.nbgrader("autograde", self.lab, "--student", student, "--force",
                                  timeout=timeout)))
                path = self.course / "autograded" / student / self.lab / f"{self.lab}.ipynb"
                return "graded", reasons(reason, lost_marks(path))
            except subprocess.TimeoutExpired:
                return "failed", "grading took too long; scored 0"
            except NbgraderError as e:
                if "database is locked" in str(e) and attempt < 2:
                    time.sleep(1 + attempt)
                    continue
                return "failed", f"nbgrader could not grade it: {str(e).splitlines()[-1][:200]}"
        raise AssertionError("not reached")

    def run(self, source: Path, progress: bool = True) -> list[Result]:
        """Grade every submission in `source` that the journal does not mark as done."""
        problem = isolation_problem()
        if problem:
            print(f"\n!!! WARNING: student code will NOT be isolated: {problem}.\n!!! It can "
                  "read solutions and rewrite the gradebook. Grade on Linux as root.\n",
                  file=sys.stderr, flush=True)
        if cleanup.reap_orphans():
            print("stopped kernels left behind by an interrupted earlier run")
        cleanup.remove_stale_scratch()
        self.release()
        subs = collect(source, self.lab, self.course / "incoming")
        self.intake(subs)
        todo = [s for s in subs if not self.journal.done(s.student, s.digest)]
        changed = sum(self.journal.done(s.student) for s in todo)
        if len(todo) < len(subs):
            print(f"resuming: {len(subs) - len(todo)} of {len(subs)} already graded")
        if changed:
            print(f"regrading {changed} changed submission{'s' if changed > 1 else ''}")
        env = {**nbgrader_glue.env(), **self.env()}
        start = time.monotonic()
        with workers.start(self.workers, str(self.course), env, self.config) as pool, \
                ThreadPoolExecutor(self.workers) as threads, \
                tqdm(total=len(todo), desc=f"grading {self.lab}", disable=not progress) as bar:
            for future in as_completed([threads.submit(self.grade_one, s, pool)
                                        for s in todo]):
                future.result()
                bar.update()
        self.timings = {"autograde": time.monotonic() - start}
        start = time.monotonic()
        cleanup.remove_empty_cgroups()
        results = [self.journal.read(s.student) for s in subs]
        if any((self.course / "autograded").glob(f"*/{self.lab}")):
            try:
                self.nbgrader("generate_feedback", self.lab, "--force")
            except NbgraderError as e:  # grades are safe in the gradebook either way
                print(f"warning: feedback not generated: {str(e)[-500:]}", file=sys.stderr)
        scores, ids = nbgrader_glue.scores(self.db_url, self.lab, [r.student for r in results])
        out = self.course / "reports" / self.lab
        path = write_reports(out, self.lab, results, scores, ids)
        self.timings["feedback and reports"] = time.monotonic() - start
        print(f"grades: {path}\nfeedback: {self.course / 'feedback'}\nsummary: {out}")
        return results
