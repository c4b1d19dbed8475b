"""grading.audit: code a student wrote to reach past the refusals is flagged with its line;
the solutions, and the lab's own code copied into a student's cell, are not."""

import nbformat
import pytest

from autograde.course import build
from autograde.grading import audit


def released(lab: str) -> nbformat.NotebookNode:
    return nbformat.read(build.LABS / lab / f"{lab}.ipynb", as_version=4)


# each way past the refusals issue 27 found, as a student's notebook would hold it
TRICKS = {
    "a guarded reference out of its closure": (
        "quantized_multiplier = efflib.quant.integer.quantize_multiplier"
        ".__closure__[0].cell_contents", "insides (.cell_contents)"),
    "the wrapped function": ("conv2d_direct = loops.conv2d_direct.__wrapped__",
                             "insides (.__wrapped__)"),
    "a dunder spelt in a string": ('f = getattr(g, "__closure__")[0]', "insides in a string"),
    "a dunder built at run time": ('f = getattr(g, "__clo" + "sure__")',
                                   "name built at run time"),
    "an unguarded private twin": ("from efflib.quant.linear import _FakeQuantize",
                                  "private _FakeQuantize"),
    "efflib's refusals emptied": ("import efflib.graded\nefflib.graded._blocked.clear()",
                                  "efflib's refusals"),
    "the refusals' set replaced": ("from efflib import graded\ngraded._blocked = set()",
                                   "by assignment"),
    "the kernel's watch switched off": (
        "import contextlib\nimport autograde.judging.kernel_side as ks\n"
        "ks.from_spec = lambda *a, **k: contextlib.nullcontext()", "grader's checks"),
    "a check's reference as the answer": (
        "from autograde.checks.lab07_beyond_compression import reference_front as "
        "pareto_front", "grader's checks"),
    "torch replaced": ("import torch.nn.functional as F\nF.kl_div = my_kl", "by assignment"),
    "torch replaced by setattr": ("setattr(torch, 'quantize_per_tensor', q)", "by setattr"),
    "code made at run time": ("exec(bytes.fromhex('7072696e74').decode())", "(exec)"),
    "imports by name": ("m = __import__('efflib.graded')", "(__import__)"),
    "sys.modules": ("import sys\nsys.modules['efflib.graded']._blocked.clear()",
                    "sys.modules"),
    "C memory": ("import ctypes", "reaches C memory"),
    "does not parse, still read": ("def f(:\n    return g.__closure__", "insides"),
    # switched off inside the answer's own function, which runs in the clean room too
    "torch's function modes off": (
        "def f(x):\n    with torch._C.DisableTorchFunction(): return g(x)",
        "(DisableTorchFunction)"),
    "torch's modes off, imported": (
        "from torch._C import DisableTorchFunction as D", "(DisableTorchFunction)"),
    "torch's dispatch modes off": (
        "from torch.utils._python_dispatch import _disable_current_modes",
        "(_disable_current_modes)"),
    "the profiler off": ("def f(x):\n    sys.setprofile(None)", "(setprofile)"),
    "the profiler off, imported": ("from sys import setprofile as s", "(setprofile)"),
    "the profiler off in a thread": ("import threading\nthreading.setprofile(None)",
                                     "(setprofile)"),
    "a private module": ("import torch._C as C", "private module"),
}


@pytest.mark.parametrize("name", list(TRICKS))
def test_each_way_past_the_refusals_is_flagged_with_its_line(name):
    code, why = TRICKS[name]
    found = audit.read(code)
    assert [w for _, w in found if why in w], found
    assert len(code.splitlines()) in [line for line, _ in found]  # the trick's own line


@pytest.mark.parametrize("lab", build.lab_names())
def test_the_solutions_reach_past_nothing(lab):
    assert audit.audit(build.source_notebook(lab),
                       audit.released_lines(released(lab))) == []


def test_honest_code_is_not_flagged():
    honest = ("import torch\nimport torch.nn.functional as F\nfrom efflib import models\n"
              "layer = getattr(model, name)\nsetattr(model, name, pruned)\n"
              "torch.backends.cudnn.benchmark = False\nmodel._modules  # a model's, not torch's\n"
              "y = F.relu(torch.compile(f)(x))\nout = getattr(model, f'conv{i}')\n")
    assert audit.read(honest) == []


def test_an_added_cell_is_read_and_named_by_its_place():
    nb = build.source_notebook("lab05_quantization")
    nb.cells.insert(3, nbformat.v4.new_code_cell("import efflib.graded\n"
                                                 "efflib.graded._blocked.clear()"))
    findings = audit.audit(nb, audit.released_lines(released("lab05_quantization")))
    assert {(f.cell, f.line) for f in findings} == {("cell 4", 1), ("cell 4", 2)}
    flags = audit.flags({"eve": findings, "ann": []})
    assert set(flags) == {"eve"} and "cell 4 line 2" in flags["eve"]


def test_an_answer_cell_is_named_by_its_grade_id():
    nb = build.source_notebook("lab05_quantization")
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "q8_fake_quant":
            cell.source += "\nfrom efflib.quant.linear import _FakeQuantize as FakeQuantize\n"
    (finding,) = audit.audit(nb, audit.released_lines(released("lab05_quantization")))
    assert finding.cell == "q8_fake_quant" and "_FakeQuantize" in finding.code


def test_a_cell_with_malformed_metadata_is_read_as_an_added_one():
    nb = build.source_notebook("lab05_quantization")
    nb.cells.insert(3, nbformat.v4.new_code_cell("efflib.graded._blocked.clear()",
                                                 metadata={"nbgrader": "not a dict"}))
    findings = audit.audit(nb, audit.released_lines(released("lab05_quantization")))
    assert [(f.cell, f.line) for f in findings] == [("cell 4", 1)]
    from autograde.grading import similarity
    assert "q8_fake_quant" in similarity.answer_cells(nb)  # the others are still read
