"""The grader side of the judge's socket: one judged test cell's requests to the kernel.

The grader listens on a Unix socket in the student's scratch folder; the kernel's
request loop (`judging.kernel_side`) connects once and answers each request. Every
request has a deadline: a call that hangs is interrupted and fails, and a kernel
that stops answering marks the channel broken.
"""

import contextlib
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from autograde.judging.layers import trusted_names
from autograde.judging.values import JudgeError
from autograde.judging.wire import receive, send


class JudgeChannel:
    """Listen at `folder`/judge.sock; `ask(request)` sends one request and returns the reply."""

    def __init__(self, folder: Path, budget_s: float, call_timeout_s: float | None,
                 interrupt: Callable[[], None]):
        self.path = folder / "judge.sock"
        self.budget, self.call_timeout, self.interrupt = budget_s, call_timeout_s, interrupt
        self.deadline = time.monotonic() + budget_s
        self.broken = ""  # why the kernel stopped answering, once it has
        self.timed_out = False  # a call or the whole cell ran out of time
        self._conn: socket.socket | None = None
        self.path.unlink(missing_ok=True)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # the kernel runs as another user: the socket is created open to it, never chmod-ed
        # afterwards (a chmod by path could follow a link the kernel put in its own folder)
        umask = os.umask(0)
        try:
            self._listener.bind(str(self.path))
        finally:
            os.umask(umask)
        self._listener.listen(1)

    def ask(self, request: dict) -> dict:
        if self.broken:
            raise JudgeError(f"the kernel stopped: {self.broken}")
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.timed_out = True
            raise TimeoutError(f"the test ran out of its {self.budget} s")
        limit = int(min(left, self.call_timeout or left)) + 1
        try:
            if self._conn is None:
                self._listener.settimeout(min(left, 60))
                self._conn, _ = self._listener.accept()
            # the module classes that may travel, which the kernel learns only from us
            send(self._conn, {**request, "trusted": trusted_names()})
            self._conn.settimeout(limit)
            try:
                return receive(self._conn)
            except TimeoutError:  # the student's code hangs: interrupt it, go on
                self.interrupt()
                self._conn.settimeout(10)
                receive(self._conn)
        except (OSError, JudgeError) as e:
            self.broken = f"the kernel stopped answering ({type(e).__name__}: {e})"
            raise JudgeError(self.broken) from None
        self.timed_out = True
        raise TimeoutError(f"the call took longer than {limit} s and was interrupted")

    def close(self) -> None:
        """Tell the request loop to stop, then close and remove the socket."""
        if self._conn is not None and not self.broken:
            with contextlib.suppress(OSError):
                send(self._conn, {"op": "done"})
        for s in (self._conn, self._listener):
            if s is not None:
                s.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> "JudgeChannel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
