"""The grading pipeline of one lab in one grading folder.

release (with the lab's grading key, from the course's secret) -> intake -> warm
workers run nbgrader's autograde (each notebook in a sandboxed kernel, test cells
judged in the grader, hidden cases drawn from the key) -> journal -> feedback ->
grades.csv and summary. A notebook nbgrader cannot grade scores 0 with a reason;
nothing raised for one student stops the others. The folder's setup and reports are
grading.folder's.
"""

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from tqdm.auto import tqdm

from autograde.grading import cluster, outcome, staging, workers
from autograde.grading.folder import GradingFolder
from autograde.grading.journal import Journal, Result
from autograde.grading.preflight import preflight
from autograde.grading.report import lost_marks
from autograde.grading.submissions import Submission, collect, reasons
from autograde.nbgrader_seam import command, gradebook
from autograde.nbgrader_seam.command import NbgraderError
from autograde.sandbox import cleanup
from autograde.sandbox.policy import isolation_problem


class Grader(GradingFolder):
    """One lab, one grading folder; `run(submissions)` grades and reports."""

    def grade_one(self, sub: Submission, pool=None, alone: bool = False,
                  retried: bool = False) -> Result | None:
        """nbgrader autograde for one student (into grading.staging), in a warm worker
        process; never raises. A cell interrupted for time in a batch returns None, and
        `run` grades it once more alone (`retried=True`), so that a busy machine never
        costs marks. Where the grader could not run it, a previous grade stands."""
        start = time.monotonic()
        status, reason = "no-notebook", sub.problem
        if sub.notebook is not None:
            status, reason = self.autograde(sub.student, pool, reason)
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
            gradebook.zero_scores(self.db_url, self.lab, sub.student)
        result = Result(sub.student, status, reason, round(time.monotonic() - start, 1),
                        sub.digest, self.fingerprint, sub.problem)
        self.journal.record(result)
        return result

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
        with workers.start(self.workers, str(self.course), {**command.env(), **self.env()},
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
        results = self.report(subs)
        self.timings["feedback and reports"] = time.monotonic() - start
        return results

    def autograde(self, student: str, pool, reason: str) -> tuple[str, str]:
        """(status, reason) of one student's autograde. A locked gradebook is waited for; a
        kernel the sandbox could not start is tried once more, then reported as the grader's
        failure (the next run tries again), never scored as the student's."""
        timeout = self.settings.notebook_timeout + 180
        kernel_tries = 0
        for attempt in range(4):
            outcome.clear(self.course, self.lab, student)  # the executor writes this run's
            try:
                workers.autograde_in(pool, self.lab, student, timeout, fallback=lambda: (
                    self.nbgrader("autograde", self.lab, "--student", student, "--force",
                                    staging.cli_option(), timeout=timeout)))
                # a deleted test cell is 0 points, never a cell waiting for a person
                gradebook.zero_deleted_tests(self.db_url, self.lab, student)
                return "graded", reason
            except subprocess.TimeoutExpired:
                return "failed", "grading took too long; scored 0"
            except workers.WorkerLost:
                return "failed", (f"the grading worker died twice on this notebook (its judging "
                                  f"needs more than {self.settings.memory_mb} MB, or it was "
                                  "killed); scored 0, and the next run of the grader tries again")
            except NbgraderError as e:
                if "database is locked" in str(e) and attempt < 3:
                    time.sleep(1 + attempt)
                    continue
                ran = outcome.read(self.course, self.lab, student)
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


def time_note(timed_out: bool, retried: bool) -> str:
    """What a graded notebook's reason says of its time: nothing, unless it ran out of
    time, or was graded again alone after running out of time in a batch."""
    if timed_out:
        return ("a cell ran out of time in the batch and again when graded alone" if retried
                else "a cell ran out of time")
    return "a cell ran out of time in the batch; graded again alone" if retried else ""


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
