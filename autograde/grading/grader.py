"""The grading pipeline of one lab in one grading folder.

release (with the lab's grading key, from the course's secret) -> intake -> warm
workers run nbgrader's autograde (each notebook in a sandboxed kernel, test cells
judged in the grader, hidden cases drawn from the key) -> journal -> feedback ->
grades.csv and summary. A notebook nbgrader cannot grade scores 0 with a reason;
nothing raised for one student stops the others.
"""

import json
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
from autograde.grading import (
    audit,
    cluster,
    feedback,
    outcome,
    secret,
    similarity,
    staging,
    workers,
)
from autograde.grading.cluster import ClusterExecute
from autograde.grading.executor import SandboxedExecute
from autograde.grading.feedback import MathML, QuestionTitles, ShortTracebacks
from autograde.grading.journal import Journal, Result
from autograde.grading.own_run import StudentsOwnRun
from autograde.grading.preflight import preflight
from autograde.grading.report import lost_marks, whole_reasons, write_reports
from autograde.grading.settings import DEFAULTS, Settings
from autograde.grading.submissions import Submission, collect, reasons, repair
from autograde.nbgrader_glue import NbgraderError, grade_id
from autograde.sandbox import cleanup
from autograde.sandbox.kernel import write_kernelspec
from autograde.sandbox.policy import isolation_problem

SETTINGS_FILE = "grading.json"  # the settings of the folder's last `grade` run (a regrade's)


