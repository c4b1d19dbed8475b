"""What a student's kernel may use and see: limits, and the allow-list of its filesystem.

The kernel gets new mount, PID, network, IPC and UTS namespaces (no network, no
view of other processes) and a root of its own, built in a private tmpfs and
entered with chroot: the system's programs and libraries, Python, the venv and
efflib/autograde, all read-only; a private /proc, /dev (a few devices), /tmp and
/dev/shm; and its own scratch folder, the only place it shares with the grader.
Nothing else of the disk is there: not the submissions, not the course, not other
courses or backups, not /run. It runs as uid/gid `nobody` with no new privileges,
in its own cgroups (memory, and the number of processes: never a per-uid limit that
one kernel could exhaust for all), with limits on CPU seconds and file size.
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
STASH = "/dev/shm"  # a private tmpfs (in the kernel's mount namespace) holds the new root
ROOT = f"{STASH}/root"
SYSTEM = ["/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]
DEVICES = ["null", "zero", "full", "random", "urandom"]


@dataclass
class Policy:
    """What a student's kernel may use (the grader's choices come from its settings:
    autograde.grading.settings.Settings.policy)."""

    memory_mb: int
    cpu_seconds: int
    disk_mb: int  # each of scratch, /tmp and /dev/shm is a tmpfs of this size
    file_mb: int = 64
    processes: int = 512  # in the kernel's own pids cgroup (RLIMIT_NPROC only without one)
    threads: int = 1  # torch/OpenMP threads: parallel graders must not oversubscribe cores
    hide: list[str] = field(default_factory=list)  # extra paths to hide
    # folders shown in place of others ({shown path: source}): the clean room's efflib
    replace: dict[str, str] = field(default_factory=dict)

    def to_env(self, scratch: Path) -> dict[str, str]:
        """The environment the kernel launcher reads the policy from."""
        return {"EFFLAB_SANDBOX": json.dumps(asdict(self)), "EFFLAB_SCRATCH": str(scratch)}

    @classmethod
    def from_env(cls, env=os.environ) -> "Policy":
        return cls(**json.loads(env["EFFLAB_SANDBOX"]))

    def rlimits(self, memory_cgroup: bool, pids_cgroup: bool) -> list[tuple[int, int]]:
        """(resource, limit) pairs; address space and process count only where no cgroup
        holds them (RLIMIT_NPROC counts every process of uid nobody on the machine: one
        kernel could use it up for all the others)."""
        limits = [(resource.RLIMIT_CPU, self.cpu_seconds),
                  (resource.RLIMIT_FSIZE, self.file_mb * 2**20),
                  (resource.RLIMIT_CORE, 0)]
        if not memory_cgroup:
            limits.append((resource.RLIMIT_AS, self.memory_mb * 2**20))
        if not pids_cgroup:
            limits.append((resource.RLIMIT_NPROC, self.processes))
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
    """Folders of this repository no student kernel may read (hidden again, in case a
    visible folder holds them)."""
    return [str(REPO / d) for d in ("solutions", "build", ".git", "grading")]


def visible_code() -> list[str]:
    """What the kernel runs on besides the system: Python, the venv, efflib and autograde.

    A path reached through a symbolic link is shown at both its own and its real
    place (a venv behind a link, as in some CI checkouts). Paths the system folders
    already show are left out.
    """
    wanted = [sys.base_prefix, sys.prefix, str(REPO / "efflib"), str(REPO / "autograde")]
    system = [os.path.realpath(p) for p in SYSTEM if os.path.exists(p)]
    paths: list[str] = []
    for path in wanted:
        real = os.path.realpath(path)
        if any(real == s or real.startswith(s + "/") for s in system):
            continue
        paths += [p for p in dict.fromkeys([real, os.path.abspath(path)]) if p not in paths]
    return paths


def _bind(source: str, target: str, writable: bool = False) -> list[tuple[str, ...]]:
    steps = [("mkdir", target), ("mount", "--rbind", source, target)]
    return steps if writable else [*steps, ("mount", "-o", "remount,bind,ro", target)]


def _tmpfs(target: str, size_mb: int, mode: str = "1777") -> list[tuple[str, ...]]:
    return [("mkdir", target), ("mount", "-t", "tmpfs", "-o",
                                f"size={size_mb}m,mode={mode},nosuid,nodev", "efflab", target)]


def mount_plan(policy: Policy, scratch: Path) -> list[tuple[str, ...]]:
    """The steps, in order, that build the kernel's root and enter it.

    Each step is ("mkdir", path), ("symlink", target, path), ("touch", path),
    ("hide", path) (a tmpfs over a folder, /dev/null over a file, when it exists
    as the step runs), a `mount` command line, or ("chroot", path), the last.
    Everything is allowed by name: what is not in the plan does not exist inside.
    """
    steps: list[tuple[str, ...]] = [*_tmpfs(STASH, 64, "0755"), ("mkdir", ROOT)]
    for path in SYSTEM:
        if os.path.islink(path):
            steps.append(("symlink", os.readlink(path), ROOT + path))
        elif os.path.isdir(path):
            steps += _bind(path, ROOT + path)
    # the private writable places first: code that lives under /tmp (a CI checkout) is
    # then shown inside them, not covered by them
    steps += [*_tmpfs(ROOT + "/tmp", policy.disk_mb), *_tmpfs(ROOT + "/dev", 1, "0755")]
    for device in DEVICES:
        steps += [("touch", f"{ROOT}/dev/{device}"),
                  ("mount", "--bind", f"/dev/{device}", f"{ROOT}/dev/{device}")]
    steps += [("symlink", "/proc/self/fd", ROOT + "/dev/fd"),
              *_tmpfs(ROOT + "/dev/shm", policy.disk_mb)]
    for path in visible_code():
        steps += _bind(os.path.realpath(path), ROOT + path)
    for path, source in policy.replace.items():  # over what was just shown there
        steps += _bind(os.path.realpath(source), ROOT + path)
    steps += [("hide", ROOT + path) for path in [*repository_secrets(), *policy.hide]]
    steps += [("mkdir", ROOT + "/proc"), ("mount", "-t", "proc", "proc", ROOT + "/proc")]
    steps += [*_bind(str(scratch), ROOT + str(scratch), writable=True), ("chroot", ROOT)]
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
