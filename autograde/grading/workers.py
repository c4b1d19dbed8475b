"""Warm grading workers: processes that import nbgrader and torch once, then autograde.

Each worker is started with the spawn method, the grader's environment and the
grading folder's nbgrader `Config`; it runs torch on one thread (judged checks
compute here, beside one kernel per worker) and exits when its grader dies.
"""

import multiprocessing
import os
import subprocess
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import torch
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory
from sqlalchemy.exc import SAWarning

from autograde.grading.executor import KERNEL_START_FAILED
from autograde.nbgrader_glue import NbgraderError

_API = None


def start(workers: int, course: str, env: dict[str, str], config) -> ProcessPoolExecutor:
    """A pool of `workers` warm processes for the grading folder `course`."""
    return ProcessPoolExecutor(workers, multiprocessing.get_context("spawn"),
                               initializer=_init, initargs=(course, env, config))


def _init(course: str, env: dict[str, str], config) -> None:
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
    os.chdir(course)
    coursedir = CourseDirectory(config=config)
    coursedir.root = course
    _API = NbGraderAPI(coursedir, config=config)


def autograde(lab: str, student: str) -> tuple[bool, str]:
    """In a worker: nbgrader's autograde of one student; (success, error or log tail)."""
    result = _API.autograde(lab, student, force=True, create=True)
    text = (result.get("log") or "") + (result.get("error") or "")
    start = text.find(KERNEL_START_FAILED)  # said in the middle of nbgrader's log
    return bool(result.get("success")), text[start:start + 2000] if start >= 0 else text[-3000:]


def autograde_in(pool: ProcessPoolExecutor | None, lab: str, student: str, timeout: float,
                 fallback: Callable[[], object]) -> None:
    """Autograde one student in a warm worker of `pool`; where there is no pool or the worker
    broke, `fallback()` (a fresh nbgrader process). Raises subprocess.TimeoutExpired or
    NbgraderError when grading fails."""
    if pool is not None:
        try:
            ok, error = pool.submit(autograde, lab, student).result(timeout)
        except TimeoutError:
            raise subprocess.TimeoutExpired("autograde", timeout) from None
        except Exception:  # noqa: BLE001 - a broken worker: grade this one the slow way
            ok, error = None, ""
        if ok is not None:
            if not ok:
                raise NbgraderError(error)
            return
    fallback()
