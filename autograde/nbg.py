"""Run nbgrader's command line the same way everywhere (build, grading, tests)."""

import os
import subprocess
import sys
from pathlib import Path


class NbgraderError(RuntimeError):
    """An nbgrader command failed; the message holds its command and output."""


def env() -> dict[str, str]:
    """This interpreter's bin folder first on PATH: nbgrader shells out to `alembic`."""
    bindir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": os.pathsep.join([bindir, os.environ.get("PATH", "")])}


def run(root: Path, *args: str, timeout: float | None = None,
        extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`nbgrader ARGS` for the course rooted at `root`; raises NbgraderError on failure."""
    cmd = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={root}"]
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True,
                          env={**env(), **(extra_env or {})}, timeout=timeout)
    if done.returncode != 0:
        raise NbgraderError(f"nbgrader {' '.join(args)} failed (exit {done.returncode}):\n"
                            f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done
