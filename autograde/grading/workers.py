"""Warm grading workers: processes that import nbgrader and torch once, then autograde.

Each worker is started with the spawn method, the grader's environment and the
grading folder's nbgrader `Config`; it runs torch on one thread (judged checks
compute here, beside one kernel per worker) and exits when its grader dies.
Where the sandbox can isolate (Linux, root) each worker sits in its own memory
cgroup, so an answer that makes the judge build too much kills that worker only.
`Workers` replaces a pool whose worker died, kills the worker (and its kernel) of a
student who ran out of time, and tries the students graded beside it again.
"""

import multiprocessing
import os
import signal
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import psutil
import torch
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory
from sqlalchemy.exc import SAWarning

from autograde.nbgrader_seam.command import NbgraderError
from autograde.sandbox import cleanup
from autograde.sandbox.policy import isolation_problem

_API = None
WORKER_PROCESSES = 4096  # a worker's own pids limit: its kernels move to their own cgroups


class WorkerLost(RuntimeError):
    """The worker grading a student died: out of memory, or killed beside a timed-out one."""


class Workers:
    """A pool of `count` warm workers for the grading folder `course` that heals itself.

    `call` runs one student's task in a worker. A task that runs past its timeout gets
    its worker killed, with every process the worker started (its kernel too); a pool
    that lost a worker is replaced by a fresh one, and the tasks that were running in
    it raise WorkerLost, so that their students can be tried again."""

    def __init__(self, count: int, course: str, env: dict[str, str], config,
                 memory_mb: int | None):
        env = {"EFFLAB_GRADER_PID": str(os.getpid()), **env}  # the cgroups' living owner
        self._args = (count, course, env, config, memory_mb)
        self._pids = Path(course) / "workers"  # STUDENT.pid: the worker grading STUDENT
        scratch_root = config.get("SandboxedExecute", {}).get("scratch_root", "")
        self._scratch_roots = sorted({tempfile.gettempdir(), scratch_root or tempfile.gettempdir()})
        self._pids.mkdir(exist_ok=True)
        self._lock = threading.Lock()
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        count, course, env, config, memory_mb = self._args
        return ProcessPoolExecutor(count, multiprocessing.get_context("spawn"),
                                   initializer=_init, initargs=(course, env, config, memory_mb))

    def call(self, fn: Callable, student: str, *args, timeout: float):
        """fn(*args) in a worker; subprocess.TimeoutExpired past `timeout` (the worker is
        killed), WorkerLost when the worker died under it."""
        with self._lock:
            pool = self._pool
        try:
            future = pool.submit(_task, str(self._pids / f"{student}.pid"), fn, *args)
            return future.result(timeout)
        except TimeoutError:
            self._kill(student)
            self._replace(pool)
            raise subprocess.TimeoutExpired(f"grading {student}", timeout) from None
        except BrokenProcessPool:
            self._replace(pool)
            raise WorkerLost(f"the worker grading {student} died (out of memory, or stopped "
                             "beside a student who ran out of time)") from None

    def _kill(self, student: str) -> None:
        """Kill the worker running `student`'s task and everything it started, and remove
        the scratch folder (a tmpfs whose pages would stay) it was grading in."""
        try:
            pid = int((self._pids / f"{student}.pid").read_text())
            worker = psutil.Process(pid)
            doomed = [worker, *worker.children(recursive=True)]
        except (OSError, ValueError, psutil.Error):
            return
        for proc in doomed:
            try:
                proc.send_signal(signal.SIGKILL)
            except psutil.Error:
                pass
        cleanup.remove_scratch_of(pid, self._scratch_roots)  # a lazy unmount: the tmpfs
        # is freed as the last of its killed processes exits

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is not broken:
                return  # another thread replaced it already
            for proc in list((broken._processes or {}).values()):
                proc.kill()  # a hung worker would run on beside the new pool
            broken.shutdown(wait=False, cancel_futures=True)
            self._pool = self._start()

    def shutdown(self) -> None:
        with self._lock:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()


def start(workers: int, course: str, env: dict[str, str], config,
          memory_mb: int | None) -> Workers:
    """A self-healing pool of `workers` warm processes for the grading folder `course`, each
    held to `memory_mb` where the machine isolates (None: unlimited)."""
    return Workers(workers, course, env, config, memory_mb)


def _task(pid_file: str, fn: Callable, *args):
    """In a worker: say which worker runs this student (for a kill), then run fn."""
    Path(pid_file).write_text(str(os.getpid()))
    try:
        return fn(*args)
    finally:
        Path(pid_file).unlink(missing_ok=True)


def _init(course: str, env: dict[str, str], config, memory_mb: int | None) -> None:
    global _API

    def orphan_watch(parent: int = os.getppid()) -> None:  # a worker never outlives its grader
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=orphan_watch, daemon=True).start()
    torch.set_num_threads(1)
    # nbgrader's gradebook trips SQLAlchemy's "not in session" warning on every
    # submission; it is harmless and would bury the grader's own messages
    warnings.filterwarnings("ignore", category=SAWarning, module="nbgrader")
    os.environ.update(env)
    if memory_mb and not isolation_problem():  # judging a huge answer kills this worker only
        # after the environment: the cgroup is named after the grader, whose reaper must
        # see it as alive (a name without it reads as left behind, and gets killed)
        cleanup.join_cgroups(memory_mb, WORKER_PROCESSES)
    os.chdir(course)
    coursedir = CourseDirectory(config=config)
    coursedir.root = course
    _API = NbGraderAPI(coursedir, config=config)


def autograde(lab: str, student: str) -> tuple[bool, str]:
    """In a worker: nbgrader's autograde of one student; (success, error or log tail)."""
    result = _API.autograde(lab, student, force=True, create=True)
    text = (result.get("log") or "") + (result.get("error") or "")
    return bool(result.get("success")), text[-3000:]  # why, for a person: grading.outcome
    #                                                   holds what the grader decides on


def autograde_in(pool: Workers | None, lab: str, student: str, timeout: float,
                 fallback: Callable[[], object]) -> None:
    """Autograde one student in a warm worker of `pool`, or with `fallback()` (a fresh
    nbgrader process) where there is no pool or the worker could not answer. A worker
    lost under the student is replaced and the student tried once more; lost again,
    WorkerLost is raised (the notebook itself kills its workers). Raises
    subprocess.TimeoutExpired or NbgraderError when grading fails."""
    if pool is None:
        fallback()
        return
    for attempt in range(2):
        try:
            ok, error = pool.call(autograde, student, lab, student, timeout=timeout)
        except WorkerLost:
            if attempt:
                raise
            continue
        except subprocess.TimeoutExpired:
            raise
        except Exception:  # noqa: BLE001 - the worker could not answer: the slow way
            break
        if not ok:
            raise NbgraderError(error)
        return
    fallback()
