"""nbgrader's Execute step, hardened: sandboxed kernel, bounded output, every test accounted for.

nbgrader scores a test cell full marks when its outputs hold no error, so a test
cell that never ran would pass. Here, when the kernel dies (crash, `os._exit`,
memory limit, CPU limit) or the notebook exceeds its wall-clock budget, the cell
that was running and every later test cell get an error output saying why; the
marks earned before stay. Output beyond a byte budget is dropped as it arrives.
"""

import contextlib
import functools
import os
import re
import secrets
import shutil
import socket
import tempfile
import time
from pathlib import Path

from jupyter_core.utils import run_sync
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from nbgrader.preprocessors.execute import Execute
from nbgrader.utils import is_grade, is_solution
from traitlets import Bool, Integer, Unicode

from autograde import integrity, remote, sandbox, wire


def _error(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue,
                        traceback=[f"{ename}: {evalue}"])


def is_test_cell(cell) -> bool:
    return cell.cell_type == "code" and is_grade(cell) and not is_solution(cell)


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
                            "plain values (autograde.remote)").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        self._dead = ""
        self._tampered = ""
        self._private = False
        self._output_bytes = 0
        self._truncated = False
        self._start = time.monotonic()
        student = (resources or {}).get("nbgrader", {}).get("student", "student")
        # short on purpose: Unix socket paths (the kernel's and the judge's) must stay
        # under 108 bytes, which a folder deep inside a course tree can exceed
        root = Path(self.scratch_root or tempfile.gettempdir())
        root.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", student)[:16]
        grader = os.environ.get("EFFLAB_GRADER_PID", str(os.getpid()))
        scratch = Path(tempfile.mkdtemp(prefix=f"efflab-{grader}-{name}-", dir=root))
        if len(str(scratch / "kernel-ipc-65535")) > 100:
            shutil.rmtree(scratch, ignore_errors=True)
            raise ValueError(f"scratch folder {scratch} is too long for Unix sockets; set "
                             "SandboxedExecute.scratch_root to a short folder")
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
            if getattr(self, "_zmq", None) is not None:
                self._zmq.destroy(linger=0)
                self._zmq = None

    def _course_root(self) -> str:
        return os.environ.get("EFFLAB_COURSE_ROOT", os.getcwd())

    def create_kernel_manager(self):
        """A kernel manager and client on IPC sockets, sharing one zmq context that this
        executor destroys with LINGER 0 when the notebook is done.

        Left to the garbage collector, a context whose socket still holds a message
        for a dead kernel blocks forever in `term()` (default LINGER is infinite):
        a grading worker once hung in the middle of the next student's SQL query."""
        import zmq.asyncio

        self.kernel_name = sandbox.KERNEL_NAME
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
                cell.outputs = [_error("NotRun", f"not run: {self._dead}")]
            return cell, self.resources
        if is_test_cell(cell) and self.judge and remote.judged_checks(cell.source):
            return self._judge(cell, index), self.resources
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

    def _probe(self, index: int) -> str:
        """Run the integrity probe in the kernel; its verdict ("clean" or what it found)."""
        nonce = secrets.token_hex(16)
        self._private, self._private_bytes = True, 0
        cell = NotebookNode(cell_type="code", source=integrity.code(repr(nonce)),
                            metadata={}, outputs=[], execution_count=None)
        saved = self.nb.cells[index]
        try:
            super().preprocess_cell(cell, self.resources, index)
        finally:
            self._private = False
            self.nb.cells[index] = saved  # nbclient stored our cell at this index
        text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        lines = [ln for ln in text.splitlines() if ln.startswith(nonce)]
        return lines[-1][len(nonce):].strip() if lines else ""

    def _check_integrity(self, cell, index) -> None:
        """After a kernel-run test cell: a tampered kernel's pass does not count."""
        if self._tampered:
            cell.outputs = [_error("IntegrityError", self._tampered)]
            return
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
            cell.outputs = [_error("IntegrityError", self._tampered)]

    def _judge(self, cell, index):
        """Run a test cell in this (trusted) process. The kernel runs one request loop
        (autograde.remote.serve) that calls the student's code and answers with plain
        data over a Unix socket in the scratch folder."""
        budget = self.judge_seconds()
        deadline = time.monotonic() + budget
        path = self._scratch / "judge.sock"
        path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        os.chmod(path, 0o777)  # the kernel runs as nobody
        listener.listen(1)
        msg_id = self.kc.execute(
            f"__import__('autograde.remote', fromlist=['serve']).serve({str(path)!r})",
            store_history=False, allow_stdin=False, stop_on_error=False)
        conn = None

        def ask(request: dict) -> dict:
            nonlocal conn
            if self._dead:
                raise wire.JudgeError(f"the kernel stopped: {self._dead}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the test ran out of its {budget} s")
            limit = int(min(left, self.timeout or left)) + 1
            try:
                if conn is None:
                    listener.settimeout(min(left, 60))
                    conn, _ = listener.accept()
                wire.send(conn, request)
                conn.settimeout(limit)
                try:
                    return wire.receive(conn)
                except TimeoutError:  # the student's code hangs: interrupt it, go on
                    run_sync(self.km.interrupt_kernel)()
                    conn.settimeout(10)
                    wire.receive(conn)
            except (OSError, wire.JudgeError) as e:
                self._dead = f"the kernel stopped answering ({type(e).__name__}: {e})"
                raise wire.JudgeError(self._dead) from None
            raise TimeoutError(f"the call took longer than {limit} s and was interrupted")

        cell.execution_count = None
        try:
            shown, error = remote.judge_cell(cell.source, remote.Session(ask))
        finally:
            if conn is not None and not self._dead:
                with contextlib.suppress(OSError):
                    wire.send(conn, {"op": "done"})
            for s in (conn, listener):
                if s is not None:
                    s.close()
            path.unlink(missing_ok=True)
        printed = "" if self._dead else self._drain(msg_id)
        text = printed + shown
        cell.outputs = [NotebookNode(output_type="stream", name="stdout", text=text)] \
            if text else []
        if self._dead:  # the check's own error would only repeat this
            cell.outputs.append(_error("KernelDied", self._dead))
            self._stop_kernel()
        elif error is not None:
            cell.outputs.append(_error(type(error).__name__, str(error)))
        return cell

    def _drain(self, msg_id: str, limit: int = 100_000) -> str:
        """The stdout of a request loop, read until its kernel is idle again."""
        text, deadline = [], time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                msg = run_sync(self.kc.get_iopub_msg)(timeout=max(0.1, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001 - queue.Empty: the kernel never went idle
                self._dead = "the kernel did not finish the test's requests"
                return "".join(text)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            content = msg["content"]
            if msg["msg_type"] == "stream" and sum(map(len, text)) < limit:
                text.append(str(content.get("text", ""))[:limit])
            elif msg["msg_type"] == "status" and content.get("execution_state") == "idle":
                break
        return "".join(text)

    def judge_seconds(self) -> int:
        """Wall-clock budget of one judged test cell (all its calls into the kernel)."""
        return 3 * (self.timeout or 60)

    def _stop_kernel(self) -> None:
        try:
            if self.km is not None:
                run_sync(self.km.shutdown_kernel)(now=True)
        except Exception:  # noqa: BLE001, S110 - it is going away either way
            pass

    def output(self, outs, msg, display_id, cell_index):
        if msg.get("msg_type") == "error":  # errors decide grades: never dropped
            return super().output(outs, msg, display_id, cell_index)
        size = len(str(msg.get("content", "")))
        if self._private:  # the probe's verdict gets through a spent budget
            self._private_bytes += size
            return super().output(outs, msg, display_id, cell_index) \
                if self._private_bytes < 100_000 else None
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
