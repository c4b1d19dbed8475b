"""autograde.judging.channel: the grader's end of the judge's socket."""

import os
import socket
import stat
import tempfile
import threading
import time
from pathlib import Path

import pytest

from autograde.checks import models  # noqa: F401 - registers the checks' modules
from autograde.judging import channel as channel_module
from autograde.judging import layers
from autograde.judging.channel import JudgeChannel
from autograde.judging.values import JudgeError
from autograde.judging.wire import receive, send


@pytest.fixture
def folder():
    with tempfile.TemporaryDirectory(prefix="ch-") as d:  # short: socket paths < 108 bytes
        yield Path(d)


def test_the_socket_is_open_to_the_kernel_without_any_chmod(folder, monkeypatch):
    """Root never acts on a path in the student's folder after the bind (a chmod by path
    could follow a link the kernel swapped in; the socket is created open instead)."""
    def refuse(*args, **kwargs):
        raise AssertionError("chmod called on a path in the student's folder")
    monkeypatch.setattr(channel_module.os, "chmod", refuse)
    with JudgeChannel(folder, 5, 5, lambda: None) as ch:
        mode = stat.S_IMODE(os.stat(ch.path).st_mode)
        assert mode & 0o777 == 0o777 and stat.S_ISSOCK(os.stat(ch.path).st_mode)
    assert not ch.path.exists()


def kernel(path: Path, replies: list) -> threading.Thread:
    """A stand-in for the kernel's request loop: answer each request with the next reply."""
    def loop():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(path))
        for reply in replies:
            request = receive(s)
            if reply == "hang":
                time.sleep(3)
                send(s, {"error": {"type": "KeyboardInterrupt", "message": ""}})
                continue
            send(s, {**reply, "echo": request.get("op")})
        s.close()
    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def test_requests_are_answered_and_a_hanging_call_is_interrupted(folder):
    interrupted = []
    with JudgeChannel(folder, 30, 1, lambda: interrupted.append(1)) as ch:
        kernel(ch.path, [{"value": 1}, "hang"])
        assert ch.ask({"op": "get"}) == {"value": 1, "echo": "get"}
        with pytest.raises(TimeoutError, match="interrupted"):
            ch.ask({"op": "call"})
        assert interrupted == [1] and not ch.broken


def test_a_kernel_that_goes_away_breaks_the_channel(folder):
    with JudgeChannel(folder, 30, 5, lambda: None) as ch:
        kernel(ch.path, [])  # connects, then closes without answering
        with pytest.raises(JudgeError, match="stopped answering"):
            ch.ask({"op": "get"})
        assert ch.broken
        with pytest.raises(JudgeError, match="the kernel stopped"):
            ch.ask({"op": "get"})


def test_every_request_names_the_module_classes_that_may_travel(folder, monkeypatch):
    """The kernel learns the registry of judging.layers only from the requests."""
    seen = []

    def loop(path):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(path))
        seen.append(receive(s))
        send(s, {"value": 1})
        s.close()
    with JudgeChannel(folder, 30, 5, lambda: None) as ch:
        t = threading.Thread(target=loop, args=(ch.path,), daemon=True)
        t.start()
        assert ch.ask({"op": "get", "name": "x"}) == {"value": 1}
        t.join(5)
    assert seen[0]["op"] == "get" and seen[0]["trusted"] == layers.trusted_names()
    assert "autograde.checks.models.MixedNet" in seen[0]["trusted"]
