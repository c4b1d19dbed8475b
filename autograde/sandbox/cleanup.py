"""The cgroups of kernels, and what a grader killed with kill -9 leaves behind.

Kernel cgroups and scratch folders are named `efflab-GRADERPID-...`, so a new run
can tell those of a dead grader from those of one still running.
"""

import ctypes
import os
import re
import shutil
import tempfile
from pathlib import Path

V1 = {"memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/pids"}
V2 = "/sys/fs/cgroup"
CGROUP_BASES = (*V1.values(), V2)
_MNT_DETACH = 2


def _limits(memory_mb: int, processes: int) -> dict[str, dict[str, str]]:
    """Per controller: the files that set its limit (v1 names, then v2 names)."""
    memory = str(memory_mb * 2**20)
    return {"memory": {"memory.limit_in_bytes": memory, "memory.memsw.limit_in_bytes": memory,
                       "memory.max": memory, "memory.swap.max": "0"},
            "pids": {"pids.max": str(processes)}}


def join_cgroups(memory_mb: int, processes: int) -> list[str]:
    """Put this process in fresh cgroups that cap its memory and its number of processes
    (tasks: threads count); return the controllers joined ("memory", "pids").

    The cgroup is named after the grader (EFFLAB_GRADER_PID), or else after the process
    that started this one: a name must carry a living pid, or the reaper of any grader
    running beside it would take this process for one left behind and kill it."""
    grader = os.environ.get("EFFLAB_GRADER_PID") or str(os.getppid())
    name = f"efflab-{grader}-{os.getpid()}"
    joined = []
    for controller, files in _limits(memory_mb, processes).items():
        for base in (V1[controller], V2):
            if base == V2 and not Path(V2, "cgroup.controllers").exists():
                continue  # no unified hierarchy here (a folder made there is not a cgroup)
            group = Path(base) / name
            try:
                group.mkdir(exist_ok=True)
                written = 0
                for limit, value in files.items():
                    if (group / limit).exists():
                        try:
                            (group / limit).write_text(value)
                            written += 1
                        except OSError:
                            if not limit.startswith(("memory.memsw", "memory.swap")):
                                raise
                if not written:
                    raise OSError(f"no {controller} controller at {base}")
                (group / "cgroup.procs").write_text(str(os.getpid()))
                joined.append(controller)
                break
            except OSError:
                try:
                    group.rmdir()
                except OSError:
                    pass
    return joined


def _kernel_cgroups(pattern: str = "efflab-*"):
    for base in CGROUP_BASES:
        yield from Path(base).glob(pattern)


def grader_gone(name: str) -> bool:
    """For an `efflab-GRADERPID-...` cgroup or folder: its grading process has exited."""
    pid = name.split("-")[1]
    return pid.isdigit() and (int(pid) == 0 or not Path(f"/proc/{pid}").exists())


def reap_orphans() -> int:
    """Kill kernels whose grader is gone (e.g. after kill -9); return how many."""
    killed: set[int] = set()
    for group in _kernel_cgroups("efflab-*-*"):
        if not grader_gone(group.name):
            continue  # its grader still runs
        try:
            for pid in map(int, (group / "cgroup.procs").read_text().split()):
                if pid not in killed:
                    os.kill(pid, 9)
                    killed.add(pid)
        except (OSError, ValueError):
            pass
    return len(killed)


def unmount(path: Path) -> None:
    """Detach whatever is mounted on `path` (a scratch tmpfs); nothing if nothing is."""
    libc = ctypes.CDLL(None, use_errno=True)
    while libc.umount2(str(path).encode(), _MNT_DETACH) == 0:
        pass


def _remove_scratch(folders) -> int:
    """Unmount and delete each scratch folder (a tmpfs, or a plain folder); how many."""
    removed = 0
    for folder in folders:
        unmount(folder)
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed


def remove_stale_scratch(root: str | None = None) -> int:
    """Remove scratch folders (`efflab-GRADERPID-*`) whose grader is gone; how many."""
    return _remove_scratch(folder for folder in
                           Path(root or tempfile.gettempdir()).glob("efflab-*-*")
                           if folder.is_dir() and grader_gone(folder.name))


def remove_scratch_of(worker: int, roots: list[str]) -> int:
    """Remove the scratch folders (`efflab-GRADERPID-STUDENT-wWORKERPID-*`) a grading
    worker killed mid-student left behind, while its grader runs on; how many."""
    mine = re.compile(rf"efflab-\d+-.*-w{int(worker)}-[a-z0-9_]+")
    return _remove_scratch(folder for root in roots
                           for folder in Path(root).glob(f"efflab-*-w{int(worker)}-*")
                           if folder.is_dir() and mine.fullmatch(folder.name))


def remove_empty_cgroups() -> None:
    """Remove the cgroups of kernels that have exited."""
    for group in _kernel_cgroups():
        try:
            if not (group / "cgroup.procs").read_text().strip():
                group.rmdir()
        except OSError:
            pass
