"""A student's scratch folder: the only place their sandboxed kernel may write.

The folder is short on purpose (`efflab-GRADERPID-STUDENT-wPID-*` in the system's
temporary folder): the kernel's and the judge's Unix socket paths must stay
under 108 bytes, which a folder deep inside a course tree can exceed; PID, the
grading process's, lets a pool that kills a worker remove what it left. Where kernels
are isolated it is a tmpfs of `Policy.disk_mb`, owned by nobody: a kernel cannot
fill the host's disk through it, and its pages count against the kernel's memory
cgroup. While it exists, the environment tells the kernel launcher its policy
(`Policy.to_env`).
"""

import os
import re
import shutil
import subprocess
import tempfile
from contextlib import ExitStack
from pathlib import Path

from autograde.sandbox.cleanup import unmount
from autograde.sandbox.environ import temporary_environ
from autograde.sandbox.policy import NOBODY, Policy, isolation_problem


class Scratch:
    """`with Scratch(student, policy) as folder:` a fresh folder, removed afterwards."""

    def __init__(self, student: str, policy: Policy, root: str = ""):
        self.student, self.policy = student, policy
        self.root = Path(root or tempfile.gettempdir())
        self.folder: Path | None = None
        self._environ = ExitStack()

    def __enter__(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", self.student)[:16]
        grader = os.environ.get("EFFLAB_GRADER_PID", str(os.getpid()))
        folder = Path(tempfile.mkdtemp(prefix=f"efflab-{grader}-{name}-w{os.getpid()}-",
                                       dir=self.root))
        if len(str(folder / "kernel-ipc-65535")) > 100:
            shutil.rmtree(folder, ignore_errors=True)
            raise ValueError(f"scratch folder {folder} is too long for Unix sockets; set "
                             "SandboxedExecute.scratch_root to a short folder")
        if isolation_problem() is None:
            subprocess.run(["mount", "-t", "tmpfs", "-o",
                            f"size={self.policy.disk_mb}m,mode=0700,uid={NOBODY},gid={NOBODY},"
                            "nosuid,nodev", "efflab-scratch", str(folder)],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # read by the kernel launcher (autograde.sandbox.kernel)
        self._environ.enter_context(temporary_environ(self.policy.to_env(folder)))
        self.folder = folder
        return folder

    def __exit__(self, *exc) -> None:
        self._environ.close()
        if self.folder is not None:
            unmount(self.folder)
            shutil.rmtree(self.folder, ignore_errors=True)
