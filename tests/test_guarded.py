"""efflib.guarded: a student's C cannot take the kernel down. An endless loop stops on
Interrupt, a crash is an exception naming the array and (checked) the line, the arrays
come back only from a call that returned, and timing leaves the guard out."""

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest
import torch
from jupyter_client.manager import start_new_kernel

from efflib import cc, guarded, loops

ADD = """
#include <stdio.h>
float add(const float *a, const float *b, float *out, int n) {
    float total = 0;
    for (int i = 0; i < n; i++) { out[i] = a[i] + b[i]; total += out[i]; }
    printf("added %d\\n", n);
    return total;
}
int twice(int k) { return 2 * k; }
"""
SAYS_THEN_CRASHES = """
#include <stdio.h>
void talk(float *y, int n) {
    printf("before the crash\\n");
    for (int i = 0; i <= n + 4096; i++) y[i] = 1.0f;
}
"""
PAST_END = """
void fill(float *y, int n) {
    for (int i = 0; i <= n + 4096; i++)
        y[i] = 1.0f;
}
"""
SPIN = "void spin(int n) { volatile long i = 0; while (n) i++; }"


@pytest.fixture(autouse=True, scope="module")
def own_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EFFLAB_CC_CACHE", str(tmp_path_factory.mktemp("cc")))
        yield


def test_a_guarded_call_computes_and_returns_like_ctypes(capfd):
    lib = cc.load(ADD, name="add")
    a, b, out = torch.arange(100.0), torch.ones(100), torch.zeros(100)
    lib.add.restype = ctypes.c_float
    total = lib.add(cc.pointer(a), cc.pointer(b), cc.pointer(out), 100)
    assert torch.equal(out, a + 1) and total == pytest.approx(float((a + 1).sum()))
    assert lib.twice(21) == 42
    assert "added 100" in capfd.readouterr().out  # what the C printed, in the notebook
    assert lib.add.seconds > 0


def test_what_the_c_printed_before_a_crash_is_shown(tmp_path):
    """In a fresh process writing to a file, as a kernel does: the child's output comes
    back into the process's stdout even when the call dies."""
    code = ("import torch\nfrom efflib import cc, guarded\n"
            f"lib = cc.load({SAYS_THEN_CRASHES!r}, name='talk')\n"
            "try:\n    lib.talk(cc.pointer(torch.zeros(4)), 4)\n"
            "except guarded.NativeCrash:\n    print('crashed')\n")
    with open(tmp_path / "out.txt", "w") as out:
        subprocess.run([sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT,
                       cwd=cc.Path(cc.__file__).parents[1], timeout=300, check=True)
    said = (tmp_path / "out.txt").read_text()
    assert "crashed" in said and "before the crash" in said, said


def test_memory_the_guard_cannot_bring_back_is_refused_by_name():
    lib = cc.load(ADD, name="add")
    a = torch.zeros(4)
    raw = ctypes.cast(a.data_ptr(), ctypes.POINTER(ctypes.c_float))
    with pytest.raises(TypeError, match="argument 3 points at memory.*cc.pointer"):
        lib.add(cc.pointer(a), cc.pointer(a), raw, 4)
    with pytest.raises(TypeError, match="argument 1 points at memory"):
        lib.twice(ctypes.byref(ctypes.c_int(3)))


def test_an_array_passed_twice_is_one_array_as_in_the_kernel():
    """In place: the C reads what it wrote through the other pointer."""
    lib = cc.load("void prefix(const float *a, float *out, int n) {"
                  " for (int i = 1; i < n; i++) out[i] = a[i - 1] + a[i]; }", name="prefix")
    x = torch.ones(5)
    lib.prefix(cc.pointer(x), cc.pointer(x), 5)
    assert x.tolist() == [1, 2, 3, 4, 5]


def test_a_write_past_the_end_is_an_error_that_names_the_array_and_changes_nothing():
    lib = cc.load(PAST_END, name="fill")
    y = torch.zeros(10)
    with pytest.raises(guarded.NativeCrash) as e:
        lib.fill(cc.pointer(y), 10)
    said = str(e.value)
    assert "lib.fill crashed with a segmentation fault" in said
    assert "past the end of argument 1 (10 elements of c_float), at element 10" in said
    assert "checked=True" in said
    assert torch.equal(y, torch.zeros(10))  # the call did not return: nothing came back


@pytest.mark.skipif(not (guarded.shutil.which("llvm-symbolizer")
                         or guarded.shutil.which("addr2line")), reason="no symbolizer")
def test_the_checked_build_names_the_line():
    lib = cc.load(PAST_END, name="fill", checked=True)
    with pytest.raises(guarded.NativeCrash, match="At fill.c, line 3"):
        lib.fill(cc.pointer(torch.zeros(10)), 10)


def _new_child(before: set[int], timeout: float = 120) -> psutil.Process | None:
    """This process's first child not among `before` (a test worker may have others),
    once there is one (a fork under load takes a while)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in psutil.Process().children():
            if child.pid not in before:
                return child
        time.sleep(0.01)
    return None


@pytest.fixture
def python_sigint():
    """Python's own SIGINT handler for the test, as a kernel has it while a cell runs: a
    test process started with SIGINT ignored (a job a shell put in the background) would
    otherwise never see the interrupt, and the endless loop would run on."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_interrupt_stops_an_endless_loop(python_sigint):
    lib = cc.load(SPIN, name="spin")
    before = {child.pid for child in psutil.Process().children()}
    sent, spun = [], []

    def interrupt_once_it_runs():
        spun.append(_new_child(before))
        time.sleep(0.2)
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_once_it_runs, daemon=True).start()
    with pytest.raises(KeyboardInterrupt, match="lib.spin was stopped"):
        lib.spin(1)
    assert time.monotonic() - sent[0] < 3
    assert spun[0] is not None and not psutil.pid_exists(spun[0].pid)


