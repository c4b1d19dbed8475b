"""nbgrader's Execute step, hardened: sandboxed kernel, bounded output, every test accounted for.

nbgrader scores a test cell full marks when its outputs hold no error, so a test
cell that never ran would pass. Here, when the kernel dies (crash, `os._exit`,
memory limit, CPU limit) or the notebook exceeds its wall-clock budget, the cell
that was running and every later test cell get an error output saying why; the
marks earned before stay. Test cells of judged checks run in the grader
(`grading.judged_cell`); the others run in the kernel and are followed by the
integrity probe. Output beyond a byte budget is dropped as it arrives.
"""

import functools
import os
import secrets
import time
from pathlib import Path

import zmq.asyncio
from jupyter_core.utils import run_sync
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors.execute import Execute
from traitlets import Bool, Integer, Unicode

from autograde.grading.judged_cell import run_judged
from autograde.grading.scratch import Scratch
from autograde.judging import integrity
from autograde.judging.judge import judged_checks
from autograde.nbgrader_glue import error_output, is_test_cell
from autograde.sandbox.kernel import KERNEL_NAME
from autograde.sandbox.policy import Policy

PROBE_OUTPUT_LIMIT = 100_000  # the probe's verdict gets through a spent output budget


class OutputBudget:
    """Bytes of output a notebook may keep; what comes after is dropped, errors never."""

    def __init__(self, limit: int):
        self.limit, self.used, self.truncated = limit, 0, False

    def admit(self, msg: dict, outs: list) -> bool:
        if msg.get("msg_type") == "error":  # errors decide grades
            return True
        self.used += len(str(msg.get("content", "")))
        if self.used <= self.limit:
            return True
        if not self.truncated:
            self.truncated = True
            outs.append(NotebookNode(output_type="stream", name="stderr",
                                     text=f"[output beyond {self.limit:,d} bytes dropped "
                                          "by the grader]\n"))
        return False


def _no_results(outputs: list) -> list:
    """A test cell's outputs without results: nbgrader reads an execute_result before an
    error as partial credit, so a student's sys.displayhook(100) would earn full marks."""
    return [o for o in outputs if o.output_type not in ("execute_result", "display_data")]