class Grader:
    """One lab, one grading folder; `run(submissions)` grades and reports."""

    def __init__(self, lab: str, course: Path, workers: int = 2, db_url: str | None = None,
                 settings: Settings = DEFAULTS, scheduler: str | None = None,
                 secret_file: Path | None = None):
        if lab not in build.lab_names():
            raise ValueError(f"unknown lab {lab!r}; labs: {', '.join(build.lab_names())}")
        self.lab, self.course, self.workers = lab, course.resolve(), max(1, workers)
        self.secret_file = (secret_file or self.course / secret.SECRET_FILE).resolve()
        self.fingerprint = ""  # of the secret, once `release` has read it
        self.db_url = db_url or f"sqlite:///{self.course / 'gradebook.db'}"
        self.journal = Journal(self.course / "journal" / lab)
        self.settings = settings
        self.scheduler = scheduler  # a Dask scheduler: notebooks run on its workers
        self.config = nbgrader_glue.grading_config(
            self.course, self.db_url, settings.to_dict(),
            ClusterExecute if scheduler else SandboxedExecute,
            [ShortTracebacks, QuestionTitles, MathML], (StudentsOwnRun,))
        if scheduler:
            self.config.ClusterExecute.scheduler = scheduler

    def env(self) -> dict[str, str]:
        """What nbgrader and its kernels need on top of nbgrader_glue.env()."""
        return {"JUPYTER_PATH": str(self.course / "jupyter"),
                "EFFLAB_COURSE_ROOT": str(self.course), "EFFLAB_GRADER_PID": str(os.getpid())}

    def nbgrader(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
        return nbgrader_glue.run(self.course, *args, timeout=timeout, extra_env=self.env())

    def release(self) -> None:
        """The folder's config, kernel, grading key, the lab's source and gradebook rows."""
        self.course.mkdir(parents=True, exist_ok=True)
        course_secret = secret.load(self.secret_file)
        self.fingerprint = secret.fingerprint(course_secret)
        secret.prepare(self.course, self.lab, course_secret)
        nbgrader_glue.write_config(self.config, self.course)
        (self.course / SETTINGS_FILE).write_text(json.dumps(saved_settings(self)) + "\n")
        (self.course / "exchange").mkdir(exist_ok=True)  # its Exchange.root, unused but there
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
            if self.journal.done(sub.student, sub.digest, self.fingerprint):
                continue
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            if sub.notebook is not None:
                nb, notes = repair(sub.notebook, known)
                nbformat.write(nb, dest / f"{self.lab}.ipynb")
                sub.problem = reasons(sub.problem, *notes)

    def grade_one(self, sub: Submission, pool=None, alone: bool = False,
                  retried: bool = False) -> Result | None:
        """nbgrader autograde for one student (into grading.staging), in a warm worker
        process; never raises. A cell interrupted for time in a batch returns None, and
        `run` grades it once more alone (`retried=True`), so that a busy machine never
        costs marks. Where the grader could not run it, a previous grade stands."""
        start = time.monotonic()
        status, reason = "no-notebook", sub.problem
        if sub.notebook is not None:
            status, reason = autograde_with_retries(self, sub.student, pool, reason)
            ran = outcome.read(self.course, self.lab, sub.student)
            timed = status == "graded" and ran is not None and bool(ran.timed_out_cells)
            if timed and not alone:
                staging.discard(self.course, sub.student, self.lab)
                return None
            reason = reasons(time_note(timed, retried), reason) if status == "graded" else reason
        staging.settle(self.course, sub.student, self.lab, status == "graded")
        if status == "graded":
            reason = reasons(reason, lost_marks(self.autograded(sub.student)))
        elif status == "failed" or not self.autograded(sub.student).exists():
            nbgrader_glue.zero_scores(self.db_url, self.lab, sub.student)
        result = Result(sub.student, status, reason, round(time.monotonic() - start, 1),
                        sub.digest, self.fingerprint, sub.problem)
        self.journal.record(result)
        return result

    def autograded(self, student: str) -> Path:
        return self.course / "autograded" / student / self.lab / f"{self.lab}.ipynb"

    def run(self, source: Path, progress: bool = True) -> list[Result]:
        """Grade every submission in `source` that the journal does not mark as done."""
        warn_if_unisolated()
        if cleanup.reap_orphans():
            print("stopped kernels left behind by an interrupted earlier run")
        cleanup.remove_stale_scratch()
        self.release()
        print(f"hidden cases: drawn from the secret {self.fingerprint} ({self.secret_file})")
        subs = collect(source, self.lab, self.course / "incoming")
        self.intake(subs)
        todo = still_to_grade(self.journal, subs, self.fingerprint)
        if any(s.notebook is not None for s in todo):
            preflight(self.config, self.env(), self.course, self.scheduler)
        start = time.monotonic()
        with workers.start(self.workers, str(self.course), {**nbgrader_glue.env(), **self.env()},
                           staging.staged_config(self.config),
                           self.settings.memory_mb) as pool, \
                ThreadPoolExecutor(self.workers) as threads, \
                tqdm(total=len(todo), desc=f"grading {self.lab}", disable=not progress) as bar:
            futures = {threads.submit(self.grade_one, s, pool): s for s in todo}
            again = []
            for future in as_completed(futures):
                if future.result() is None:
                    again.append(futures[future])
                else:
                    bar.update()
            for sub in again:  # one at a time, nothing else running
                self.grade_one(sub, pool, alone=True, retried=True)
                bar.update()
        if self.scheduler:
            cluster.close_client(self.scheduler)  # the preflight's, in this process
        self.timings = {"autograde": time.monotonic() - start}
        start = time.monotonic()
        results = feedback_and_reports(self, subs)
        self.timings["feedback and reports"] = time.monotonic() - start
        return results


def time_note(timed_out: bool, retried: bool) -> str:
    """What a graded notebook's reason says of its time: nothing, unless it ran out of
    time, or was graded again alone after running out of time in a batch."""
    if timed_out:
        return ("a cell ran out of time in the batch and again when graded alone" if retried
                else "a cell ran out of time")
    return "a cell ran out of time in the batch; graded again alone" if retried else ""


def saved_settings(grader: Grader) -> dict:
    """What a regrade needs of this run (SETTINGS_FILE): the same kernel, judge and key."""
    return {"workers": grader.workers, "db_url": grader.db_url,
            "secret_file": str(grader.secret_file), "settings": grader.settings.to_dict()}


def _read(path: Path) -> nbformat.NotebookNode | None:
    """The notebook at `path`, or None where there is none to read."""
    try:
        return nbformat.read(path, as_version=4)
    except (OSError, ValueError):
        return None


def warn_if_unisolated() -> None:
    problem = isolation_problem()
    if problem:
        print(f"\n!!! WARNING: student code will NOT be isolated: {problem}.\n!!! It can "
              "read solutions and rewrite the gradebook. Grade on Linux as root.\n",
              file=sys.stderr, flush=True)


def still_to_grade(journal: Journal, subs: list[Submission], fingerprint: str
                   ) -> list[Submission]:
    """The submissions the journal has no grade for (from that notebook, with hidden cases
    from that secret), and a line on those left out or graded again."""
    todo = [s for s in subs if not journal.done(s.student, s.digest, fingerprint)]
    resecret = sum(journal.done(s.student, s.digest) for s in todo)
    edited = sum(journal.done(s.student) for s in todo) - resecret
    if len(todo) < len(subs):
        print(f"resuming: {len(subs) - len(todo)} of {len(subs)} already graded")
    if edited:
        print(f"regrading {edited} changed submission{'s' if edited > 1 else ''}")
    if resecret:
        print(f"regrading {resecret} submission{'s' if resecret > 1 else ''} graded with "
              "another secret before")
    return todo


def autograde_with_retries(grader: Grader, student: str, pool, reason: str) -> tuple[str, str]:
    """(status, reason) of one student's autograde. A locked gradebook is waited for; a
    kernel the sandbox could not start is tried once more, then reported as the grader's
    failure (the next run tries again), never scored as the student's."""
    timeout = grader.settings.notebook_timeout + 180
    kernel_tries = 0
    for attempt in range(4):
        outcome.clear(grader.course, grader.lab, student)  # the executor writes this run's
        try:
            workers.autograde_in(pool, grader.lab, student, timeout, fallback=lambda: (
                grader.nbgrader("autograde", grader.lab, "--student", student, "--force",
                                staging.cli_option(), timeout=timeout)))
            # a deleted test cell is 0 points, never a cell waiting for a person
            nbgrader_glue.zero_deleted_tests(grader.db_url, grader.lab, student)
            return "graded", reason
        except subprocess.TimeoutExpired:
            return "failed", "grading took too long; scored 0"
        except workers.WorkerLost:
            return "failed", (f"the grading worker died twice on this notebook (its judging "
                              f"needs more than {grader.settings.memory_mb} MB, or it was "
                              "killed); scored 0, and the next run of the grader tries again")
        except NbgraderError as e:
            if "database is locked" in str(e) and attempt < 3:
                time.sleep(1 + attempt)
                continue
            ran = outcome.read(grader.course, grader.lab, student)
            if ran is not None and ran.kernel_start_error:
                kernel_tries += 1
                if kernel_tries < 2:
                    time.sleep(2)
                    continue
                why = " ".join(ran.kernel_start_error.split())[:300]
                return "not-graded", (f"not graded: {why} (twice); "
                                      "a previous grade stands until the grader tries again")
            return "failed", f"nbgrader could not grade it: {str(e).splitlines()[-1][:200]}"
    raise AssertionError("not reached")


def feedback_and_reports(grader: Grader, subs: list[Submission],
                         student: str | None = None) -> list[Result]:
    """After a batch: every student's feedback page (or only `student`'s), grades.csv and
    the summary."""
    cleanup.remove_empty_cgroups()
    results = [grader.journal.read(s.student) for s in subs]
    if any((grader.course / "autograded").glob(f"*/{grader.lab}")):
        try:
            feedback.generate(grader.course, grader.lab, student, extra_env=grader.env())
        except NbgraderError as e:  # grades are safe in the gradebook either way
            print(f"warning: feedback not generated: {str(e)[-500:]}", file=sys.stderr)
    scores, ids = nbgrader_glue.scores(grader.db_url, grader.lab, [r.student for r in results])
    out = grader.course / "reports" / grader.lab
    notebooks = {r.student: nb for r in results
                 if (nb := _read(grader.course / "submitted" / r.student / grader.lab
                                 / f"{grader.lab}.ipynb")) is not None}
    starter = _read(grader.course / "release" / grader.lab / f"{grader.lab}.ipynb")
    if starter is not None:  # the columns in the lab's own order (scores gives q1 ... q10)
        order = [grade_id(c) for c in starter.cells if "nbgrader" in c.metadata]
        ids = sorted(ids, key=lambda i: order.index(i) if i in order else len(order))
    matches, findings = [], {}
    try:  # evidence for the instructor: never a reason to lose the grades
        if starter is not None:
            matches = similarity.compare(notebooks, starter)
            released = audit.released_lines(starter)
            findings = {s: audit.audit(nb, released) for s, nb in notebooks.items()}
        similarity.write_report(out, grader.lab, matches, notebooks, findings)
    except Exception as e:  # noqa: BLE001 - whatever a submission made of it
        print(f"warning: no similarity report: {type(e).__name__}: {e}", file=sys.stderr)
    whole = {s.student: reasons(s.problem, whole_reasons(grader.autograded(s.student)))
             for s, r in zip(subs, results, strict=True) if r.status == "graded"}
    path = write_reports(out, grader.lab, results, scores, ids, similarity.flags(matches),
                         audit.flags(findings), whole, grader.course)
    print(f"grades: {path}\nwhy marks were lost: {out / 'reasons.txt'}\n"
          f"feedback: {grader.course / 'feedback'}\nsummary: {out}")
    return results
