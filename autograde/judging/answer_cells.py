"""What an answer cell called while it ran, so that a question's refusals cover its whole
answer and not only the check's calls: a table of torch's results made when the cell runs,
then read back by the answer, is refused like a call of torch during the check.

Before each answer cell the executor runs `answer_pairs.begin_code()` in the
kernel, after it `end_code(nonce)`, whose one line after the nonce is the cell's `Record` as JSON:
the torch functions it called (by name and by module and qualified name), efflib's
graded topics, the NumPy and SciPy functions and the modules whose Python functions
ran. While a test cell is judged, `answers(...)` holds the records of that
question's answer cells, and `watch` fails a check whose refusals they meet
(`refused_in_answer`). When grading, the records are kept in the grader; under
Validate they stay in the student's kernel.
"""

import contextlib
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

from torch.overrides import TorchFunctionMode, _get_current_function_mode_stack, _pop_mode

from efflib import graded

NUMPY_MODULES = ("numpy", "scipy")


@dataclass
class Record:
    """What one answer cell called while it ran."""

    torch: list[str] = field(default_factory=list)  # names and module:qualnames
    topics: list[str] = field(default_factory=list)  # efflib's graded references called
    numpy: list[str] = field(default_factory=list)  # "module name" of NumPy/SciPy functions
    modules: list[str] = field(default_factory=list)  # modules whose Python functions ran
    switched_off: str = ""  # what of the record the cell removed, if anything


# --- in the kernel --------------------------------------------------------------------

class _TorchCalls(TorchFunctionMode):
    """Notes every torch function called (matching is done by the grader)."""

    def __init__(self):
        super().__init__()
        self.functions: set = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        try:
            self.functions.add(func)
        except TypeError:  # an unhashable callable: its name will do
            self.functions.add(getattr(func, "__name__", repr(func)))
        return func(*args, **(kwargs or {}))


def _names(func) -> list[str]:
    if isinstance(func, str):
        return [func]
    name = getattr(func, "__name__", "")
    qualified = f"{getattr(func, '__module__', None) or ''}:{getattr(func, '__qualname__', '')}"
    return [name, qualified] if name else [qualified]


class _Open:
    """The record of the answer cell now running."""

    def __init__(self, grade_id: str):
        self.grade_id = grade_id
        self.calls = _TorchCalls()
        self.topics = graded.start_record()
        self.numpy: set[str] = set()
        self.modules: set[str] = set()
        self.previous = sys.getprofile()
        self.calls.__enter__()
        sys.setprofile(self.hook)

    def hook(self, frame, event, arg):
        if event == "call":
            module = frame.f_globals.get("__name__", "")
            self.modules.add(module)
            if module.startswith(NUMPY_MODULES):
                self.numpy.add(f"{module} {frame.f_code.co_name}")
        elif event == "c_call":
            module = getattr(arg, "__module__", None) or ""
            if module.startswith(NUMPY_MODULES):
                self.numpy.add(f"{module} {getattr(arg, '__name__', '')}")

    def close(self) -> Record:
        off = []
        if sys.getprofile() == self.hook:
            sys.setprofile(self.previous)
        else:
            off.append("the profiler (sys.setprofile)")
        stack = _get_current_function_mode_stack()
        if any(mode is self.calls for mode in stack):
            while _get_current_function_mode_stack():
                if _pop_mode() is self.calls:
                    break
        else:
            off.append("torch's function mode")
        graded.stop_record(self.topics)
        names = sorted({n for f in self.calls.functions for n in _names(f)})
        return Record(torch=names, topics=sorted(self.topics), numpy=sorted(self.numpy),
                      modules=sorted(self.modules), switched_off=", ".join(off))


_NOW: list[_Open] = []
_KERNEL_RECORDS: dict[str, Record] = {}  # under Validate: the records stay here


def begin(grade_id: str) -> None:
    """In the kernel, before answer cell `grade_id` runs."""
    while _NOW:  # a record left open (the cell before was interrupted): closed first
        _KERNEL_RECORDS[_NOW[-1].grade_id] = _NOW.pop().close()
    _NOW.append(_Open(grade_id))


def end(nonce: str) -> None:
    """In the kernel, after the answer cell: close its record and print it after `nonce`."""
    if _NOW:
        opened = _NOW.pop()
        record = _KERNEL_RECORDS[opened.grade_id] = opened.close()
    else:
        record = Record(switched_off="the record itself")
    # one write: what the cell wrote to the kernel's file descriptors may arrive in between
    sys.stdout.write(f"{nonce} {json.dumps(asdict(record))}\n")
    sys.stdout.flush()


def read(text: str, nonce: str) -> Record:
    """The record `end` printed in `text` (a cell's stdout); a missing, doubled or
    malformed one is a record the cell switched off."""
    if text.count(nonce) != 1:
        return Record(switched_off="the record itself")
    try:
        fields = json.loads(text.split(nonce, 1)[1].split("\n", 1)[0])
        return Record(**{k: fields[k] for k in Record.__dataclass_fields__})
    except (ValueError, KeyError, TypeError):
        return Record(switched_off="the record itself")


# --- while a test cell is judged --------------------------------------------------------

_ANSWERS: list[dict[str, Record]] = [{}]


@contextlib.contextmanager
def answers(records: dict[str, Record]) -> Iterator[None]:
    """Within the block, checks refuse what these answer cells called (grade id: record)."""
    _ANSWERS.append(dict(records))
    try:
        yield
    finally:
        _ANSWERS.pop()


def use(answer_ids: Iterable[str]) -> None:
    """In the kernel (Validate): the test cell about to run judges these answer cells."""
    _ANSWERS[0] = {a: _KERNEL_RECORDS[a] for a in answer_ids if a in _KERNEL_RECORDS}


def refused_in_answer(recorder) -> str:
    """Why the answer cells now judged break `recorder`'s refusals ('' if they do not)."""
    refuses_anything = recorder.names or recorder.objects or recorder.topics \
        or recorder.numpy or recorder.modules
    if not refuses_anything:
        return ""
    objects = {f"{getattr(f, '__module__', None) or ''}:{getattr(f, '__qualname__', '')}"
               for f in recorder.objects}
    for grade_id, record in _ANSWERS[-1].items():
        called = set(record.torch)
        found = sorted((recorder.names | objects) & called)
        if found:
            shown = found[0].split(":")[-1]
            return (f"your answer cell {grade_id} calls torch's {shown} while it runs, which "
                    f"{recorder.why} Compare with torch in a cell of your own, not in the "
                    "answer cell.")
        topics = sorted(set(recorder.topics) & set(record.topics))
        if topics:
            return (f"your answer cell {grade_id} calls efflib's reference for {topics[0]} "
                    "while it runs; this question asks you to write it yourself, so "
                    "efflib's copy is off limits in the answer cell too.")
        numpy = sorted(n for n in record.numpy if n.split(" ")[-1] in recorder.numpy)
        modules = sorted(m for m in record.modules if m.startswith(tuple(recorder.modules)))
        if numpy or modules:
            shown = numpy[0].replace(" ", "'s ") if numpy else modules[0]
            return (f"your answer cell {grade_id} calls {shown} while it runs, which "
                    f"{recorder.why}")
        if record.switched_off:
            return (f"your answer cell {grade_id} switched off {record.switched_off}, which "
                    "the grader uses to see what an answer calls; remove that code.")
    return ""
