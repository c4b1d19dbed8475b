"""The grader's side of the clean room (judging.clean_room): one more sandboxed kernel per
submission, in which efflib lacks this lab's answers and the lab checks do not exist.

It starts when a judged test first reads a function or class from the notebook. It runs
the notebook's definitions once; before each test that reads from it, the plain data its
functions read is copied in from the student's kernel. A function or class a test reads
then comes from here, so what the student's kernel did to its own efflib, refusals or
checks does not reach the call.
"""

import contextlib
import os
from dataclasses import dataclass

import zmq
from jupyter_client import KernelManager

from autograde import checks
from autograde.grading import clean_efflib
from autograde.grading.judged_cell import drained
from autograde.judging import clean_room, definitions
from autograde.judging.channel import JudgeChannel
from autograde.judging.judge import Remote, Session
from autograde.judging.kernel_side import request_loop_code
from autograde.judging.values import CheckFailed, JudgeError
from autograde.judging.wire import encode
from autograde.nbgrader_seam.cells import is_test_cell
from autograde.sandbox.kernel import KERNEL_NAME
from autograde.sandbox.policy import REPO, Policy
from autograde.sandbox.scratch import Scratch

START_TIMEOUT = 120  # seconds for the clean room's kernel to answer (a busy machine)


def _lab_checks_hidden() -> list[str]:
    """The lab checks (their references) are not in the clean room."""
    return [str(p) for p in sorted((REPO / "autograde" / "checks").glob("lab*.py"))]


class Undefined:
    """What a test reads where the clean room has no such definition: calling it fails."""

    def __init__(self, name: str, why: str):
        self.name, self.why = name, why

    def __repr__(self) -> str:
        return f"<{self.name}: not defined where the grader runs your answers>"

    def __call__(self, *args, **kwargs):
        raise CheckFailed(definitions.not_defined_message(self.name, self.why))

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return self.__call__


def clean_room_of(nb, lab: str, student: str, policy: Policy, scratch_root: str):
    """The clean room of a submission of `lab` (started when first needed), or None where
    the lab's checks withhold nothing (a notebook of no lab: the preflight)."""
    try:
        module = checks.of(lab) if lab else None
    except ImportError:
        return None
    withheld = getattr(module, "WITHHELD", None)
    if withheld is None:
        return None
    cells = [c.source for c in nb.cells if c.cell_type == "code" and not is_test_cell(c)]
    return CleanKernel(student, policy, scratch_root, withheld, cells)


def copy_data(session: Session, channel: JudgeChannel) -> None:
    """The plain data the clean room's functions read, from the student's kernel."""
    names = channel.ask({"op": "missing"}).get("value") or []
    values = {}
    for name in [str(n) for n in names][:500]:
        try:
            value = session.get(name, clean=False)
        except Exception:  # noqa: BLE001, S112 - not there, or not data: left out
            continue
        if not isinstance(value, Remote):
            values[name] = value
    if values:
        reply = channel.ask({"op": "set", "values": encode(values)})
        if "error" in reply:
            raise JudgeError(f"the clean room refused data: {reply['error']}")


@dataclass
class _Cell:
    """One judged test cell's link to the clean room."""

    session: Session  # the student's kernel, for the data the clean room copies
    budget: float
    timeout: float | None
    channel: JudgeChannel | None = None
    request: str = ""  # the request loop's message id


