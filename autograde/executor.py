"""nbgrader's Execute step, hardened: sandboxed kernel, bounded output, every test accounted for.

nbgrader scores a test cell full marks when its outputs hold no error, so a test
cell that never ran would pass. Here, when the kernel dies (crash, `os._exit`,
memory limit, CPU limit) or the notebook exceeds its wall-clock budget, the cell
that was running and every later test cell get an error output saying why; the
marks earned before stay. Output beyond a byte budget is dropped as it arrives.
"""

import os
import secrets
import shutil
import time
from pathlib import Path

from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from nbgrader.preprocessors.execute import Execute
from nbgrader.utils import is_grade, is_solution
from traitlets import Bool, Integer, Unicode

from autograde import sandbox


def _error(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue,
                        traceback=[f"{ename}: {evalue}"])


# Run in the student's kernel after every test cell. It looks for the usual ways of
# faking a pass: check functions or builtins replaced by code from the notebook, AST or
# input transformers, trace hooks, efflib/autograde modules swapped in sys.modules.
PROBE = r"""
def _efflab_probe(nonce, trusted):
    import builtins, sys, types
    found = []
    def foreign(obj):
        code = getattr(obj, "__code__", None)
        if code is not None:
            return not code.co_filename.startswith(trusted)
        return getattr(obj, "__module__", "") == "__main__"
    ip = get_ipython()
    if ip.ast_transformers:
        found.append("AST transformers installed")
    if ip.input_transformers_post:
        found.append("input transformers installed")
    if sys.gettrace() is not None or sys.getprofile() is not None:
        found.append("a trace or profile hook is set")
    for name, value in list(vars(builtins).items()):
        if isinstance(value, (types.FunctionType, type)) and foreign(value):
            found.append(f"builtin {name} replaced")
    for name, mod in list(sys.modules.items()):
        if not name.startswith(("autograde", "efflib")):
            continue
        if not str(getattr(mod, "__file__", "")).startswith(trusted):
            found.append(f"module {name} replaced")
            continue
        for attr, value in list(vars(mod).items()):
            if callable(value) and foreign(value):
                found.append(f"{name}.{attr} replaced")
    print(nonce, "|".join(found) or "clean")
_efflab_probe(%r, %r)
del _efflab_probe
"""


def _trusted_prefixes() -> tuple[str, ...]:
    import sysconfig

    repo = str(Path(__file__).resolve().parents[1])
    paths = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    return (repo, *sorted(paths))


def is_test_cell(cell) -> bool:
    return cell.cell_type == "code" and is_grade(cell) and not is_solution(cell)


