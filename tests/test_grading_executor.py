"""autograde.grading.executor: a dead, slow or chatty kernel never passes a test.

These run without root: the kernel is a fake kernelspec of this test's own (a process
that dies at start, or a plain unsandboxed ipykernel), found first on JUPYTER_PATH."""

import json
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from autograde.grading import outcome, secret
from autograde.grading.executor import (
    KERNEL_START_FAILED,
    TIMED_OUT,
    KernelStartError,
    OutputBudget,
    SandboxedExecute,
)
from autograde.grading.settings import Settings
from autograde.sandbox.kernel import KERNEL_NAME

LAB = "lab01_layers"


def graded(source: str, grade_id: str, points: int = 1):
    return new_code_cell(source, metadata={"nbgrader": {
        "grade": True, "solution": False, "locked": True, "points": points,
        "grade_id": grade_id, "schema_version": 3}})


def fake_kernel(tmp_path, monkeypatch, argv: list[str]) -> None:
    spec = tmp_path / "jupyter" / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps(
        {"argv": argv, "display_name": "fake", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))


@pytest.fixture
def scratch_root():
    """Short, as the grader's own is: Unix socket paths must stay under 108 bytes."""
    root = Path(tempfile.mkdtemp(prefix="efx-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def execute(nb, tmp_path, root, timeout: int, notebook_timeout: int = 600, **traits):
    settings = Settings(cell_timeout=timeout, notebook_timeout=notebook_timeout, judge=False)
    ex = SandboxedExecute(scratch_root=str(root), probe=False, settings=settings.to_dict(),
                          course_root=str(tmp_path / "course"), **traits)
    nb, _ = ex.preprocess(nb, {"nbgrader": {"student": "s1", "assignment": LAB},
                               "metadata": {"path": str(tmp_path)}})
    return nb


@pytest.fixture(autouse=True)
def course(tmp_path) -> Path:
    """A grading folder with the lab's key, where the executor writes each outcome."""
    folder = tmp_path / "course"
    folder.mkdir()
    secret.prepare(folder, LAB, secret.load(tmp_path / "secret"))
    return folder


def ran(course: Path) -> outcome.Outcome:
    """The outcome record the executor wrote for student s1."""
    found = outcome.read(course, LAB, "s1")
    assert found is not None, "the executor wrote no outcome"
    return found


def errors(cell) -> list[str]:
    return [f"{o.ename}: {o.evalue}" for o in cell.outputs if o.output_type == "error"]


def test_a_kernel_that_dies_at_start_is_the_graders_problem(tmp_path, monkeypatch,
                                                            scratch_root):
    """A kernel that never came up is not a student's 0: grading this notebook fails, with
    what the launcher said, so the grader retries it and reports it (grading.grader)."""
    fake_kernel(tmp_path, monkeypatch, [sys.executable, "-c", (
        "import sys; print('mount: /dev/shm: permission denied', file=sys.stderr); "
        "sys.exit(3)")])
    nb = new_notebook(cells=[new_code_cell("x = 1"), graded("assert x == 1", "q1_test"),
                             graded("assert True", "q2_test")])
    with pytest.raises(KernelStartError) as e:
        execute(nb, tmp_path, scratch_root, timeout=20, startup_timeout=20)
    assert str(e.value).startswith(KERNEL_START_FAILED)
    assert "mount: /dev/shm: permission denied" in str(e.value)
    assert ran(tmp_path / "course").kernel_start_error == str(e.value)  # what grading reads
    assert not list(scratch_root.iterdir()), "the scratch folder was left behind"


@pytest.fixture
def plain_kernel(tmp_path, monkeypatch):
    fake_kernel(tmp_path, monkeypatch,
                [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"])


def test_marks_earned_before_a_crash_stay_and_later_tests_are_not_run(tmp_path, plain_kernel,
                                                                      scratch_root):
    nb = new_notebook(cells=[
        new_code_cell("x = 1"), graded("assert x == 1", "q1_test"),
        new_code_cell("import os; os._exit(1)"),
        graded("assert x == 1", "q2_test"), graded("assert True", "q3_test")])
    nb = execute(nb, tmp_path, scratch_root, timeout=60)
    assert errors(nb.cells[1]) == []                               # earned before the crash
    assert errors(nb.cells[2])[0].startswith("KernelDied:")        # the cell that killed it
    for cell in nb.cells[3:]:
        assert errors(cell)[0].startswith("NotRun: not run: DeadKernelError")
    record = ran(tmp_path / "course")
    assert record.kernel_died.startswith("DeadKernelError")
    assert (record.kernel_start_error, record.timed_out_cells) == ("", [])


def test_a_notebook_past_its_budget_runs_no_more_tests(tmp_path, plain_kernel, scratch_root):
    nb = new_notebook(cells=[new_code_cell("import time; time.sleep(2)"),
                             graded("assert True", "q1_test")])
    nb = execute(nb, tmp_path, scratch_root, timeout=60, notebook_timeout=1)
    assert errors(nb.cells[1]) == ["NotRun: not run: the notebook ran out of its 1 s budget"]
    assert TIMED_OUT in nb.cells[1].outputs[-1].text  # said to the student
    assert ran(tmp_path / "course").timed_out_cells == [1]  # the grader grades it again, alone


def test_a_cell_interrupted_for_time_is_marked_and_the_rest_runs(tmp_path, plain_kernel,
                                                                scratch_root):
    nb = new_notebook(cells=[new_code_cell("import time\nwhile True: time.sleep(0.1)"),
                             new_code_cell("x = 1"), graded("assert x == 1", "q1_test")])
    nb = execute(nb, tmp_path, scratch_root, timeout=2)
    assert TIMED_OUT in nb.cells[0].outputs[-1].text
    assert all(TIMED_OUT not in o.get("text", "") for c in nb.cells[1:] for o in c.outputs)
    assert errors(nb.cells[2]) == []
    assert ran(tmp_path / "course") == outcome.Outcome(timed_out_cells=[0])


def test_output_past_the_budget_is_dropped_but_errors_are_kept(tmp_path, plain_kernel,
                                                               scratch_root):
    nb = new_notebook(cells=[graded(
        "import time\nprint('x' * 5000, flush=True)\ntime.sleep(0.5)\nprint('y' * 5000)\n"
        "assert False", "q1_test")])
    nb = execute(nb, tmp_path, scratch_root, timeout=60, max_output_bytes=6000)
    text = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    assert "x" * 5000 in text and "y" * 5000 not in text
    assert "dropped by the grader" in text
    assert errors(nb.cells[0]) and errors(nb.cells[0])[0].startswith("AssertionError")
    nbformat.validate(nb)


def test_output_budget_counts_every_kind_but_errors():
    budget, outs = OutputBudget(10), []
    assert budget.admit({"msg_type": "stream", "content": "x" * 8}, outs)
    assert not budget.admit({"msg_type": "stream", "content": "x" * 8}, outs)
    assert not budget.admit({"msg_type": "display_data", "content": "y"}, outs)
    assert budget.admit({"msg_type": "error", "content": "z" * 100}, outs)
    assert len(outs) == 1 and "dropped" in outs[0].text  # one notice, not one per message