class CleanKernel:
    """`with CleanKernel(...) as room:` then `with room.judging(session, budget, timeout):`
    around each judged test cell, whose functions and classes it serves through `get`;
    afterwards `printed` and `timed_out` tell what happened there. A clean room that died
    (an answer that exits or crashes) is started afresh for the next test, at most
    `MAX_STARTS` times."""

    MAX_STARTS = 3

    def __init__(self, student: str, policy: Policy, scratch_root: str, withheld,
                 code_cells: list[str]):
        self.student, self.scratch_root, self.withheld = student, scratch_root, withheld
        self.policy, self.code_cells = policy, code_cells
        self.km = self.kc = self._context = None
        self._stack = contextlib.ExitStack()
        self.starts, self.failed, self.dead = 0, [], ""  # definitions that raised; why dead
        self.printed, self.timed_out = "", False  # of the last judged cell
        self._cell: _Cell | None = None

    def __enter__(self) -> "CleanKernel":
        return self

    def __exit__(self, *exc) -> None:
        self._close_cell()
        self._stop()

    def _start(self) -> None:
        efflib = clean_efflib.build(self.withheld, self.scratch_root)
        shown = dict.fromkeys([str(REPO / "efflib"), os.path.realpath(REPO / "efflib")])
        policy = Policy(**{**vars(self.policy), "hide": [*self.policy.hide,
                                                          *_lab_checks_hidden()],
                           "replace": {p: str(efflib) for p in shown}})
        self.starts += 1
        self.scratch = self._stack.enter_context(
            Scratch(self.student + "-clean", policy, self.scratch_root))
        self._context = zmq.Context()
        self._context.setsockopt(zmq.LINGER, 0)
        self.km = KernelManager(kernel_name=KERNEL_NAME, context=self._context,
                                transport="ipc", ip=str(self.scratch / "kernel-ipc"),
                                connection_file=str(self.scratch / "connection.json"))
        self.km.start_kernel(env={**os.environ, **policy.to_env(self.scratch)},
                             stderr=self._stack.enter_context(open(os.devnull, "wb")))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=START_TIMEOUT)
        statements = definitions.definitions(self.code_cells)
        with JudgeChannel(self.scratch, START_TIMEOUT, START_TIMEOUT,
                          self.km.interrupt_kernel) as channel:
            msg = self.kc.execute(request_loop_code(str(channel.path), clean_room.__name__),
                                  store_history=False, allow_stdin=False, stop_on_error=False)
            failed = channel.ask({"op": "define", "statements": statements})
            self.failed = [str(f) for f in failed.get("value") or []][:100]
        drained(self.kc.get_iopub_msg, msg)

    def _stop(self) -> None:
        if self.km is not None:
            with contextlib.suppress(Exception):
                self.kc.stop_channels()
            with contextlib.suppress(Exception):
                self.km.shutdown_kernel(now=True)
        if self._context is not None:
            self._context.destroy(linger=0)
        self._stack.close()
        self.km = self.kc = self._context = None

    def _open_cell(self) -> None:
        if self.dead and self.starts < self.MAX_STARTS:
            self._stop()
            self.dead = ""
        if self.km is None and not self.dead:
            try:
                self._start()
            except Exception as e:  # noqa: BLE001 - the clean room could not start
                self.dead = f"the grader's clean room could not start: {type(e).__name__}: {e}"
        if self.dead:
            raise JudgeError(self.dead)
        cell = self._cell
        cell.channel = JudgeChannel(self.scratch, cell.budget, cell.timeout,
                                    self.km.interrupt_kernel)
        loop = request_loop_code(str(cell.channel.path), clean_room.__name__)
        cell.request = self.kc.execute(loop, store_history=False, allow_stdin=False,
                                       stop_on_error=False)
        copy_data(cell.session, cell.channel)

    def _close_cell(self) -> None:
        cell, self._cell = self._cell, None
        if cell is None or cell.channel is None:
            return
        self.timed_out = cell.channel.timed_out
        broken = cell.channel.broken
        cell.channel.close()
        if broken:
            self.dead = f"the grader's clean room stopped ({broken})"
            return
        self.printed, silent = drained(self.kc.get_iopub_msg, cell.request)
        if silent:
            self.dead = "the grader's clean room did not finish a test's requests"

    @contextlib.contextmanager
    def judging(self, session: Session, budget: float, timeout: float | None):
        """Around one judged test cell: functions and classes it reads come from here."""
        self._cell, self.printed, self.timed_out = _Cell(session, budget, timeout), "", False
        try:
            yield self
        finally:
            self._close_cell()

    def get(self, name: str):
        """`name` as the clean room defines it (a Remote there), or `Undefined`."""
        if self._cell is None:
            raise JudgeError("the clean room is asked outside a test")
        if self._cell.channel is None:
            self._open_cell()
        try:
            return Session(self._cell.channel.ask).get(name)
        except NameError:
            why = next((f for f in self.failed if name in f.split(":")[0]), "")
            return Undefined(name, why)
