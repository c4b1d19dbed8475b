"""How a failed check looks in a notebook: its message, not a traceback through the checks.

In a student's kernel a `CheckFailed` is shown as one line (case, expected, got,
hint), without the checks' frames and without "During handling of the above
exception". When the failure was an error raised by the student's own code (the
check reports it), that error's traceback is shown above the message, because
there the frames are the student's; an answer not written yet is just the message, titled
"Not answered yet" instead of "Check failed".
"""

import re

from IPython import get_ipython

from autograde.judging.values import CheckFailed, NotAnswered
from efflib.graded import GradedAnswerError

BRIEF = (CheckFailed, GradedAnswerError)
_QUESTION = re.compile(r'^\s*(?:"""|\'\'\')\s*(Q\d+[a-z]?)\b')  # a test cell's docstring


def question(shell) -> str:
    """The question of the cell running now, from its docstring ("Q2a: ..."), or ""."""
    history = shell.user_ns.get("_ih") or [""]
    m = _QUESTION.match(history[-1])
    return m.group(1) if m else ""


def brief_traceback(shell, etype, value, tb, tb_offset=None) -> list[str]:
    """IPython's custom exception handler: the student's own error, then the message (shown
    as an error output, so nbgrader and Validate still see the cell fail)."""
    cause = value.__cause__ or (None if value.__suppress_context__ else value.__context__)
    lines = []
    if cause is not None and not isinstance(cause, BRIEF + (NotImplementedError,)):
        lines = shell.InteractiveTB.structured_traceback(type(cause), cause, cause.__traceback__)
        lines.append("")
    title = "Not answered yet" if isinstance(value, NotAnswered) else \
        "Check failed" if isinstance(value, CheckFailed) else etype.__name__
    if q := question(shell):
        title += f" ({q})"
    lines.append(f"\x1b[1;31m{title}:\x1b[0m {value}")
    shell._showtraceback(etype, value, lines)  # IPython leaves showing it to the handler
    return lines


def show_failures_briefly() -> bool:
    """Install the brief display in the running IPython kernel (no-op elsewhere)."""
    shell = get_ipython()
    if shell is None:
        return False
    if BRIEF[0] not in getattr(shell, "custom_exceptions", ()):
        shell.set_custom_exc(BRIEF, brief_traceback)
    return True
