"""nbgrader's Execute step, hardened: sandboxed kernel, bounded output, every test accounted for.

nbgrader scores a test cell full marks when its outputs hold no error, so a test
cell that never ran would pass. Here, when the kernel dies (crash, `os._exit`,
memory limit, CPU limit) or the notebook exceeds its wall-clock budget, the cell
that was running and every later test cell get an error output saying why; the
marks earned before stay. Test cells of judged checks run in the grader
(`grading.judged_cell`); the others run in the kernel and are followed by the
integrity probe; answer cells run inside a record of what they call
(`grading.recorded_cell`). Output beyond a byte budget is dropped as it arrives. Hidden cases
are drawn from the lab's grading key (`hidden/LAB.pt` in the grading folder, made by
the grader from the course's secret), installed in this process, never in the kernel.
"""

import tempfile
import time
from contextlib import nullcontext

from jupyter_core.utils import run_sync
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors.execute import Execute
from traitlets import Bool, Dict, Integer, Unicode

from autograde.grading import outcome
from autograde.grading.clean_kernel import clean_room_of
from autograde.grading.course_folder import InCourse
from autograde.grading.integrity_probe import IntegrityProbe
from autograde.grading.judged_cell import run_judged
from autograde.grading.outcome import Outcome
from autograde.grading.output_budget import OutputBudget
from autograde.grading.recorded_cell import AnswerRecords
from autograde.grading.sandbox_manager import SandboxManager
from autograde.grading.sanitize import passive_outputs
from autograde.grading.secret import key_path, read_key
from autograde.grading.settings import Settings
from autograde.judging.hidden import keyed
from autograde.judging.judge import judged_checks
from autograde.nbgrader_seam.cells import error_output, is_answer_cell, is_test_cell
from autograde.sandbox.scratch import Scratch

KERNEL_START_FAILED = "the sandbox could not start a kernel"


TIMED_OUT = "[efflab grader: this cell ran out of its time"


def timeout_note(seconds) -> NotebookNode:
    """The output that marks a cell interrupted for time (the grader grades such a notebook
    once more, alone, before a 0 stands: a busy machine must not cost marks)."""
    return NotebookNode(output_type="stream", name="stderr",
                        text=f"\n{TIMED_OUT} ({seconds} s) and was interrupted]\n")


class KernelStartError(RuntimeError):
    """No kernel came up (before any cell ran): the grader's problem, never the student's."""


def start_failure(error: Exception, launcher_log) -> str:
    """Why no kernel came up: the error, and what the launcher wrote to its stderr."""
    launcher_log.seek(0)
    said = launcher_log.read()[-1500:].decode(errors="replace").strip()
    return (f"{KERNEL_START_FAILED} ({type(error).__name__}: {str(error)[:300]})"
            + (f"; its launcher said: {said}" if said else ""))


def _no_results(outputs: list) -> list:
    """A test cell's outputs without results: nbgrader reads an execute_result before an
    error as partial credit, so a student's sys.displayhook(100) would earn full marks."""
    return [o for o in outputs if o.output_type not in ("execute_result", "display_data")]


