"""`python -m autograde grade LAB SUBMISSIONS`: grade a class in one command.

nbgrader stays the engine (gradebook, restoring test cells, scoring, feedback);
this adds what it lacks: sandboxed kernels (autograde.sandbox), parallel workers,
a journal so an interrupted run resumes without losing or repeating work, a
reason for every lost mark, grades.csv, feedback without hidden tests, and a
summary (score histogram, failures by question).
"""

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

from autograde import build, nbg, sandbox
from autograde.executor import is_test_cell
from autograde.submissions import Submission, collect, reasons, repair

COURSE_ID = "efflab"
CONFIG = '''"""nbgrader settings of this grading folder (written by `python -m autograde grade`)."""
c = get_config()  # noqa: F821
c.CourseDirectory.root = {root!r}
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.db_url = {db!r}
# nbgrader's default course id "" creates no course row: SQLite does not mind, but
# PostgreSQL's foreign keys refuse every assignment
c.CourseDirectory.course_id = {course_id!r}
c.Autograde.autograde_preprocessors = [
    "autograde.executor.SandboxedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.SandboxedExecute.timeout = {cell_timeout}
c.SandboxedExecute.notebook_timeout = {notebook_timeout}
c.SandboxedExecute.memory_mb = {memory_mb}
c.SandboxedExecute.judge = {judge}
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
    "autograde.executor.ShortTracebacks",
    "nbgrader.preprocessors.ClearHiddenTests",
]
'''


@dataclass
class Result:
    """What happened to one student's submission."""

    student: str
    status: str            # graded | no-notebook | failed
    reason: str = ""
    seconds: float = 0.0


