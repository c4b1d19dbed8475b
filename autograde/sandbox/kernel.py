"""The sandboxed kernel: its kernelspec, and the launcher that applies a `Policy`.

`write_kernelspec` installs the kernel "efflab-sandbox", whose command is this
module. The launcher runs twice: outside (join a memory cgroup, then re-enter
this module through `unshare` in new namespaces) and inside (follow the mount
plan, set limits, drop to nobody, exec ipykernel). The limits and paths come
from environment variables the grader sets (`Policy.to_env`). Where isolation is
impossible the kernel starts unsandboxed and says so loudly on stderr.
"""

import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

from autograde.sandbox.cleanup import join_cgroups
from autograde.sandbox.policy import (
    NOBODY,
    Policy,
    isolation_problem,
    kernel_env,
    mount_plan,
    visible_code,
)

KERNEL_NAME = "efflab-sandbox"
MODULE = __spec__.name  # this module's name, also when run with -m
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS = 1, 38


# the kernel's own console notes (Ctrl-C, connection file, TCP without encryption) would
# repeat for every student on the grader's terminal; students' output goes to the notebook
QUIET = ("--IPKernelApp.log_level=CRITICAL",)


def write_kernelspec(jupyter_dir: Path) -> Path:
    """Install the sandboxed kernel under `jupyter_dir`/kernels (put it on JUPYTER_PATH)."""
    spec = jupyter_dir / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", MODULE, "{connection_file}"],
        "display_name": "Python 3 (efflab sandbox)",
        "language": "python",
        "interrupt_mode": "message",  # signals would reach unshare, not the kernel
    }, indent=1))
    return spec


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def _run_step(step: tuple[str, ...]) -> None:
    """One step of `mount_plan`; a path to hide is looked at only now, when it runs."""
    if step[0] == "hide":
        path = Path(step[1])
        if path.is_dir():
            step = ("mount", "-t", "tmpfs", "-o", "size=512m,mode=1777", "efflab-hidden",
                    str(path))
        elif path.exists():
            step = ("mount", "--bind", "/dev/null", str(path))
        else:
            return
    if step[0] == "mkdir":
        os.makedirs(step[1], exist_ok=True)
    elif step[0] == "symlink":
        os.makedirs(os.path.dirname(step[2]), exist_ok=True)
        os.symlink(step[1], step[2])
    elif step[0] == "touch":
        Path(step[1]).touch()
    elif step[0] == "chroot":
        os.chroot(step[1])
        os.chdir("/")
    else:
        subprocess.run(step, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _detach_from_grader() -> None:
    """Leave the kernel no file descriptor of the grader's: its terminal, log or pipes.

    Standard input and output become /dev/null (a student's prints reach the notebook
    through the kernel's own sockets, made after this); every other inherited
    descriptor is closed. Errors of the launcher itself came before, on the grader's
    stderr, where they belong.
    """
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def outside(connection_file: str) -> None:
    """Grader side: cgroup, then re-enter this module inside new namespaces."""
    problem = isolation_problem()
    if problem or "EFFLAB_SANDBOX" not in os.environ:
        why = problem or "EFFLAB_SANDBOX is not set"
        print(f"!!! efflab: kernel NOT isolated ({why}); student code runs with the "
              "grader's rights !!!", file=sys.stderr, flush=True)
        os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", "-f",
                                  connection_file, *QUIET])
    policy = Policy.from_env()
    joined = join_cgroups(policy.memory_mb, policy.processes)
    os.environ["EFFLAB_CGROUPS"] = ",".join(joined)
    os.execvp("unshare", ["unshare", "--mount", "--pid", "--net", "--ipc", "--uts", "--fork",
                          "--kill-child", "--mount-proc", "--propagation", "private",
                          sys.executable, "-m", MODULE, "--inside", connection_file])


def inside(connection_file: str) -> None:
    """Root in the new namespaces: mounts, limits, drop to nobody, exec the kernel."""
    policy = Policy.from_env()
    scratch = Path(os.environ["EFFLAB_SCRATCH"])
    for step in mount_plan(policy, scratch):
        _run_step(step)
    missing = [p for p in [sys.executable, *visible_code(), str(scratch)]
               if not os.path.exists(p)]
    if missing:  # said on the launcher's stderr, which the grader reports
        sys.exit(f"efflab sandbox: not visible inside the kernel's root: {', '.join(missing)}")
    os.chown(connection_file, NOBODY, NOBODY)
    joined = os.environ.get("EFFLAB_CGROUPS", "").split(",")
    for which, value in policy.rlimits(memory_cgroup="memory" in joined,
                                       pids_cgroup="pids" in joined):
        resource.setrlimit(which, (value, value))
    _detach_from_grader()
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)  # setuid programs cannot give the kernel rights back
    # the kernel dies with its `unshare` parent; set after the uid change, which clears it
    # (not on `unshare` itself: the signal follows the *thread* that started it)
    _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
    os.chdir(scratch)
    os.execve(sys.executable, [sys.executable, "-m", "ipykernel_launcher", "-f",
                               connection_file, *QUIET], kernel_env(policy, scratch))


if __name__ == "__main__":
    if sys.argv[1] == "--inside":
        inside(sys.argv[2])
    else:
        outside(sys.argv[1])