class SandboxedExecute(Execute):
    """Execute in the efflab sandbox kernel; a dead or slow kernel never passes a test."""

    scratch_root = Unicode("", help="Folder for per-student scratch folders").tag(config=True)
    notebook_timeout = Integer(600, help="Wall-clock seconds for the whole notebook").tag(
        config=True)
    max_output_bytes = Integer(2_000_000, help="Output kept per notebook").tag(config=True)
    memory_mb = Integer(3072, help="Memory limit of the kernel (MB)").tag(config=True)
    cpu_seconds = Integer(600, help="CPU-time limit of the kernel (s)").tag(config=True)
    probe = Bool(True, help="Check the kernel for tampering after every test cell").tag(
        config=True)

    def preprocess(self, nb, resources=None, km=None):
        self._dead = ""
        self._tampered = ""
        self._probing = False
        self._output_bytes = 0
        self._truncated = False
        self._start = time.monotonic()
        student = (resources or {}).get("nbgrader", {}).get("student", "student")
        root = Path(self.scratch_root or Path.cwd() / ".sandbox")
        scratch = root / f"{student}-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        if sandbox.isolation_problem() is None:
            os.chown(scratch, sandbox.NOBODY, sandbox.NOBODY)
        saved = {k: os.environ.get(k) for k in ("EFFLAB_SANDBOX", "EFFLAB_SCRATCH")}
        policy = sandbox.Policy(memory_mb=self.memory_mb, cpu_seconds=self.cpu_seconds,
                                hide=[str(Path(self._course_root()).resolve())])
        os.environ.update(policy.to_env(scratch))  # read by the kernel command, sandbox.py
        self._scratch = scratch
        try:
            return super().preprocess(nb, resources, km)
        except Exception as e:  # noqa: BLE001 - the kernel failed to start or vanished
            self._dead = self._dead or f"the kernel stopped: {type(e).__name__}: {e}"
            for cell in nb.cells:
                if is_test_cell(cell) and not any(o.output_type == "error"
                                                  for o in cell.get("outputs", [])):
                    cell.outputs = [_error("NotRun", self._dead)]
            return nb, resources
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            shutil.rmtree(scratch, ignore_errors=True)

    def _course_root(self) -> str:
        return os.environ.get("EFFLAB_COURSE_ROOT", os.getcwd())

    def create_kernel_manager(self):
        self.kernel_name = sandbox.KERNEL_NAME
        km = super().create_kernel_manager()
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
                cell.outputs = [_error("NotRun", f"not run: {self._dead}")]
            return cell, self.resources
        try:
            cell, out = super().preprocess_cell(cell, resources, index)
            if is_test_cell(cell) and self.probe:
                self._check_integrity(cell, index)
            return cell, out
        except Exception as e:  # noqa: BLE001 - DeadKernelError, timeouts, broken replies
            self._dead = f"{type(e).__name__}: {str(e)[:300]}"
            cell.outputs = list(cell.get("outputs", [])) + [_error("KernelDied", self._dead)]
            self._stop_kernel()
            return cell, self.resources

    def _check_integrity(self, cell, index) -> None:
        """After a test cell: if the kernel was tampered with, its pass does not count."""
        if self._tampered:
            cell.outputs = [_error("IntegrityError", self._tampered)]
            return
        nonce = secrets.token_hex(16)
        self._probing, self._probe_bytes = True, 0
        probe = NotebookNode(cell_type="code", source=PROBE % (nonce, _trusted_prefixes()),
                             metadata={}, outputs=[], execution_count=None)
        try:
            super().preprocess_cell(probe, self.resources, index)
        except Exception as e:  # noqa: BLE001 - a probe that cannot run is suspicious
            self._tampered = f"the integrity probe failed ({type(e).__name__})"
        else:
            text = "".join(o.get("text", "") for o in probe.outputs
                           if o.output_type == "stream")
            lines = [ln for ln in text.splitlines() if ln.startswith(nonce)]
            verdict = lines[-1][len(nonce):].strip() if lines else "no answer from the probe"
            if verdict != "clean":
                gid = cell.metadata["nbgrader"]["grade_id"]
                self._tampered = f"tampering detected after {gid}: {verdict[:300]}"
        self._probing = False
        self.nb.cells[index] = cell  # nbclient stored the probe at this index: put it back
        if self._tampered:
            cell.outputs = [_error("IntegrityError", self._tampered)]

    def _stop_kernel(self) -> None:
        from jupyter_core.utils import run_sync

        try:
            if self.km is not None:
                run_sync(self.km.shutdown_kernel)(now=True)
        except Exception:  # noqa: BLE001, S110 - it is going away either way
            pass

    def output(self, outs, msg, display_id, cell_index):
        if msg.get("msg_type") == "error":  # errors decide grades: never dropped
            return super().output(outs, msg, display_id, cell_index)
        size = len(str(msg.get("content", "")))
        if self._probing:  # the probe's verdict must get through a spent budget
            self._probe_bytes += size
            return super().output(outs, msg, display_id, cell_index) \
                if self._probe_bytes < 100_000 else None
        self._output_bytes += size
        if self._output_bytes > self.max_output_bytes:
            if not self._truncated:
                self._truncated = True
                outs.append(NotebookNode(output_type="stream", name="stderr",
                                         text=f"[output beyond {self.max_output_bytes:,d} "
                                              "bytes dropped by the grader]\n"))
            return None
        return super().output(outs, msg, display_id, cell_index)


class ShortTracebacks(NbGraderPreprocessor):
    """Feedback: a failed test shows its error message only. IPython's tracebacks quote
    the lines around the failing one, which would show hidden tests to the student."""

    def preprocess_cell(self, cell, resources, index):
        if is_test_cell(cell):
            for out in cell.get("outputs", []):
                if out.output_type == "error":
                    out.traceback = [f"{out.ename}: {out.evalue}"]
        return cell, resources