class Grader:
    """One lab, one grading folder; `run(submissions)` grades and reports."""

    def __init__(self, lab: str, course: Path, workers: int = 2, db_url: str | None = None,
                 cell_timeout: int = 60, notebook_timeout: int = 600, memory_mb: int = 3072,
                 judge: bool = True):
        if lab not in build.lab_names():
            raise ValueError(f"unknown lab {lab!r}; labs: {', '.join(build.lab_names())}")
        self.lab, self.course, self.workers = lab, course.resolve(), max(1, workers)
        self.db_url = db_url or f"sqlite:///{self.course / 'gradebook.db'}"
        self.journal = self.course / "journal" / lab
        self.notebook_timeout = notebook_timeout
        self.course.mkdir(parents=True, exist_ok=True)
        (self.course / "nbgrader_config.py").write_text(CONFIG.format(
            root=str(self.course), db=self.db_url, course_id=COURSE_ID,
            cell_timeout=cell_timeout,
            notebook_timeout=notebook_timeout, memory_mb=memory_mb, judge=judge))
        sandbox.write_kernelspec(self.course / "jupyter")

    def env(self) -> dict[str, str]:
        """What nbgrader and its kernels need on top of nbg.env()."""
        return {"JUPYTER_PATH": str(self.course / "jupyter"),
                "EFFLAB_COURSE_ROOT": str(self.course), "EFFLAB_GRADER_PID": str(os.getpid())}

    def nbgrader(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
        return nbg.run(self.course, *args, timeout=timeout, extra_env=self.env())

    # --- steps ----------------------------------------------------------------------

    def release(self) -> None:
        """The lab's source and gradebook entries (idempotent)."""
        build.write_sources([self.lab], self.course / "source")
        self.nbgrader("generate_assignment", self.lab, "--force")

    def intake(self, subs: list[Submission]) -> list[Submission]:
        """Copy each notebook into submitted/ and register every student."""
        from nbgrader.api import Gradebook

        with Gradebook(self.db_url, COURSE_ID) as gb:
            for sub in subs:
                gb.update_or_create_student(sub.student)
        known = {c.metadata["nbgrader"]["grade_id"]
                 for c in build.source_notebook(self.lab).cells if "nbgrader" in c.metadata}
        for sub in subs:
            dest = self.course / "submitted" / sub.student / self.lab
            if self._done(sub.student):
                continue
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            if sub.notebook is not None:
                nb, notes = repair(sub.notebook, known)
                nbformat.write(nb, dest / f"{self.lab}.ipynb")
                sub.problem = reasons(sub.problem, *notes)
        return subs

    def _done(self, student: str) -> bool:
        return (self.journal / f"{student}.json").exists()

    def _record(self, result: Result) -> None:
        self.journal.mkdir(parents=True, exist_ok=True)
        tmp = self.journal / f".{result.student}.tmp"
        tmp.write_text(json.dumps(asdict(result)))
        os.replace(tmp, self.journal / f"{result.student}.json")  # atomic: all or nothing

    def grade_one(self, sub: Submission, pool=None) -> Result:
        """nbgrader autograde for one student, in a warm worker process; never raises."""
        start = time.monotonic()
        reason = sub.problem
        if sub.notebook is None:  # nothing nbgrader can run: every grade is 0, with the reason
            self._zero(sub.student)
            result = Result(sub.student, "no-notebook", reason, 0.0)
            self._record(result)
            return result
        for attempt in range(3):
            try:
                self._autograde(sub.student, pool)
                status = "graded"
                reason = reasons(reason, self._lost_marks(sub.student))
                break
            except subprocess.TimeoutExpired:
                status, reason = "failed", "grading took too long; scored 0"
                self._zero(sub.student)
                break
            except nbg.NbgraderError as e:
                if "database is locked" in str(e) and attempt < 2:
                    time.sleep(1 + attempt)
                    continue
                status = "failed"
                reason = f"nbgrader could not grade it: {str(e).splitlines()[-1][:200]}"
                self._zero(sub.student)
                break
        result = Result(sub.student, status, reason, round(time.monotonic() - start, 1))
        self._record(result)
        return result

    def _autograde(self, student: str, pool) -> None:
        """In a warm worker (nbgrader imported once), else as a fresh `nbgrader` process."""
        if pool is not None:
            try:
                ok, error = pool.submit(_worker_autograde, self.lab, student).result(
                    timeout=self.notebook_timeout + 180)
            except TimeoutError:
                raise subprocess.TimeoutExpired("autograde", self.notebook_timeout) from None
            except Exception:  # noqa: BLE001 - a broken worker: grade this one the slow way
                ok, error = None, ""
            if ok is not None:
                if not ok:
                    raise nbg.NbgraderError(error)
                return
        self.nbgrader("autograde", self.lab, "--student", student, "--force",
                      timeout=self.notebook_timeout + 180)

    def _zero(self, student: str) -> None:
        """Every grade of a student whose notebook could not be graded is 0, not missing."""
        from nbgrader.api import Gradebook, MissingEntry

        with Gradebook(self.db_url, COURSE_ID) as gb:
            try:
                sub = gb.update_or_create_submission(self.lab, student)
            except MissingEntry:
                return
            for nb in sub.notebooks:
                for grade in nb.grades:
                    grade.auto_score = 0
                    grade.needs_manual_grade = False
            gb.db.commit()

    def _lost_marks(self, student: str) -> str:
        """Why test cells failed, read from the autograded notebook (the grader's copy)."""
        path = self.course / "autograded" / student / self.lab / f"{self.lab}.ipynb"
        if not path.exists():
            return "no autograded notebook"
        nb = nbformat.read(path, as_version=4)
        lost: dict[str, list[str]] = {}  # message -> grade ids, so repeats read once
        for cell in nb.cells:
            if is_test_cell(cell):
                errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
                if errors:
                    why = f"{errors[0].ename}: {str(errors[0].evalue).splitlines()[0][:150]}"
                    if errors[0].ename not in ("NotRun", "IntegrityError", "KernelDied"):
                        why = errors[0].ename  # a failed check: the feedback has the details
                    lost.setdefault(why, []).append(cell.metadata["nbgrader"]["grade_id"])
        return "; ".join(f"{', '.join(ids)}: {why}" for why, ids in lost.items())

    def run(self, source: Path, progress: bool = True) -> list[Result]:
        """Grade every submission in `source` that the journal does not mark as done."""
        from tqdm.auto import tqdm

        problem = sandbox.isolation_problem()
        if problem:
            print(f"\n!!! WARNING: student code will NOT be isolated: {problem}.\n!!! It can "
                  "read solutions and rewrite the gradebook. Grade on Linux as root.\n",
                  file=sys.stderr, flush=True)
        if sandbox.reap_orphans():
            print("stopped kernels left behind by an interrupted earlier run")
        sandbox.remove_stale_scratch()
        self.release()
        subs = self.intake(collect(source, self.lab, self.course / "incoming"))
        todo = [s for s in subs if not self._done(s.student)]
        if len(todo) < len(subs):
            print(f"resuming: {len(subs) - len(todo)} of {len(subs)} already graded")
        start = time.monotonic()
        ctx = multiprocessing.get_context("spawn")
        worker_env = {**nbg.env(), **self.env()}
        with ProcessPoolExecutor(self.workers, ctx, initializer=_init_worker,
                                 initargs=(str(self.course), worker_env)) as workers, \
                ThreadPoolExecutor(self.workers) as pool, \
                tqdm(total=len(todo), desc=f"grading {self.lab}", disable=not progress) as bar:
            for future in as_completed([pool.submit(self.grade_one, s, workers)
                                        for s in todo]):
                future.result()
                bar.update()
        self.timings = {"autograde": time.monotonic() - start}
        sandbox.remove_empty_cgroups()
        results = [Result(**json.loads((self.journal / f"{s.student}.json").read_text()))
                   for s in subs]
        start = time.monotonic()
        if any((self.course / "autograded").glob(f"*/{self.lab}")):
            try:
                self.nbgrader("generate_feedback", self.lab, "--force")
            except nbg.NbgraderError as e:  # grades are safe in the gradebook either way
                print(f"warning: feedback not generated: {str(e)[-500:]}", file=sys.stderr)
        from autograde.report import write_reports
        write_reports(self, results)
        self.timings["feedback and reports"] = time.monotonic() - start
        return results


_API = None


def _init_worker(course: str, env: dict[str, str]) -> None:
    """A grading worker: the grader's environment and one NbGraderAPI, imported once."""
    global _API
    import threading

    def orphan_watch(parent: int = os.getppid()) -> None:  # a worker never outlives its grader
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=orphan_watch, daemon=True).start()
    import torch

    torch.set_num_threads(1)  # judged checks run here, beside one kernel per worker
    os.environ.update(env)
    os.chdir(course)
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=course).load_config()
    coursedir = CourseDirectory(config=config)
    coursedir.root = course
    _API = NbGraderAPI(coursedir, config=config)


def _worker_autograde(lab: str, student: str) -> tuple[bool, str]:
    result = _API.autograde(lab, student, force=True, create=True)
    return bool(result.get("success")), (result.get("error") or result.get("log") or "")[-3000:]
