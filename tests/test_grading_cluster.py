"""autograde.grading.cluster: grading on Dask distributed, with the local pool's guarantees:
the sandbox, tests judged on the worker, a timeout per notebook, every student graded once
even when a worker is killed mid-batch, and the grades written by the grader alone."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from autograde.course import build
from autograde.grading.grader import Grader
from autograde.sandbox.policy import isolation_problem

distributed = pytest.importorskip("distributed")

LAB = "lab01_layers"
FULL = 25
pytestmark = [pytest.mark.course,
              pytest.mark.skipif(isolation_problem() is not None,
                                 reason=f"no isolation here: {isolation_problem()}")]
FORGE = ("import autograde.judging.kernel_side as K\n"
         "K.answer = lambda request, namespace: {'value': {'__t': 'tuple', 'v': []}}\n")


def _class(folder: Path, students: dict) -> Path:
    folder.mkdir(parents=True)
    for name, nb in students.items():
        nbformat.write(nb, folder / f"{name}.ipynb")
    return folder


def _blank():
    return nbformat.read(build.LABS / LAB / f"{LAB}.ipynb", 4)


def _forged():
    nb = _blank()
    nb.cells.insert(1, nbformat.v4.new_code_cell(FORGE))
    return nb


def _scores(course: Path) -> dict[str, float]:
    with open(course / "reports" / LAB / "grades.csv") as f:
        return {r["student"]: float(r["score"]) for r in csv.DictReader(f)}


def test_a_local_cluster_grades_each_notebook_as_a_task(tmp_path):
    """A real LocalCluster with 2 worker processes: every notebook ran as a task there, the
    forged kernel replies were refused by the judge on the worker, and the scores are the
    local pool's."""
    incoming = _class(tmp_path / "in", {"ann": build.source_notebook(LAB), "bob": _blank(),
                                        "eve": _forged()})
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        grader = Grader(LAB, tmp_path / "course", workers=2,
                        scheduler=cluster.scheduler_address)
        results = {r.student: r for r in grader.run(incoming, progress=False)}
        ran = cluster.scheduler.task_prefixes["execute_notebook"].all_durations["compute"]
    assert ran > 0  # the notebooks (and the preflight) ran on the cluster's workers
    assert _scores(tmp_path / "course") == {"ann": FULL, "bob": 0, "eve": 0}
    assert "NotAnswered" in results["bob"].reason and "CheckFailed" in results["eve"].reason
    assert not (tmp_path / "course" / "jupyter" / "runtime").exists()


def _dask(*args: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen([str(Path(sys.executable).parent / "dask"), *args],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def test_a_worker_killed_mid_batch_costs_nobody_a_grade(tmp_path):
    """`dask scheduler` and two `dask worker` processes on localhost, the grader's command
    pointed at them, and one worker killed with kill -9 while it grades: every student is
    graded once, with full marks, and the run succeeds."""
    info = tmp_path / "scheduler.json"
    scheduler = _dask("scheduler", "--scheduler-file", str(info), "--port", "0",
                      "--dashboard-address", ":0", log=tmp_path / "scheduler.log")
    workers = []
    try:
        deadline = time.monotonic() + 60
        while not info.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(info.read_text())["address"]
        workers = [_dask("worker", address, "--nthreads", "1", "--no-nanny",
                         "--name", f"w{i}", log=tmp_path / f"worker{i}.log") for i in range(2)]
        incoming = _class(tmp_path / "in", {f"s{i}": build.source_notebook(LAB)
                                            for i in range(4)})
        course = tmp_path / "course"
        grade = subprocess.Popen(
            [sys.executable, "-m", "autograde", "grade", LAB, str(incoming), "--course",
             str(course), "--workers", "2", "--scheduler", address],
            cwd=build.ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        journal = course / "journal" / LAB
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and len(list(journal.glob("*.json"))) < 1:
            time.sleep(0.5)
        assert len(list(journal.glob("*.json"))) < 4, "the kill should land mid-batch"
        os.killpg(workers[0].pid, signal.SIGKILL)  # a worker busy with a student
        out, _ = grade.communicate(timeout=600)
        assert grade.returncode == 0, out[-3000:]
    finally:
        for p in [*workers, scheduler]:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=60)
    assert _scores(course) == {f"s{i}": FULL for i in range(4)}
    records = [json.loads(p.read_text()) for p in journal.glob("*.json")]
    assert sorted(r["student"] for r in records) == [f"s{i}" for i in range(4)]
    assert all(r["status"] == "graded" for r in records)


def test_an_unreachable_scheduler_is_named(tmp_path):
    incoming = _class(tmp_path / "in", {"ann": build.source_notebook(LAB)})
    done = subprocess.run([sys.executable, "-m", "autograde", "grade", LAB, str(incoming),
                           "--course", str(tmp_path / "course"), "--scheduler",
                           "tcp://127.0.0.1:9"], cwd=build.ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in done.stderr
    assert "nobody was graded" in done.stderr
