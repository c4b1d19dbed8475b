"""Shared fixtures: the solution code of each lab, loaded without running its checks, and
the command-line servers started as an instructor or a student would."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path

import matplotlib
import pytest
import torch

from autograde.course import build
from autograde.course.build import solution_namespace
from autograde.nbgrader_seam import command

matplotlib.use("Agg")
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)  # one per worker: oversubscribed cores make torch far slower


_SOLUTIONS: dict[str, types.SimpleNamespace] = {}
TEST_KEY = b"efflab's own tests: not any course's key"


@pytest.fixture(autouse=True)
def graders_key():
    """Hidden cases drawn from a fixed key, as the grader's are from its course's
    (judging.hidden): every test sees the same hidden cases. No held-out digits come with
    it, so accuracy is measured on the public test split unless a test installs some."""
    from autograde.judging.hidden import GradingKey, keyed

    with keyed(GradingKey(TEST_KEY)):
        yield


@pytest.fixture(autouse=True)
def sigint_kept():
    """SIGINT's handler as each test found it, put back and said if a test (or a library it
    loads: a kernel's start ignores SIGINT in its process) changed it: a worker left deaf
    to SIGINT makes a later interrupt test wait forever."""
    before = signal.getsignal(signal.SIGINT)
    yield
    after = signal.getsignal(signal.SIGINT)
    if after is not before:
        signal.signal(signal.SIGINT, before)
        warnings.warn(f"this test left SIGINT's handler {after!r} (put back)", stacklevel=1)


@pytest.fixture
def watch_replaced(monkeypatch):
    """The kernel-side watch made to refuse nothing, as a student's code could make it:
    what a check still refuses is read from the operations it recorded."""
    from autograde.judging import watch

    def passing(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))
    monkeypatch.setattr(watch.Recorder, "__torch_function__", passing)
    monkeypatch.setattr(watch.DispatchGuard, "__torch_dispatch__", passing)


class VirtualClock:
    """Time that passes only when a test sleeps, so a timing test asserts exact medians and
    counts whatever else the machine runs (a real sleep overshoots by milliseconds on a
    busy one)."""

    def __init__(self):
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> VirtualClock:
    """time.perf_counter and time.sleep replaced by one VirtualClock for this test."""
    virtual = VirtualClock()
    monkeypatch.setattr(time, "perf_counter", virtual.perf_counter)
    monkeypatch.setattr(time, "sleep", virtual.sleep)
    return virtual


CHROMIUM = Path(os.environ.get("EFFLAB_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by playwright (the browser extra; `make browser-setup`),
    for the browser and hub tests."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - the browser extra

    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run `make browser-setup`"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                    args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


def lab_solution(lab: str) -> types.SimpleNamespace:
    """A lab's solution code (its setup and answer cells run), loaded once per session."""
    if lab not in _SOLUTIONS:
        _SOLUTIONS[lab] = solution_namespace(lab)
    return _SOLUTIONS[lab]


@pytest.fixture
def solution(request) -> types.SimpleNamespace:
    """The solution of the lab a test file is named after (tests/test_checks_LAB.py):
    a new lab needs no fixture of its own."""
    return lab_solution(request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_checks_"))


def judged_session(namespace: dict):
    """A judge Session whose kernel is this process: every request and reply goes through
    JSON, and the kernel side runs with judging switched off, as it would in the kernel."""
    from autograde.judging import judge, kernel_side, watch

    def ask(request):
        request = json.loads(json.dumps(request))
        watch._JUDGING.append(False)
        try:
            return json.loads(json.dumps(kernel_side.answer(request, namespace)))
        finally:
            watch._JUDGING.pop()
    return judge.Session(ask)


def judge_solution(lab: str, namespace: dict) -> dict[str, str]:
    """Every test cell of `lab` that the grader judges, run as the grader would against the
    solution's namespace; {grade_id: the error, or "" when it passed}."""
    from autograde.judging.judge import judge_cell, judged_checks

    verdicts = {}
    for cell in build.source_notebook(lab).cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and cell.cell_type == "code" and judged_checks(cell.source):
            _, error = judge_cell(cell.source, judged_session(namespace))
            verdicts[meta["grade_id"]] = "" if error is None else f"{type(error).__name__}: {error}"
    return verdicts


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
                                  env={**command.env(), "JUPYTER_RUNTIME_DIR": str(tmp_path)})
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
