"""The Makefile's set-up: students get the runtime only, an opt-in CPU wheel index."""

import subprocess

from autograde.course import build


def dry_run(*args: str) -> str:
    """What make would run for a fresh virtual environment (nothing is run)."""
    done = subprocess.run(["make", "-n", *args, "VENV=/nonexistent/venv"], cwd=build.ROOT,
                          capture_output=True, text=True, check=True)
    return done.stdout


def test_students_get_the_runtime_only():
    lab = dry_run("lab")
    assert "-e ." in lab and "[dev]" not in lab
    assert "[dev]" in dry_run("test")


def test_cpu_wheel_index_is_opt_in():
    assert "--index-url" not in dry_run("lab")
    url = "https://download.pytorch.org/whl/cpu"
    line = next(li for li in dry_run("lab", f"TORCH_INDEX={url}").splitlines() if "torch==" in li)
    assert f"--index-url {url}" in line and "torch==2.13.0" in line
