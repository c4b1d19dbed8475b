"""One test cell judged in the grader while the student's kernel answers.

The kernel runs one request loop (`judging.kernel_side`) for the cell; the cell's
code runs here (`judging.judge`), reaching the kernel through a `JudgeChannel`.
What the kernel printed while answering is kept as the cell's output.
"""

import contextlib
import time
from pathlib import Path

from jupyter_core.utils import run_sync
from nbformat.notebooknode import NotebookNode

from autograde.judging.channel import JudgeChannel
from autograde.judging.judge import Session, judge_cell
from autograde.judging.kernel_side import request_loop_code
from autograde.nbgrader_seam.cells import error_output

PRINT_LIMIT = 100_000  # characters the kernel may print while answering one cell


def budget_seconds(cell_timeout: int | None) -> int:
    """Wall-clock budget of one judged test cell (all its calls into the kernel)."""
    return 3 * (cell_timeout or 60)


def run_judged(cell, kc, km, scratch: Path, cell_timeout: int | None,
               room=None) -> tuple[str, bool]:
    """Judge `cell`, setting its outputs, its functions and classes from `room` (the clean
    room, a `grading.clean_kernel.CleanKernel`) if given; return why the kernel died ('' if
    it did not) and whether a call into the kernel ran out of time."""
    cell.execution_count = None
    interrupt = run_sync(km.interrupt_kernel)
    try:
        channel = JudgeChannel(scratch, budget_seconds(cell_timeout), cell_timeout,
                               lambda: interrupt())
    except OSError as e:  # the socket could not be made: this test fails, the kernel lives
        cell.outputs = [error_output("JudgeError", f"the grader could not listen: {e}")]
        return "", False
    msg_id = kc.execute(request_loop_code(str(channel.path)), store_history=False,
                        allow_stdin=False, stop_on_error=False)
    with channel:
        session = Session(channel.ask, room)
        with room.judging(session, budget_seconds(cell_timeout), cell_timeout) \
                if room is not None else contextlib.nullcontext():
            shown, error = judge_cell(cell.source, session)
    dead = channel.broken
    printed = ""
    if not dead:
        printed, silent = drained(run_sync(kc.get_iopub_msg), msg_id)
        dead = "the kernel did not finish the test's requests" if silent else ""
    if room is not None:  # what the student's functions printed there
        printed += room.printed
    text = printed + shown
    cell.outputs = [NotebookNode(output_type="stream", name="stdout", text=text)] \
        if text else []
    if dead:  # the check's own error would only repeat this
        cell.outputs.append(error_output("KernelDied", dead))
    elif error is not None:
        cell.outputs.append(error_output(type(error).__name__, str(error)))
    return dead, channel.timed_out or (room is not None and room.timed_out)


def drained(get_msg, msg_id: str, seconds: float = 30) -> tuple[str, bool]:
    """The stdout of a request loop, read with `get_msg(timeout=...)` until its kernel is
    idle again, and whether the kernel fell silent before that (then it counts as dead)."""
    text, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            msg = get_msg(timeout=max(0.1, deadline - time.monotonic()))
        except Exception:  # noqa: BLE001 - queue.Empty: the kernel never went idle
            return "".join(text), True
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        content = msg["content"]
        if msg["msg_type"] == "stream" and sum(map(len, text)) < PRINT_LIMIT:
            text.append(str(content.get("text", ""))[:PRINT_LIMIT])
        elif msg["msg_type"] == "status" and content.get("execution_state") == "idle":
            break
    return "".join(text), False
