"""`make lab`'s server (python -m autograde lab): work/ served, students' menus only, URL last."""

import contextlib
import json
import os
import re
import select
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import psutil
import pytest
from conftest import autograde_server

from autograde.course import build
from autograde.student import lab_server


def get(url: str, token: str) -> bytes:
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read()


def test_student_config_hides_the_instructor_side(tmp_path):
    student = lab_server.write_config("student", tmp_path)
    page = json.loads((student / "labconfig" / "page_config.json").read_text())
    assert page["disabledExtensions"]["@jupyter/nbgrader:formgrader"] is True
    assert "@jupyter/nbgrader:validate-assignment" not in page["disabledExtensions"]
    server = json.loads((student / "jupyter_server_config.json").read_text())
    ext = server["ServerApp"]["jpserver_extensions"]
    assert not ext["nbgrader.server_extensions.formgrader"]
    assert ext["nbgrader.server_extensions.validate_assignment"]
    assert not ext["autograde.formgrader_bridge"]
    instructor = lab_server.write_config("instructor", tmp_path)
    assert json.loads((instructor / "labconfig" / "page_config.json").read_text()) == \
        {"disabledExtensions": {lab_server.NEWS: True}}  # no "Jupyter news?" prompt
    server = json.loads((instructor / "jupyter_server_config.json").read_text())
    assert server["ServerApp"]["jpserver_extensions"]["autograde.formgrader_bridge"]
    assert page["disabledExtensions"][lab_server.NEWS] is True


def test_on_the_hub_the_assignment_and_course_lists_are_on(tmp_path):
    """A hub's student gets the exchange's lists and Validate, still no formgrader; the
    hub's instructor gets everything nbgrader has, but not the grader's bridge (the hub's
    servers run the student edition, which has no grader)."""
    student = lab_server.write_config("hub-student", tmp_path)
    hidden = json.loads((student / "labconfig" / "page_config.json").read_text())
    assert set(hidden["disabledExtensions"]) == {"@jupyter/nbgrader:formgrader",
                                                 "@jupyter/nbgrader:create-assignment",
                                                 lab_server.NEWS}
    ext = json.loads((student / "jupyter_server_config.json").read_text())["ServerApp"][
        "jpserver_extensions"]
    assert ext["nbgrader.server_extensions.assignment_list"]
    assert ext["nbgrader.server_extensions.course_list"]
    assert not ext["nbgrader.server_extensions.formgrader"]
    assert ext["autograde.student.validation"] and not ext["autograde.formgrader_bridge"]
    instructor = lab_server.write_config("hub-instructor", tmp_path)
    ext = json.loads((instructor / "jupyter_server_config.json").read_text())["ServerApp"][
        "jpserver_extensions"]
    assert ext["nbgrader.server_extensions.formgrader"] and not ext["autograde.formgrader_bridge"]
    with pytest.raises(ValueError, match="no Jupyter config mode 'teacher'"):
        lab_server.write_config("teacher", tmp_path)


def test_a_folder_keeps_its_token(tmp_path):
    """The same URL each time for the same work folder: a bookmark keeps working."""
    store = tmp_path / "tokens.json"
    work, other = tmp_path / "work", tmp_path / "other"
    first = lab_server.token_for(work, store)
    assert lab_server.token_for(work, store) == first and len(first) == 32
    assert lab_server.token_for(other, store) != first
    assert store.stat().st_mode & 0o077 == 0  # readable by its owner only


@pytest.mark.course
def test_jupyterlab_serves_work_with_validate_only(tmp_path):
    work = tmp_path / "work"
    with autograde_server(tmp_path, "lab", f"--work={work}") as (base, token, log_path):
        ready = log_path.read_text()  # before our requests add their own log lines
        lines = [line.strip() for line in ready.strip().splitlines()]
        port = base.rsplit(":", 1)[1]
        assert lines[-2:] == [f"JupyterLab is ready: http://127.0.0.1:{port}/lab?token={token}",
                              f"Serving {work}. Ctrl-C stops it."], ready[-1500:]
        assert "Hand in that file" in ready
        listing = json.loads(get(f"{base}/api/contents/", token))
        names = {item["name"] for item in listing["content"]}
        assert set(build.lab_names()) <= names
        nb = json.loads(get(f"{base}/api/contents/lab01_layers/lab01_layers.ipynb", token))
        assert nb["content"]["cells"][0]["source"].startswith("# Lab 01")
        page = get(f"{base}/lab", token).decode()
        config = json.loads(re.search(r'id="jupyter-config-data"[^>]*>(.*?)</script>', page,
                                      re.S).group(1))
        disabled = config.get("disabled_labextensions") or config.get("disabledExtensions")
        assert "@jupyter/nbgrader:formgrader" in str(disabled), config.keys()
        assert "@jupyter/nbgrader:validate-assignment" not in str(disabled)
        with pytest.raises(urllib.error.HTTPError) as e:  # the instructor's handlers are off
            get(f"{base}/formgrader", token)
        assert e.value.code == 404
        assert b"validation-failed" in get(f"{base}/custom/custom.css", token)
        # the Validate button's request, as the dialog makes it, on the untouched Lab 01
        req = urllib.request.Request(
            f"{base}/assignments/validate", method="POST",
            data=json.dumps({"path": "lab01_layers/lab01_layers.ipynb"}).encode(),
            headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=600) as resp:
            result = json.loads(resp.read())
        failed = result["value"]["failed"]
        lines = failed[0]["raw_error"].splitlines()  # one line per question, then nothing
        assert lines[0] == "✗ Q1. Linear layer: not answered yet", lines
        assert len(lines) == 9 and all(line.startswith("✗ Q") for line in lines), lines
        assert all(f["raw_error"] == "" for f in failed[1:])
        assert not (build.ROOT / "gradebook.db").exists()