def test_an_interrupt_during_the_fork_still_stops_the_child(monkeypatch, python_sigint):
    """Interrupt landing after the fork, before the parent watches its child: the child is
    stopped all the same, not left spinning (it was, for 45 minutes of a test run)."""
    lib = cc.load(SPIN, name="spin")
    fork, forked = os.fork, []

    def fork_then_interrupt():
        pid = fork()
        if pid:
            forked.append(pid)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # where Python runs the handler
        return pid

    monkeypatch.setattr(guarded.os, "fork", fork_then_interrupt)
    try:
        with pytest.raises(KeyboardInterrupt, match="lib.spin was stopped"):
            lib.spin(1)
        assert not psutil.pid_exists(forked[0]) or \
            psutil.Process(forked[0]).status() == psutil.STATUS_ZOMBIE
    finally:
        for pid in forked:  # only the child this test forked: a worker may have others
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).kill()
                os.waitpid(pid, 0)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # given back


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG")
def test_a_kernel_killed_mid_call_takes_its_child_along():
    code = ("import torch\nfrom efflib import cc\n"
            f"lib = cc.load({SPIN!r}, name='spin')\nlib.spin(1)\n")
    kernel = subprocess.Popen([sys.executable, "-c", code], cwd=cc.Path(cc.__file__).parents[1])
    spinning = []
    try:
        deadline = time.monotonic() + 300
        while not (spinning := psutil.Process(kernel.pid).children()):
            assert kernel.poll() is None and time.monotonic() < deadline, "it never forked"
            time.sleep(0.05)
        kernel.kill()
        kernel.wait()
        gone, alive = psutil.wait_procs(spinning, timeout=10)
        assert not alive, "the C went on running after its kernel was killed"
    finally:
        kernel.kill()
        for child in spinning:  # orphaned, if the test failed
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()


def test_timing_leaves_the_guard_out():
    """A call that does nothing costs a fork outside the C; `loops.timed` does not count it."""
    lib = cc.load(ADD, name="add")
    start = time.perf_counter()
    lib.twice(1)
    wall = time.perf_counter() - start
    inside = loops.timed(lambda: lib.twice(1), 0.2)
    assert inside < wall / 5, (inside, wall)


def test_the_lab_pattern_in_a_real_kernel():
    """What the issue asked: in a kernel, an endless loop stops within 3 s of Interrupt, a
    write past the end is an error, and the kernel still has the student's variables."""
    km, kc = start_new_kernel(kernel_name="python3")  # EFFLAB_CC_CACHE: this module's
    try:
        def run(code: str, timeout: float = 120) -> dict:
            outputs = []
            reply = kc.execute_interactive(code, timeout=timeout,
                                           output_hook=outputs.append)
            return {"status": reply["content"]["status"],
                    "text": "".join(str(o["content"]) for o in outputs)}

        setup = (f"import sys; sys.path.insert(0, {str(cc.Path(cc.__file__).parents[1])!r})\n"
                 "import torch\nfrom efflib import cc\nmine = 41\n"
                 f"lib = cc.load({SPIN!r}, name='spin')\n"
                 f"bad = cc.load({PAST_END!r}, name='fill')\n")
        assert run(setup)["status"] == "ok"
        spinning = kc.execute("lib.spin(1)")
        time.sleep(1.0)
        start = time.monotonic()
        km.interrupt_kernel()
        while True:
            msg = kc.get_iopub_msg(timeout=10)
            if msg["msg_type"] == "error":
                assert msg["content"]["ename"] == "KeyboardInterrupt"
                break
        assert time.monotonic() - start < 3
        while kc.get_shell_msg(timeout=10)["parent_header"].get("msg_id") != spinning:
            pass
        time.sleep(0.5)  # past the kernel's window for aborting requests after an error
        crashed = run("bad.fill(cc.pointer(torch.zeros(10)), 10)")
        assert crashed["status"] == "error" and "NativeCrash" in crashed["text"]
        assert "past the end of argument 1" in crashed["text"]
        alive = run("print(1 + 1, mine + 1)")
        assert alive["status"] == "ok" and "2 42" in alive["text"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.mark.skipif(sys.platform != "linux", reason="measured where the course runs")
def test_a_crashing_call_leaves_no_child_behind():
    lib = cc.load(PAST_END, name="fill")
    before = {p.pid for p in psutil.Process().children()}  # a test runner's own, if any
    for _ in range(3):
        with pytest.raises(guarded.NativeCrash):
            lib.fill(cc.pointer(torch.zeros(10)), 10)
    assert {p.pid for p in psutil.Process().children()} <= before
