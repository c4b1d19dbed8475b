"""Start a student's Jupyter kernel in an isolated environment (Linux namespaces, another uid).

The grader (nbgrader, trusted) stays outside and talks to the kernel over Unix
sockets (ZeroMQ "ipc" transport) in the student's scratch folder. The kernel gets:

* new mount, PID, network, IPC and UTS namespaces (`unshare`): no network at all,
  no view of other processes;
* tmpfs mounted over everything it must not read: the course folder (gradebook,
  other students, autograded files), the repository's solutions, build and .git,
  /root, /home, /tmp, /var/tmp; its own scratch folder is mounted back in;
* uid/gid `nobody` with no supplementary groups and no new privileges, so it can
  write nowhere but its scratch folder and fresh /tmp;
* limits: memory (a cgroup, else RLIMIT_AS), CPU seconds, file size, processes.

`write_kernelspec` installs the kernel "efflab-sandbox" whose command is this
module; the limits and paths come from environment variables set by the grader.
Where isolation is impossible (not Linux, not root, no `unshare`) the kernel
starts unsandboxed and says so loudly on stderr and in `isolation_problem()`.
"""

import json
import os
import resource
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

NOBODY = 65534
KERNEL_NAME = "efflab-sandbox"


@dataclass
class Policy:
    """What a student's kernel may use."""

    memory_mb: int = 3072
    cpu_seconds: int = 600
    file_mb: int = 64
    processes: int = 512
    threads: int = 1  # torch/OpenMP threads: parallel graders must not oversubscribe cores
    hide: list[str] = field(default_factory=list)  # extra paths to hide

    def to_env(self, scratch: Path) -> dict[str, str]:
        return {"EFFLAB_SANDBOX": json.dumps(asdict(self)), "EFFLAB_SCRATCH": str(scratch)}


def isolation_problem() -> str | None:
    """Why kernels cannot be isolated here, or None when they can."""
    if not sys.platform.startswith("linux"):
        return f"isolation needs Linux namespaces; this is {sys.platform}"
    if os.geteuid() != 0:
        return "isolation needs root (to mount, switch to uid nobody and set limits)"
    if shutil.which("unshare") is None:
        return "the `unshare` command (util-linux) is missing"
    return None


def write_kernelspec(jupyter_dir: Path) -> Path:
    """Install the sandboxed kernel under `jupyter_dir`/kernels (put it on JUPYTER_PATH)."""
    spec = jupyter_dir / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "autograde.sandbox", "{connection_file}"],
        "display_name": "Python 3 (efflab sandbox)",
        "language": "python",
        "interrupt_mode": "message",  # signals would reach unshare, not the kernel
    }, indent=1))
    return spec


REPO = Path(__file__).resolve().parents[1]
SHARED_HIDDEN = ["/tmp", "/root", "/home", "/var/tmp"]  # hidden first: anything may live there


def default_hidden() -> list[str]:
    """Secrets of this repository no student kernel may read (hidden after SHARED_HIDDEN)."""
    return [str(REPO / d) for d in ("solutions", "build", ".git", "grading")]


def _hide(paths) -> None:
    for path in paths:
        p = Path(path)
        if p.is_dir():
            _run("mount", "-t", "tmpfs", "-o", "size=512m,mode=1777", "efflab-hidden", path)
        elif p.exists():
            _run("mount", "--bind", "/dev/null", path)


CGROUP_BASES = ("/sys/fs/cgroup/memory", "/sys/fs/cgroup")  # cgroup v1, v2


def _memory_cgroup(limit_mb: int) -> bool:
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


def _die_with_parent() -> None:
    """prctl(PR_SET_PDEATHSIG, SIGKILL): the kernel dies when its `unshare` parent dies.

    Changing uid clears this setting, so the kernel sets it after dropping to nobody.
    (Not set on `unshare` itself: the signal follows the *thread* that started it.)
    Kernels left by a grader killed with kill -9 are reaped by `reap_orphans`.
    """
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)