class SandboxedExecute(Execute):
    """Execute in the efflab sandbox kernel; a dead or slow kernel never passes a test."""

    scratch_root = Unicode("", help="Folder for per-student scratch folders (default: the "
                                    "system's temporary folder)").tag(config=True)
    notebook_timeout = Integer(600, help="Wall-clock seconds for the whole notebook").tag(
        config=True)
    max_output_bytes = Integer(2_000_000, help="Output kept per notebook").tag(config=True)
    memory_mb = Integer(3072, help="Memory limit of the kernel (MB)").tag(config=True)
    cpu_seconds = Integer(600, help="CPU-time limit of the kernel (s)").tag(config=True)
    probe = Bool(True, help="Check the kernel for tampering after kernel-run test cells").tag(
        config=True)
    judge = Bool(True, help="Judge test cells in the grader, asking the kernel only for "
                            "plain values (autograde.judging)").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        self._dead, self._tampered, self._zmq = "", "", None
        self._budget, self._probe_budget = OutputBudget(self.max_output_bytes), None
        self._start = time.monotonic()
        student = (resources or {}).get("nbgrader", {}).get("student", "student")
        course = os.environ.get("EFFLAB_COURSE_ROOT", os.getcwd())
        policy = Policy(memory_mb=self.memory_mb, cpu_seconds=self.cpu_seconds,
                        hide=[str(Path(course).resolve())])
        with Scratch(student, policy, self.scratch_root) as self._scratch:
            try:
                return super().preprocess(nb, resources, km)
            except Exception as e:  # noqa: BLE001 - the kernel failed to start or vanished
                self._dead = self._dead or f"the kernel stopped: {type(e).__name__}: {e}"
                for cell in nb.cells:
                    if is_test_cell(cell) and not any(o.output_type == "error"
                                                      for o in cell.get("outputs", [])):
                        cell.outputs = [error_output("NotRun", self._dead)]
                return nb, resources
            finally:
                if self._zmq is not None:
                    self._zmq.destroy(linger=0)
                    self._zmq = None

    def create_kernel_manager(self):
        """Kernel manager and client on IPC sockets sharing one zmq context, destroyed with
        LINGER 0 when done (left to the garbage collector, a context holding a message for a
        dead kernel blocked a grading worker forever in term())."""
        self.kernel_name = KERNEL_NAME
        self._zmq = zmq.asyncio.Context()
        self._zmq.setsockopt(zmq.LINGER, 0)  # default for every socket made from it
        km = super().create_kernel_manager()
        km.context = self._zmq
        km.client = functools.partial(type(km).client, km, context=self._zmq)
        km.transport = "ipc"
        km.ip = str(self._scratch / "kernel-ipc")
        km.connection_file = str(self._scratch / "connection.json")
        return km

    def preprocess_cell(self, cell, resources, index):
        if not self._dead and time.monotonic() - self._start > self.notebook_timeout:
            self._dead = f"the notebook ran out of its {self.notebook_timeout} s budget"
            self._stop_kernel()
        if self._dead:
            if is_test_cell(cell):
                cell.outputs = [error_output("NotRun", f"not run: {self._dead}")]
            return cell, self.resources
        if is_test_cell(cell) and self.judge and judged_checks(cell.source):
            self._dead = run_judged(cell, self.kc, self.km, self._scratch, self.timeout)
            if self._dead:
                self._stop_kernel()
            return cell, self.resources
        try:
            cell, out = super().preprocess_cell(cell, resources, index)
            if is_test_cell(cell):
                cell.outputs = _no_results(cell.outputs)
                if self.probe:
                    self._check_integrity(cell, index)
            return cell, out
        except Exception as e:  # noqa: BLE001 - DeadKernelError, timeouts, broken replies
            self._dead = f"{type(e).__name__}: {str(e)[:300]}"
            cell.outputs = list(cell.get("outputs", [])) + [error_output("KernelDied",
                                                                         self._dead)]
            self._stop_kernel()
            return cell, self.resources

    def _check_integrity(self, cell, index) -> None:
        """After a kernel-run test cell: a tampered kernel's pass does not count."""
        if not self._tampered:
            try:
                verdict = self._probe(index)
            except Exception as e:  # noqa: BLE001 - a probe that cannot run is suspicious
                self._tampered = f"the integrity probe failed ({type(e).__name__})"
            else:
                if verdict != "clean":
                    gid = cell.metadata["nbgrader"]["grade_id"]
                    self._tampered = (f"tampering detected after {gid}: "
                                      f"{verdict[:300] or 'no answer from the probe'}")
        if self._tampered:
            cell.outputs = [error_output("IntegrityError", self._tampered)]

    def _probe(self, index: int) -> str:
        """Run the integrity probe in the kernel; its verdict ("clean" or what it found)."""
        nonce = secrets.token_hex(16)
        cell = NotebookNode(cell_type="code", source=integrity.code(repr(nonce)),
                            metadata={}, outputs=[], execution_count=None)
        saved = self.nb.cells[index]
        self._probe_budget = OutputBudget(PROBE_OUTPUT_LIMIT)
        try:
            super().preprocess_cell(cell, self.resources, index)
        finally:
            self._probe_budget = None
            self.nb.cells[index] = saved  # nbclient stored our cell at this index
        text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        lines = [ln for ln in text.splitlines() if ln.startswith(nonce)]
        if len(lines) > 1:  # a hook that read the nonce answered too: forged
            return "more than one answer to the probe"
        return lines[0][len(nonce):].strip() if lines else ""

    def _stop_kernel(self) -> None:
        try:
            if self.km is not None:
                run_sync(self.km.shutdown_kernel)(now=True)
        except Exception:  # noqa: BLE001, S110 - it is going away either way
            pass

    def output(self, outs, msg, display_id, cell_index):
        budget = self._probe_budget or self._budget
        if not budget.admit(msg, outs):
            return None
        return super().output(outs, msg, display_id, cell_index)
