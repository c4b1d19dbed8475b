"""Shared fixtures: the solution code of each lab, loaded without running its checks, and
the command-line servers started as an instructor or a student would."""

import contextlib
import os
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import matplotlib
import pytest
import torch

from autograde import build
from autograde import nbgrader_glue as nbg
from autograde.build import solution_namespace

matplotlib.use("Agg")
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)  # one per worker: oversubscribed cores make torch far slower


_SOLUTIONS: dict[str, types.SimpleNamespace] = {}


@pytest.fixture
def solution(request) -> types.SimpleNamespace:
    """The solution of the lab a test file is named after (tests/test_checks_LAB.py),
    loaded once per session: a new lab needs no fixture of its own."""
    lab = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_checks_")
    if lab not in _SOLUTIONS:
        _SOLUTIONS[lab] = solution_namespace(lab)
    return _SOLUTIONS[lab]


@contextlib.contextmanager
def autograde_server(tmp_path: Path, *args: str, token: str = "efflab-test"):
    """`python -m autograde ARGS --port=.. --token=..` until it prints that it is ready;
    yields (base URL, token, path of its log). Used for `lab` and `formgrader`."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = tmp_path / f"server-{port}.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen([sys.executable, "-m", "autograde", *args, f"--port={port}",
                                   f"--token={token}"], stdout=log, stderr=subprocess.STDOUT,
                                  cwd=build.ROOT,
                                  env={**nbg.env(), "JUPYTER_RUNTIME_DIR": str(tmp_path)})
        try:
            deadline = time.monotonic() + 120
            while "JupyterLab is ready" not in log_path.read_text():
                assert server.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the server did not start in 120 s"
                time.sleep(0.3)
            time.sleep(0.5)  # its last lines are written
            yield f"http://127.0.0.1:{port}", token, log_path
        finally:
            server.terminate()
            server.wait(timeout=30)