def _no_new_privileges() -> None:
    """prctl(PR_SET_NO_NEW_PRIVS): setuid programs cannot give the kernel rights back."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")


def _kernel_cgroups(pattern: str = "efflab-*"):
    for base in CGROUP_BASES:
        yield from Path(base).glob(pattern)


def _grader_gone(name: str) -> bool:
    """For an `efflab-GRADERPID-...` cgroup or folder: its grading process has exited."""
    pid = name.split("-")[1]
    return pid.isdigit() and (int(pid) == 0 or not Path(f"/proc/{pid}").exists())


def reap_orphans() -> int:
    """Kill kernels whose grader is gone (e.g. after kill -9); return how many."""
    killed = 0
    for group in _kernel_cgroups("efflab-*-*"):
        if not _grader_gone(group.name):
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
    import shutil
    import tempfile

    removed = 0
    for folder in Path(root or tempfile.gettempdir()).glob("efflab-*-*"):
        if folder.is_dir() and _grader_gone(folder.name):
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


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _outer(connection_file: str) -> None:
    """Grader side: cgroup, then re-enter this module inside new namespaces."""
    problem = isolation_problem()
    if problem or "EFFLAB_SANDBOX" not in os.environ:
        why = problem or "EFFLAB_SANDBOX is not set"
        print(f"!!! efflab: kernel NOT isolated ({why}); student code runs with the "
              "grader's rights !!!", file=sys.stderr, flush=True)
        os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", "-f",
                                  connection_file])
    policy = json.loads(os.environ["EFFLAB_SANDBOX"])
    os.environ["EFFLAB_CGROUP"] = "1" if _memory_cgroup(policy["memory_mb"]) else ""
    os.execvp("unshare", ["unshare", "--mount", "--pid", "--net", "--ipc", "--uts", "--fork",
                          "--kill-child", "--mount-proc", "--propagation", "private",
                          sys.executable, "-m", "autograde.sandbox", "--inside",
                          connection_file])


def _inside(connection_file: str) -> None:
    """Root in the new namespaces: hide, mount the scratch back, limit, drop to nobody, exec."""
    policy = json.loads(os.environ["EFFLAB_SANDBOX"])
    scratch = Path(os.environ["EFFLAB_SCRATCH"])
    # folders the kernel needs inside hidden ones: its scratch, and Python itself (which
    # may live under /root, e.g. with pyenv); set aside, hide, then put back in place
    # Python, the venv and this repository may live under /tmp or /root (a CI checkout,
    # pyenv): set them aside, hide the shared folders, put them back, then hide the
    # repository's secrets and the course, and last put the scratch folder back in.
    keep = [sys.base_prefix, sys.prefix, str(REPO), str(scratch)]
    _run("mount", "-t", "tmpfs", "-o", "size=256m,mode=1777", "efflab-shm", "/dev/shm")
    for i, path in enumerate(keep):
        os.makedirs(f"/dev/shm/.efflab-keep{i}")
        _run("mount", "--bind", path, f"/dev/shm/.efflab-keep{i}")
    _hide(SHARED_HIDDEN)
    for i, path in enumerate(keep[:3]):
        os.makedirs(path, exist_ok=True)
        _run("mount", "--move", f"/dev/shm/.efflab-keep{i}", path)
    _hide([*default_hidden(), *policy["hide"]])
    os.makedirs(str(scratch), exist_ok=True)
    _run("mount", "--move", "/dev/shm/.efflab-keep3", str(scratch))
    os.chown(connection_file, NOBODY, NOBODY)
    limits = [(resource.RLIMIT_CPU, policy["cpu_seconds"]),
              (resource.RLIMIT_FSIZE, policy["file_mb"] * 2**20),
              (resource.RLIMIT_NPROC, policy["processes"]),
              (resource.RLIMIT_CORE, 0)]
    if not os.environ.get("EFFLAB_CGROUP"):
        limits.append((resource.RLIMIT_AS, policy["memory_mb"] * 2**20))
    for which, value in limits:
        resource.setrlimit(which, (value, value))
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    _no_new_privileges()
    _die_with_parent()  # the kernel dies with unshare
    os.chdir(scratch)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(scratch),
           "TMPDIR": "/tmp", "MPLCONFIGDIR": str(scratch / ".mpl"), "MPLBACKEND": "Agg",
           "IPYTHONDIR": str(scratch / ".ipython"), "JUPYTER_RUNTIME_DIR": str(scratch),
           "NBGRADER_EXECUTION": os.environ.get("NBGRADER_EXECUTION", "autograde"),
           "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8",
           "OMP_NUM_THREADS": str(policy["threads"]), "MKL_NUM_THREADS": str(policy["threads"])}
    os.execve(sys.executable, [sys.executable, "-m", "ipykernel_launcher", "-f",
                               connection_file], env)


if __name__ == "__main__":
    if sys.argv[1] == "--inside":
        _inside(sys.argv[2])
    else:
        _outer(sys.argv[1])