@pytest.mark.course
def test_stopping_the_command_stops_jupyterlab(tmp_path):
    """A SIGTERM to `python -m autograde lab` (what a test or a process manager sends) must
    not leave JupyterLab running on its port."""
    with autograde_server(tmp_path, "lab", f"--work={tmp_path / 'work'}") as (base, token, _):
        port = int(base.rsplit(":", 1)[1])
    deadline = time.monotonic() + 30
    while lab_server.port_busy(port):
        assert time.monotonic() < deadline, "JupyterLab still answers after its command ended"
        time.sleep(0.3)


@pytest.mark.course
def test_ctrl_c_in_make_lab_says_server_stopped_and_make_exits_0(tmp_path):
    """`make lab` in a terminal, then Ctrl-C: "server stopped", no "Error 130" from make,
    exit 0, and JupyterLab no longer answers."""
    import pty  # Linux and macOS only, as the course

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pid, fd = pty.fork()
    if pid == 0:  # the child: make in a terminal of its own
        # as a terminal's shell starts a job, with Ctrl-C's signal at its default: a test run
        # launched in the background inherits SIGINT ignored, and so would make
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.execvp("make", ["make", "-s", "-C", str(build.ROOT), "lab", f"PORT={port}",
                           f"WORK={tmp_path / 'work'}"])
    out = b""

    def read_until(text: bytes, seconds: float) -> None:
        nonlocal out
        deadline = time.monotonic() + seconds
        while text not in out and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    out += os.read(fd, 4096)
                except OSError:  # every writer gone: make has ended
                    return
    status, tree = None, []
    try:
        read_until(b"Ctrl-C stops it", 180)
        assert b"JupyterLab is ready" in out, out.decode(errors="replace")[-2000:]
        tree = psutil.Process(pid).children(recursive=True)  # the command and JupyterLab
        os.write(fd, b"\x03")
        deadline = time.monotonic() + 60
        while status is None and time.monotonic() < deadline:
            read_until(b"\0", 0.2)  # keep reading: a full terminal would block a writer
            done, code = os.waitpid(pid, os.WNOHANG)
            status = code if done else None
    finally:
        left = []
        for process in tree + ([] if status is not None else [psutil.Process(pid)]):
            with contextlib.suppress(psutil.NoSuchProcess):
                if process.status() != psutil.STATUS_ZOMBIE:
                    left.append(" ".join(process.cmdline()[:3]))
                    process.kill()
        if status is None:
            os.waitpid(pid, 0)
        os.close(fd)
    said = out.decode(errors="replace")
    assert status is not None, ("make lab did not end within 60 s of Ctrl-C; still running: "
                                f"{left}\n{said[-3000:]}")
    assert not left, f"left running: {left}"
    assert "server stopped" in said and "Error" not in said and "(y/[n])" not in said, said
    assert os.waitstatus_to_exitcode(status) == 0
    assert not lab_server.port_busy(port)


def test_a_server_deaf_to_sigterm_is_killed_with_what_it_started(monkeypatch):
    """JupyterLab that does not stop on SIGTERM is killed after STOP_WAIT, and so is what
    it started (its process group), not left holding a port or a core."""
    monkeypatch.setattr(lab_server, "STOP_WAIT", 1)
    server = subprocess.Popen(["bash", "-c", "trap '' TERM; sleep 300 & wait"],
                              start_new_session=True)
    deadline = time.monotonic() + 60
    while not (started := psutil.Process(server.pid).children()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    try:
        lab_server.stop(server)
        assert server.returncode is not None
        gone, alive = psutil.wait_procs(started, timeout=10)
        assert not alive, "what the server started is still running"
    finally:
        for process in started:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
