"""Memory cgroups of kernels, and what a grader killed with kill -9 leaves behind.

Kernel cgroups and scratch folders are named `efflab-GRADERPID-...`, so a new run
can tell those of a dead grader from those of one still running.
"""

import os
import shutil
import tempfile
from pathlib import Path

CGROUP_BASES = ("/sys/fs/cgroup/memory", "/sys/fs/cgroup")  # cgroup v1, v2


def join_memory_cgroup(limit_mb: int) -> bool:
    """Put this process in a fresh memory cgroup (v1 or v2) with a hard limit."""
    pid = os.getpid()
    for base, limit_file in zip(CGROUP_BASES, ("memory.limit_in_bytes", "memory.max"),
                                strict=True):
        try:
            group = Path(base) / f"efflab-{os.environ.get('EFFLAB_GRADER_PID', 0)}-{pid}"
            group.mkdir(exist_ok=True)
            (group / limit_file).write_text(str(limit_mb * 2**20))
            swap = group / "memory.memsw.limit_in_bytes"
            if swap.exists():
                try:
                    swap.write_text(str(limit_mb * 2**20))
                except OSError:
                    pass
            (group / "cgroup.procs").write_text(str(pid))
            return True
        except OSError:
            continue
    return False


def _kernel_cgroups(pattern: str = "efflab-*"):
    for base in CGROUP_BASES:
        yield from Path(base).glob(pattern)


def grader_gone(name: str) -> bool:
    """For an `efflab-GRADERPID-...` cgroup or folder: its grading process has exited."""
    pid = name.split("-")[1]
    return pid.isdigit() and (int(pid) == 0 or not Path(f"/proc/{pid}").exists())


def reap_orphans() -> int:
    """Kill kernels whose grader is gone (e.g. after kill -9); return how many."""
    killed = 0
    for group in _kernel_cgroups("efflab-*-*"):
        if not grader_gone(group.name):
            continue  # its grader still runs
        try:
            for pid in (group / "cgroup.procs").read_text().split():
                os.kill(int(pid), 9)
                killed += 1
        except (OSError, ValueError):
            pass
    return killed


def remove_stale_scratch(root: str | None = None) -> int:
    """Remove scratch folders (`efflab-GRADERPID-*`) whose grader is gone; how many."""
    removed = 0
    for folder in Path(root or tempfile.gettempdir()).glob("efflab-*-*"):
        if folder.is_dir() and grader_gone(folder.name):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def remove_empty_cgroups() -> None:
    """Remove the memory cgroups of kernels that have exited."""
    for group in _kernel_cgroups():
        try:
            if not (group / "cgroup.procs").read_text().strip():
                group.rmdir()
        except OSError:
            pass
