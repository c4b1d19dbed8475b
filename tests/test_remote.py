"""autograde.wire and autograde.remote: plain-data transport, judging outside the kernel.

The kernel side runs here in-process through a JSON round trip, so these tests need no
kernel; tests/test_grade.py runs the same path against real sandboxed kernels."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from autograde import build, remote, wire
from autograde.checks import _core, lab01
from autograde.checks._core import CheckFailed
from autograde.executor import is_test_cell


class Liar(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


class Sneaky(torch.Tensor):
    pass


def roundtrip(value):
    return wire.decode(json.loads(json.dumps(wire.encode(value))))


def test_plain_values_survive_and_lose_their_overrides():
    value = {"n": Liar(3), "x": 2.5, "ok": True, "s": "hi", "none": None,
             "shape": torch.Size([2, 3]), "nested": [(1, 2), [3.0, float("inf")]],
             "dtype": torch.int8}
    got = roundtrip(value)
    assert type(got["n"]) is int and got["n"] == 3 and got["n"] != 4
    assert got["shape"] == (2, 3) and type(got["shape"]) is tuple
    assert got["nested"] == [(1, 2), [3.0, math.inf]] and got["ok"] is True
    assert got["dtype"] is torch.int8 and got["none"] is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int64, torch.bool,
                                   torch.uint8, torch.float16])
def test_tensors_travel_exactly(dtype):
    t = (torch.randn(3, 4, 5) * 10).to(dtype)
    got = roundtrip(t)
    assert got.dtype == dtype and torch.equal(got, t)
    assert type(roundtrip(t.as_subclass(Sneaky))) is torch.Tensor
    assert roundtrip(torch.empty(0, 3)).shape == (0, 3)


def test_objects_become_refs_only_where_allowed():
    refs = {}
    enc = wire.encode([1, print], refs)
    assert enc[1]["__t"] == "ref" and refs[enc[1]["id"]] is print
    with pytest.raises(TypeError, match="not plain data"):
        wire.encode(object())
    with pytest.raises(wire.JudgeError, match="not a valid value"):
        wire.decode(enc)  # a ref needs a session to become a Remote


def test_standard_layers_travel_as_data_and_are_rebuilt():
    import torch.nn as nn

    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                      nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Flatten(),
                      nn.Linear(8 * 4 * 4, 5)).eval()
    with torch.no_grad():
        m[1].running_mean.normal_()
        m[0].weight = nn.Parameter(m[0].weight[:6])  # resized by hand: kept as it is
        m[1] = nn.BatchNorm2d(6).eval()
    m[5] = nn.Linear(6 * 4 * 4, 5)
    got = roundtrip(m)
    x = torch.randn(2, 3, 8, 8)
    assert type(got) is nn.Sequential and got is not m and not got.training
    assert torch.equal(got(x), m(x)) and got[0].bias is None

    class MyConv(nn.Conv2d):
        def forward(self, x):
            return super().forward(x) * 0 + 1
    assert not wire.is_layer_tree(nn.Sequential(MyConv(1, 1, 1)))
    with pytest.raises(TypeError, match="not plain data"):
        wire.encode(nn.Sequential(MyConv(1, 1, 1)))


@pytest.mark.parametrize("bad", [
    {"__t": "module", "cls": "Module", "config": {"__t": "dict", "v": []}},
    {"__t": "module", "cls": "ReLU", "config": {"__t": "dict", "v": [["inplace", False],
                                                                     ["hook", "x"]]}},
    {"__t": "tensor", "dtype": "float32", "shape": [2], "data": "AAAA"},  # 3 bytes for 8
    {"__t": "tensor", "dtype": "Tensor", "shape": [], "data": ""},
    {"__t": "pickle", "v": "gASV"},
    {"v": 1},
    {"__t": "dict", "v": [[[1], 2]]},  # unhashable key
])
def test_malformed_answers_are_refused(bad):
    with pytest.raises(wire.JudgeError):
        wire.decode(bad)


def test_which_cells_are_judged():
    assert remote.judged_checks(
        "from autograde.checks.lab01 import check_pad2d\ncheck_pad2d(pad2d)") == ["check_pad2d"]
    assert remote.judged_checks("from autograde.checks.lab03 import check_bottleneck\n"
                                "check_bottleneck(Bottleneck)") is None  # kernel_only
    assert remote.judged_checks("import os\nfrom autograde.checks.lab01 import check_pad2d\n"
                                "check_pad2d(pad2d)") is None
    assert remote.judged_checks("assert x == 1") is None
    assert remote.judged_checks("def (:") is None


def test_every_lab_test_cell_is_judged_unless_its_check_needs_a_live_object():
    """Lab 01 is judged throughout; elsewhere only cells of kernel_only checks run in the
    kernel (where the integrity probe guards them)."""
    import importlib

    points = {}
    for lab in build.lab_names():
        for cell in build.source_notebook(lab).cells:
            if not is_test_cell(cell):
                continue
            judged = remote.judged_checks(cell.source)
            got = points.setdefault(lab, [0, 0])
            got[0] += cell.metadata["nbgrader"]["points"] if judged else 0
            got[1] += cell.metadata["nbgrader"]["points"]
            if judged is None:
                mod = importlib.import_module(f"autograde.checks.{lab[:5]}")
                names = [n for n in dir(mod) if n.startswith("check_") and n in cell.source]
                assert lab != "lab01_layers"
                assert any(getattr(mod, n).kernel_only for n in names
                           if hasattr(getattr(mod, n), "kernel_only")), cell.source
    # judged / autograded points, as the README states them
    assert points == {"lab01_layers": [25, 25], "lab02_metrics": [25, 29],
                      "lab03_architectures": [11, 20], "lab04_pruning": [5, 16]}


# --- judging a cell against an in-process "kernel" ------------------------------------

def session_for(namespace: dict) -> remote.Session:
    """A Session whose kernel is this process: every request and reply goes through JSON,
    and the kernel side runs with judging switched off, as it would in the kernel."""
    def ask(request):
        request = json.loads(json.dumps(request))
        remote._JUDGING.append(False)
        try:
            return json.loads(json.dumps(remote.answer(request, namespace)))
        finally:
            remote._JUDGING.pop()
    return remote.Session(ask)


Q1 = "from autograde.checks.lab01 import check_linear_forward\ncheck_linear_forward(linear_forward)"


def test_a_right_answer_passes_and_prints_reach_the_output():
    def linear_forward(x, w, b):
        print("called")
        return x @ w.T + b

    printed, error = remote.judge_cell(Q1 + "\nprint('done')", session_for(
        {"linear_forward": linear_forward}))
    assert error is None, error
    assert printed.endswith("done\n")


@pytest.mark.parametrize("answer, message", [
    (lambda x, w, b: x @ w + b, "linear_forward"),                # wrong shapes
    (lambda x, w, b: Liar(0), "should be a torch.Tensor"),         # always-equal int
    (lambda x, w, b: F.linear(x, w, b), "calls torch's linear"),   # forbidden op, in kernel
    (lambda x, w, b: 1 / 0, "raised ZeroDivisionError"),
])
def test_wrong_answers_fail_with_the_checks_message(answer, message):
    _, error = remote.judge_cell(Q1, session_for({"linear_forward": answer}))
    assert isinstance(error, CheckFailed) and message in str(error)


def test_not_implemented_and_missing_names():
    def linear_forward(x, w, b):
        raise NotImplementedError

    _, error = remote.judge_cell(Q1, session_for({"linear_forward": linear_forward}))
    assert "not implemented yet" in str(error)
    _, error = remote.judge_cell(Q1, session_for({}))
    assert isinstance(error, NameError) and "linear_forward" in str(error)


def test_the_kernel_cannot_talk_the_judge_into_a_pass():
    """Whatever a tampered kernel answers is data; a forged 'pass' does not exist."""
    forged = remote.Session(lambda request: {"value": {"__t": "tuple", "v": []}})
    _, error = remote.judge_cell(Q1, forged)
    assert isinstance(error, CheckFailed) and "expected a function" in str(error)
    garbage = remote.Session(lambda request: {"value": {"__t": "pickle", "v": "x"}})
    _, error = remote.judge_cell(Q1, garbage)
    assert isinstance(error, wire.JudgeError)


def test_notebook_names_shadow_builtins_as_they_would_in_the_kernel():
    src = "from autograde.checks.lab01 import check_linear_forward\ncheck_linear_forward(pow)"
    _, error = remote.judge_cell(src, session_for({"pow": lambda x, w, b: x @ w.T + b}))
    assert error is None, error
    _, error = remote.judge_cell(src, session_for({}))  # the builtin pow: wrong answer
    assert isinstance(error, CheckFailed)


def test_watch_travels_with_the_call_and_reports_what_ran():
    """Q6 requires torch.einsum: the kernel records the calls, the judge reads them."""
    def conv2d_einsum(x, w, b=None, stride=1, padding=0):
        return F.conv2d(x, w, b, stride=stride, padding=padding)

    src = ("from autograde.checks.lab01 import check_conv2d_einsum\n"
           "check_conv2d_einsum(conv2d_einsum)")
    _, error = remote.judge_cell(src, session_for({"conv2d_einsum": conv2d_einsum}))
    assert isinstance(error, CheckFailed) and "conv2d" in str(error)
    assert not _core._WATCHES and not remote.is_judging()


def test_checks_still_run_in_the_kernel_for_students():
    """Outside the grader (JupyterLab), the same check runs in-process as before."""
    with pytest.raises(CheckFailed, match="calls torch's linear"):
        lab01.check_linear_forward(lambda x, w, b: F.linear(x, w, b))


def test_a_returned_sequential_is_judged_as_rebuilt_layers():
    """Q1 of Lab 03 judged outside the kernel: the block is rebuilt here from data."""
    import torch.nn as nn

    def vgg_stage(c_in, c_out, convs):
        layers = []
        for i in range(convs):
            layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1), nn.ReLU()]
        return nn.Sequential(*layers, nn.MaxPool2d(2))

    class Stage(nn.Module):  # right behaviour, but a class the grader cannot rebuild
        def __init__(self, c_in, c_out, convs):
            super().__init__()
            self.body = vgg_stage(c_in, c_out, convs)

        def forward(self, x):
            return self.body(x)

    src = "from autograde.checks.lab03 import check_vgg_stage\ncheck_vgg_stage(vgg_stage)"
    _, error = remote.judge_cell(src, session_for({"vgg_stage": vgg_stage}))
    assert error is None, error
    _, error = remote.judge_cell(src, session_for({"vgg_stage": Stage}))
    assert isinstance(error, CheckFailed) and "nn.Sequential" in str(error)