class SandboxedExecute(SandboxManager, AnswerRecords, IntegrityProbe, InCourse, Execute):
    """Execute in the efflab sandbox kernel; a dead or slow kernel never passes a test."""

    scratch_root = Unicode("", help="Folder for per-student scratch folders (default: the "
                                    "system's temporary folder)").tag(config=True)
    settings = Dict(help="The grading settings (autograde.grading.settings.Settings, as "
                         "a dict): time, memory and disk limits, judging").tag(config=True)
    max_output_bytes = Integer(2_000_000, help="Output kept per notebook").tag(config=True)
    probe = Bool(True, help="Probe for tampering after kernel-run test cells").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        self._settings = Settings.from_dict(self.settings)
        self.timeout = self._settings.cell_timeout  # nbclient's, per cell
        self._outcome = Outcome()
        self._dead, self._tampered, self._zmq, self._cells_seen = "", "", None, 0
        self._budget, self._probe_budget = OutputBudget(self.max_output_bytes), None
        self._start = time.monotonic()
        self._start_records(nb)
        student = (resources or {}).get("nbgrader", {}).get("student", "student")
        lab = (resources or {}).get("nbgrader", {}).get("assignment", "")
        course = self.course_folder()
        if lab:  # a notebook of no lab (the preflight) leaves no outcome
            outcome.clear(course, lab, student)
        # read before a kernel starts; a notebook of no lab (the preflight) runs no checks
        hidden_cases = keyed(read_key(key_path(course, lab))) if lab else nullcontext()
        policy = self._settings.policy(hide=[str(course.resolve())])
        clean = self._settings.judge and self._settings.clean_room
        with Scratch(student, policy, self.scratch_root) as self._scratch, \
                tempfile.TemporaryFile() as self._launcher_log, hidden_cases, \
                (clean_room_of(nb, lab, student, policy, self.scratch_root) if clean
                 else None) or nullcontext() as self._clean:
            try:
                nb, resources = super().preprocess(nb, resources, km)
            except Exception as e:  # noqa: BLE001 - the kernel failed to start or vanished
                if not self._cells_seen:
                    self._outcome.kernel_start_error = start_failure(e, self._launcher_log)
                    if lab:
                        outcome.write(course, lab, student, self._outcome)
                    raise KernelStartError(self._outcome.kernel_start_error) from None
                self._dead = self._dead or f"the kernel stopped: {type(e).__name__}: {e}"
                for cell in nb.cells:
                    if is_test_cell(cell) and not any(o.output_type == "error"
                                                      for o in cell.get("outputs", [])):
                        cell.outputs = [error_output("NotRun", self._dead)]
            finally:
                if self._zmq is not None:
                    self._zmq.destroy(linger=0)
                    self._zmq = None
        passive_outputs(nb)  # no script of the student's reaches a reader's browser
        self._outcome.kernel_died, self._outcome.tampered = self._dead, self._tampered
        if lab:
            outcome.write(course, lab, student, self._outcome)
        return nb, resources

    def preprocess_cell(self, cell, resources, index):
        self._cells_seen += 1
        budget = self._settings.notebook_timeout
        out_of_time = not self._dead and time.monotonic() - self._start > budget
        if out_of_time:
            self._dead = f"the notebook ran out of its {budget} s budget"
            self._stop_kernel()
        if self._dead:
            if is_test_cell(cell):
                cell.outputs = [error_output("NotRun", f"not run: {self._dead}")]
            if out_of_time:
                cell.outputs = list(cell.get("outputs", []))
                self._note_time(cell, index, budget)
            return cell, self.resources
        if is_test_cell(cell) and self._settings.judge and judged_checks(cell.source):
            with self._answers_judged(cell):  # what its answer cells called counts too
                self._dead, timed_out = run_judged(cell, self.kc, self.km, self._scratch,
                                                   self.timeout, self._clean)
            if timed_out:
                self._note_time(cell, index, self.timeout, first=True)
            if self._dead:
                self._stop_kernel()
            return cell, self.resources
        self._timed_out = False
        try:
            run = self._recorded if is_answer_cell(cell) else super().preprocess_cell
            cell, out = run(cell, resources, index)
            if self._timed_out:
                self._note_time(cell, index, self.timeout)
            if is_test_cell(cell):
                cell.outputs = _no_results(cell.outputs)
                if self.probe:
                    self._check_integrity(cell, index)
            return cell, out
        except Exception as e:  # noqa: BLE001 - DeadKernelError, timeouts, broken replies
            self._dead = f"{type(e).__name__}: {str(e)[:300]}"
            cell.outputs = list(cell.get("outputs", [])) + [error_output("KernelDied",
                                                                         self._dead)]
            if self._timed_out:
                self._note_time(cell, index, self.timeout)
            self._stop_kernel()
            return cell, self.resources

    def _note_time(self, cell, index: int, seconds: int, first: bool = False) -> None:
        """Say in the cell that it was interrupted for time, and record it in the outcome."""
        cell.outputs.insert(0 if first else len(cell.outputs), timeout_note(seconds))
        self._outcome.timed_out_cells.append(index)

    async def _async_handle_timeout(self, timeout, cell=None):
        self._timed_out = True
        return await super()._async_handle_timeout(timeout, cell)

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
