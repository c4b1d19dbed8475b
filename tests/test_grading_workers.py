"""autograde.grading.workers: a worker that runs out of time is killed with what it
started, a dead worker's pool is replaced, the students beside it are tried again, and a
worker's memory is its own."""

import multiprocessing
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest
from traitlets.config import Config

from autograde.grading import workers
from autograde.grading.settings import Settings
from autograde.sandbox import cleanup
from autograde.sandbox.policy import isolation_problem
from autograde.sandbox.scratch import Scratch


def hang_with_a_child(seconds: float) -> int:
    """Start a process (as nbclient starts a kernel) and hang."""
    child = subprocess.Popen(["sleep", str(seconds)])
    time.sleep(seconds)
    return child.pid


def allocate(mb: int) -> int:
    block = bytearray(mb * 2**20)
    for i in range(0, len(block), 4096):
        block[i] = 1  # touch every page: resident, charged to the cgroup
    return len(block)


@pytest.fixture
def pool(tmp_path):
    with workers.start(2, str(tmp_path), {}, Config(), memory_mb=400) as p:
        yield p


def test_a_task_runs_in_a_worker_and_says_which(pool, tmp_path):
    pid = pool.call(os.getpid, "ada", timeout=120)
    assert pid != os.getpid()
    assert not (tmp_path / "workers" / "ada.pid").exists()  # cleared after the task


def test_a_timed_out_worker_dies_with_its_children_and_the_pool_heals(pool):
    pool.call(os.getpid, "warm", timeout=120)  # workers started
    start = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        pool.call(hang_with_a_child, "slow", 600, timeout=3)
    assert time.monotonic() - start < 60
    time.sleep(1)
    sleepers = [p for p in psutil.process_iter(["cmdline"])
                if p.info["cmdline"] == ["sleep", "600"]]
    assert not [p for p in sleepers if p.status() != psutil.STATUS_ZOMBIE], sleepers
    assert pool.call(os.getpid, "next", timeout=120)  # a fresh pool grades the next one


def hang_in_scratch(root: str, seconds: float) -> None:
    """Make a scratch folder as the executor does, for this worker, and hang in it."""
    with Scratch("slow", Settings().policy(hide=[]), root):
        time.sleep(seconds)


def test_a_killed_workers_scratch_folder_is_removed_at_once(tmp_path, request):
    """Left to the next run, a killed student's tmpfs would hold its pages all batch long."""
    root = Path(tempfile.mkdtemp(prefix="efs"))  # short: socket paths live in it
    request.addfinalizer(lambda: shutil.rmtree(root, ignore_errors=True))
    config = Config()
    config.SandboxedExecute.scratch_root = str(root)
    beside = root / "efflab-1-slow-w1-abc"  # another worker's folder, same student name
    beside.mkdir()
    with workers.start(1, str(tmp_path), {}, config, None) as p:
        with pytest.raises(subprocess.TimeoutExpired):
            p.call(hang_in_scratch, "slow", str(root), 600, timeout=20)
    assert [f.name for f in root.iterdir()] == [beside.name]


def test_a_student_beside_the_killed_one_is_told_to_try_again(pool):
    pool.call(os.getpid, "warm", timeout=120)
    outcome = {}

    def beside():
        try:
            outcome["value"] = pool.call(time.sleep, "beside", 30, timeout=120)
        except workers.WorkerLost as e:
            outcome["lost"] = str(e)
    thread = threading.Thread(target=beside)
    thread.start()
    time.sleep(1)
    with pytest.raises(subprocess.TimeoutExpired):
        pool.call(time.sleep, "slow", 600, timeout=3)
    thread.join(60)
    assert "died" in outcome.get("lost", ""), outcome


@pytest.mark.skipif(bool(isolation_problem()), reason="needs Linux, root and cgroups")
def test_a_worker_that_needs_too_much_memory_dies_alone(pool):
    assert pool.call(allocate, "small", 50, timeout=120) == 50 * 2**20
    with pytest.raises(workers.WorkerLost, match="out of memory"):
        pool.call(allocate, "greedy", 2000, timeout=120)
    assert pool.call(allocate, "after", 50, timeout=120) == 50 * 2**20


class FlakyPool:
    """Loses its worker `losses` times, then grades."""

    def __init__(self, losses: int):
        self.losses, self.calls = losses, 0

    def call(self, fn, student, *args, timeout):
        self.calls += 1
        if self.calls <= self.losses:
            raise workers.WorkerLost("the worker died")
        return True, ""


def test_autograde_in_tries_a_lost_student_once_more():
    fallback = []
    once = FlakyPool(1)
    workers.autograde_in(once, "lab", "ada", 60, fallback=lambda: fallback.append(1))
    assert once.calls == 2 and not fallback
    with pytest.raises(workers.WorkerLost):
        workers.autograde_in(FlakyPool(2), "lab", "ada", 60, fallback=lambda: None)


def own_cgroups() -> str:
    with open("/proc/self/cgroup") as f:
        return f.read()


@pytest.mark.skipif(bool(isolation_problem()), reason="needs Linux, root and cgroups")
@pytest.mark.parametrize("said", [True, False], ids=["grader_pid_given", "not_given"])
def test_a_workers_cgroup_is_named_after_its_living_grader(tmp_path, said):
    """The reaper kills what sits in cgroups of graders that are gone: a worker's cgroup
    must carry a living grader's pid, given or not, or the cleanup of a kernel started
    beside it (by this grader or another) would kill the worker."""
    env = {"EFFLAB_GRADER_PID": str(os.getpid())} if said else {}
    with workers.start(1, str(tmp_path), env, Config(), memory_mb=400) as p:
        groups = p.call(own_cgroups, "ada", timeout=120)
    assert f"efflab-{os.getpid()}-" in groups


def in_fresh_cgroup(_) -> str:
    os.environ.pop("EFFLAB_GRADER_PID", None)
    cleanup.join_cgroups(400, 64)
    return own_cgroups()


@pytest.mark.skipif(bool(isolation_problem()), reason="needs Linux, root and cgroups")
def test_a_cgroup_joined_without_a_grader_is_named_after_the_parent():
    """Named after pid 0 it would read as left behind at once."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as p:
        groups = p.apply(in_fresh_cgroup, (None,))
    assert f"efflab-{os.getpid()}-" in groups
