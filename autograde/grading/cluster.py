"""Grading on a Dask cluster: each student's notebook runs as one task on a worker.

The grading folder stays on the instructor's machine: intake, nbgrader's own
steps, the gradebook, the journal and feedback. Only the Execute step travels:
a task gets the notebook as nbgrader prepared it (locked and test cells restored
from the gradebook, hidden tests included) with the executor's settings, runs it
in a sandboxed kernel on the worker, judges the test cells in the worker's own
process, and returns the executed notebook as JSON. The one writer of grades is
the grader that submitted the task. The lab's grading key (the key its hidden
cases are drawn from and its held-out digits, never the course's secret) travels
with the task and is installed in the worker's process, never in its kernels.

A worker needs efflib and autograde installed (the checks) and, for the sandbox,
Linux and root; never the gradebook, its credentials, the solutions or the
grading folder. Start workers with `--nthreads 1`: one kernel at a time per
worker process (use `--nworkers` for more).
"""

import os
import tempfile
import threading
from pathlib import Path

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Dict, Unicode

from autograde.grading import outcome
from autograde.grading.course_folder import InCourse
from autograde.grading.executor import KernelStartError, SandboxedExecute
from autograde.grading.outcome import Outcome
from autograde.grading.secret import key_path
from autograde.sandbox import cleanup
from autograde.sandbox.kernel import write_kernelspec

try:  # the `cluster` extra: only an instructor who names a scheduler needs it
    from distributed import Client
except ImportError:
    Client = None

_CLIENTS: dict[str, object] = {}
_ON_WORKER = threading.Lock()  # one notebook at a time per worker process
_WORKER_READY: list[str] = []


class ClusterUnreachable(RuntimeError):
    """The Dask scheduler named on the command line does not answer."""


def client(address: str, timeout: float = 20):
    """This process's client of the scheduler at `address` (made once)."""
    if address not in _CLIENTS:
        if Client is None:
            raise ClusterUnreachable("grading on a Dask cluster needs the `cluster` extra: "
                                     "pip install -e '.[cluster]'")
        try:
            _CLIENTS[address] = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as e:
            raise ClusterUnreachable(f"cannot reach the Dask scheduler at {address}: "
                                     f"{type(e).__name__}: {e}") from None
    return _CLIENTS[address]


def close_client(address: str) -> None:
    """Let go of this process's client of `address` (after a run)."""
    c = _CLIENTS.pop(address, None)
    if c is not None:
        c.close()


class ClusterExecute(InCourse, NbGraderPreprocessor):
    """nbgrader's Execute step, done by a task on the Dask cluster at `scheduler`."""

    scheduler = Unicode("", help="Address of the Dask scheduler (tcp://HOST:8786)").tag(
        config=True)
    settings = Dict(help="The grading settings (autograde.grading.settings.Settings, as "
                         "a dict), sent with each task").tag(config=True)

    def preprocess(self, nb, resources):
        student = resources.get("nbgrader", {}).get("student", "student")
        lab = resources.get("nbgrader", {}).get("assignment", "")
        course = self.course_folder()
        key = key_path(course, lab).read_bytes() if lab else b""
        if lab:
            outcome.clear(course, lab, student)
        future = client(self.scheduler).submit(
            execute_notebook, nbformat.writes(nb), self.settings, student, lab, key,
            pure=False)
        # a worker that dies mid-task has the task rerun elsewhere by the scheduler; the
        # result is recorded once, here, whichever worker produced it
        try:
            nb_json, ran = future.result()
        except KernelStartError as e:
            if lab:
                outcome.write(course, lab, student, Outcome(kernel_start_error=str(e)))
            raise
        if lab:
            outcome.write(course, lab, student, Outcome(**ran))
        return nbformat.reads(nb_json, as_version=4), resources


def _prepare_worker() -> None:
    """Before each task: the sandbox's kernelspec (made once per worker process), and what
    a worker killed on this machine left behind reaped (kernels, cgroups, scratch mounts)."""
    if not _WORKER_READY:
        jupyter = tempfile.mkdtemp(prefix="efflab-dask-jupyter-")
        write_kernelspec(Path(jupyter))
        os.environ["JUPYTER_PATH"] = jupyter
        os.environ["EFFLAB_GRADER_PID"] = str(os.getpid())
        _WORKER_READY.append(jupyter)
    cleanup.reap_orphans()
    cleanup.remove_stale_scratch()


def execute_notebook(nb_json: str, settings: dict, student: str, lab: str = "",
                     grading_key: bytes = b"") -> tuple[str, dict]:
    """On a worker: the notebook executed in a sandboxed kernel, its test cells judged here
    with the lab's grading key (the file the grader made, sent whole); and its outcome."""
    with _ON_WORKER:
        _prepare_worker()
        with tempfile.TemporaryDirectory(prefix="efflab-dask-course-") as course:
            if lab:
                path = key_path(Path(course), lab)
                path.parent.mkdir(mode=0o700)
                path.write_bytes(grading_key)
            nb, _ = SandboxedExecute(settings=settings, course_root=course).preprocess(
                nbformat.reads(nb_json, as_version=4),
                {"nbgrader": {"student": student, "assignment": lab},
                 "metadata": {"path": course}})
            ran = outcome.read(Path(course), lab, student) if lab else None
    return nbformat.writes(nb), (ran or Outcome()).to_dict()
