"""What a student's kernel may use and see: limits, and the mounts that hide the rest.

The kernel gets new mount, PID, network, IPC and UTS namespaces (no network, no
view of other processes); tmpfs over everything it must not read (the course
folder, the repository's solutions, build and .git, /root, /home, /tmp, /var/tmp);
its own scratch folder mounted back in; uid/gid `nobody`, no new privileges; and
limits on memory (a cgroup, else RLIMIT_AS), CPU seconds, file size and processes.
"""

import json
import os
import resource
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

NOBODY = 65534
REPO = Path(__file__).resolve().parents[2]
SHARED_HIDDEN = ["/tmp", "/root", "/home", "/var/tmp"]  # hidden first: anything may live there
STASH = "/dev/shm"  # a private tmpfs where kept folders wait while the hiding is done


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
        """The environment the kernel launcher reads the policy from."""
        return {"EFFLAB_SANDBOX": json.dumps(asdict(self)), "EFFLAB_SCRATCH": str(scratch)}

    @classmethod
    def from_env(cls, env=os.environ) -> "Policy":
        return cls(**json.loads(env["EFFLAB_SANDBOX"]))

    def rlimits(self, memory_cgroup: bool) -> list[tuple[int, int]]:
        """(resource, limit) pairs; address space only when no memory cgroup holds it."""
        limits = [(resource.RLIMIT_CPU, self.cpu_seconds),
                  (resource.RLIMIT_FSIZE, self.file_mb * 2**20),
                  (resource.RLIMIT_NPROC, self.processes),
                  (resource.RLIMIT_CORE, 0)]
        if not memory_cgroup:
            limits.append((resource.RLIMIT_AS, self.memory_mb * 2**20))
        return limits


def isolation_problem() -> str | None:
    """Why kernels cannot be isolated here, or None when they can."""
    if not sys.platform.startswith("linux"):
        return f"isolation needs Linux namespaces; this is {sys.platform}"
    if os.geteuid() != 0:
        return "isolation needs root (to mount, switch to uid nobody and set limits)"
    if shutil.which("unshare") is None:
        return "the `unshare` command (util-linux) is missing"
    return None


def repository_secrets() -> list[str]:
    """Folders of this repository no student kernel may read."""
    return [str(REPO / d) for d in ("solutions", "build", ".git", "grading")]


def mount_plan(policy: Policy, scratch: Path) -> list[tuple[str, ...]]:
    """The steps, in order, that give a kernel its view of the disk.

    Python, the venv and this repository may live under /tmp or /root (a CI
    checkout, pyenv): they are set aside in a private tmpfs, the shared folders
    are hidden, they are put back, then the repository's secrets and the course
    are hidden, and last the scratch folder is put back in. Each step is
    ("mkdir", path), ("hide", path) (whatever is there when the step runs: a tmpfs
    over a folder, /dev/null over a file) or a `mount` command line.
    """
    keep = [sys.base_prefix, sys.prefix, str(REPO), str(scratch)]
    stash = [f"{STASH}/.efflab-keep{i}" for i in range(len(keep))]
    steps: list[tuple[str, ...]] = [("mount", "-t", "tmpfs", "-o", "size=256m,mode=1777",
                                     "efflab-shm", STASH)]
    for path, aside in zip(keep, stash, strict=True):
        steps += [("mkdir", aside), ("mount", "--bind", path, aside)]
    steps += [("hide", path) for path in SHARED_HIDDEN]
    for path, aside in zip(keep[:3], stash[:3], strict=True):
        steps += [("mkdir", path), ("mount", "--move", aside, path)]
    steps += [("hide", path) for path in [*repository_secrets(), *policy.hide]]
    steps += [("mkdir", str(scratch)), ("mount", "--move", stash[3], str(scratch))]
    return steps


def kernel_env(policy: Policy, scratch: Path) -> dict[str, str]:
    """The whole environment of the kernel process: nothing of the grader's leaks in."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(scratch),
            "TMPDIR": "/tmp", "MPLCONFIGDIR": str(scratch / ".mpl"),
            # the notebook's backend: plots stay images in the autograded notebook and feedback
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "IPYTHONDIR": str(scratch / ".ipython"), "JUPYTER_RUNTIME_DIR": str(scratch),
            "NBGRADER_EXECUTION": os.environ.get("NBGRADER_EXECUTION", "autograde"),
            "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8",
            "OMP_NUM_THREADS": str(policy.threads), "MKL_NUM_THREADS": str(policy.threads)}
