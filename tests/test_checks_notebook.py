"""A failed check reads as its message in a real kernel; the student's own errors keep theirs."""

import re

import nbformat
from nbclient import NotebookClient

from autograde.checks.notebook import show_failures_briefly
from autograde.course import build

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run_cells(*sources: str) -> list:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    NotebookClient(nb, kernel_name="python3", allow_errors=True, timeout=120,
                   resources={"metadata": {"path": str(build.ROOT)}}).execute()
    return [[o for o in c.outputs if o.output_type == "error"] for c in nb.cells]


def test_failures_are_one_message_and_student_errors_keep_their_traceback():
    errors = run_cells(
        "from autograde.checks import lab03_architectures as C",
        '"""Q4: channel_shuffle interleaves."""\nC.check_channel_shuffle(lambda x, g: x)',
        "def my_shuffle(x, g):\n    return x.view(5, g, -1)  # a student's slip\n"
        "C.check_channel_shuffle(my_shuffle)",
        "1 / 0",
        "def later(x, g):\n    raise NotImplementedError()\nC.check_channel_shuffle(later)",
    )
    assert errors[0] == []
    (wrong,) = errors[1]
    assert wrong.ename == "CheckFailed" and "values differ" in wrong.evalue
    assert len(wrong.traceback) == 1, wrong.traceback
    text = ANSI.sub("", wrong.traceback[0])
    assert text.startswith("Check failed (Q4): channel_shuffle(") and "swap the two" in text
    assert "During handling" not in text and "autograde/checks" not in text
    (crashed,) = errors[2]
    shown = ANSI.sub("", "\n".join(crashed.traceback))
    assert "my_shuffle" in shown and "a student's slip" in shown  # the student's frame
    assert shown.rstrip().splitlines()[-1].startswith("Check failed: channel_shuffle(")
    assert "your function raised RuntimeError" in shown
    assert "During handling" not in shown
    (plain,) = errors[3]  # anything else keeps IPython's usual traceback
    assert plain.ename == "ZeroDivisionError" and len(plain.traceback) > 1
    (todo,) = errors[4]  # an answer not written yet: the message says so, nothing more
    assert todo.ename == "NotAnswered" and len(todo.traceback) == 1
    text = ANSI.sub("", todo.traceback[0])
    assert text.startswith("Not answered yet:") and "still raises NotImplementedError" in text


def test_outside_a_kernel_nothing_is_installed():
    assert show_failures_briefly() is False
