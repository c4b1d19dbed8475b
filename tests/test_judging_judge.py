"""autograde.judging: which test cells are judged, and judging one in the grader.

The kernel side runs here in-process through a JSON round trip, so these tests need no
kernel; tests/test_grading_grader.py runs the same path against real sandboxed kernels."""

import contextlib

import pytest
import torch
import torch.nn.functional as F
from conftest import judged_session

from autograde.checks import lab01_layers
from autograde.checks.api import CheckFailed
from autograde.judging import judge, kernel_side, watch
from autograde.judging.judge import judged_checks
from autograde.judging.values import JudgeError, NotAnswered


class Liar(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


def test_which_cells_are_judged(monkeypatch):
    assert judged_checks("from autograde.checks.lab01_layers import check_pad2d\n"
                         "check_pad2d(pad2d)") == ["check_pad2d"]
    assert judged_checks("from autograde.checks.lab03_architectures import check_bottleneck\n"
                         "check_bottleneck(Bottleneck)") == ["check_bottleneck"]  # as a graph
    monkeypatch.setattr(lab01_layers.check_pad2d, "kernel_only", True, raising=False)
    assert judged_checks("from autograde.checks.lab01_layers import check_pad2d\n"
                         "check_pad2d(pad2d)") is None  # marked @kernel_only
    assert judged_checks("import os\nfrom autograde.checks.lab01_layers import check_pad2d\n"
                         "check_pad2d(pad2d)") is None
    assert judged_checks("assert x == 1") is None
    assert judged_checks("def (:") is None


# --- judging a cell against an in-process "kernel" ------------------------------------

session_for = judged_session


Q1 = ("from autograde.checks.lab01_layers import check_linear_forward\n"
      "check_linear_forward(linear_forward)")


def test_a_right_answer_passes_and_prints_reach_the_output():
    def linear_forward(x, w, b):
        print("called")
        return x @ w.T + b

    printed, error = judge.judge_cell(Q1 + "\nprint('done')", session_for(
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
    _, error = judge.judge_cell(Q1, session_for({"linear_forward": answer}))
    assert isinstance(error, CheckFailed) and message in str(error)


def test_not_implemented_and_missing_names():
    def linear_forward(x, w, b):
        raise NotImplementedError

    _, error = judge.judge_cell(Q1, session_for({"linear_forward": linear_forward}))
    assert isinstance(error, NotAnswered) and "still raises NotImplementedError" in str(error)
    _, error = judge.judge_cell(Q1, session_for({}))
    assert isinstance(error, NameError) and "linear_forward" in str(error)


def test_the_kernel_cannot_talk_the_judge_into_a_pass():
    """Whatever a tampered kernel answers is data; a forged 'pass' does not exist."""
    forged = judge.Session(lambda request: {"value": {"__t": "tuple", "v": []}})
    _, error = judge.judge_cell(Q1, forged)
    assert isinstance(error, CheckFailed) and "expected a function" in str(error)
    garbage = judge.Session(lambda request: {"value": {"__t": "pickle", "v": "x"}})
    _, error = judge.judge_cell(Q1, garbage)
    assert isinstance(error, JudgeError)


def test_notebook_names_shadow_builtins_as_they_would_in_the_kernel():
    src = ("from autograde.checks.lab01_layers import check_linear_forward\n"
           "check_linear_forward(pow)")
    _, error = judge.judge_cell(src, session_for({"pow": lambda x, w, b: x @ w.T + b}))
    assert error is None, error
    _, error = judge.judge_cell(src, session_for({}))  # the builtin pow: wrong answer
    assert isinstance(error, CheckFailed)


def test_watch_travels_with_the_call_and_reports_what_ran():
    """Q6 requires torch.einsum: the kernel records the calls, the judge reads them."""
    def conv2d_einsum(x, w, b=None, stride=1, padding=0):
        return F.conv2d(x, w, b, stride=stride, padding=padding)

    src = ("from autograde.checks.lab01_layers import check_conv2d_einsum\n"
           "check_conv2d_einsum(conv2d_einsum)")
    _, error = judge.judge_cell(src, session_for({"conv2d_einsum": conv2d_einsum}))
    assert isinstance(error, CheckFailed) and "conv2d" in str(error)
    assert not watch._WATCHES and not watch.is_judging()


def test_a_kernel_that_drops_the_watch_is_judged_by_what_it_ran(monkeypatch):
    """The kernel applies no watch at all and claims einsum ran (issue 19, 7c): the grader
    reads the refused convolution from the recorded operations and runs them itself."""
    class Claims:
        called = {"einsum"}

    @contextlib.contextmanager
    def no_watch(spec):
        yield Claims()
    monkeypatch.setattr(kernel_side, "from_spec", no_watch)

    def conv2d_einsum(x, w, stride=1, padding=0):
        return F.conv2d(x, w, stride=stride, padding=padding)
    src = ("from autograde.checks.lab01_layers import check_conv2d_einsum\n"
           "check_conv2d_einsum(conv2d_einsum)")
    _, error = judge.judge_cell(src, session_for({"conv2d_einsum": conv2d_einsum}))
    assert isinstance(error, CheckFailed) and "convolution" in str(error), error


def test_checks_still_run_in_the_kernel_for_students():
    """Outside the grader (JupyterLab), the same check runs in-process as before."""
    with pytest.raises(CheckFailed, match="calls torch's linear"):
        lab01_layers.check_linear_forward(lambda x, w, b: F.linear(x, w, b))


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

    src = ("from autograde.checks.lab03_architectures import check_vgg_stage\n"
           "check_vgg_stage(vgg_stage)")
    _, error = judge.judge_cell(src, session_for({"vgg_stage": vgg_stage}))
    assert error is None, error
    _, error = judge.judge_cell(src, session_for({"vgg_stage": Stage}))
    assert isinstance(error, CheckFailed) and "nn.Sequential" in str(error)


def test_the_numpy_watch_travels_with_the_call_too():
    """Lab 06 refuses NumPy's convolutions: judged, the kernel side applies that watch."""
    import numpy as np

    def conv2d_direct(x, w, b, stride, padding, dilation):
        np.correlate([1.0, 2.0], [1.0])
        return torch.zeros(1)

    src = ("from autograde.checks.lab06_loops import check_conv2d_direct\n"
           "check_conv2d_direct(conv2d_direct)")
    _, error = judge.judge_cell(src, session_for({"conv2d_direct": conv2d_direct}))
    assert isinstance(error, CheckFailed) and "numpy's correlate" in str(error)


def test_a_module_comes_back_as_the_call_left_it_even_when_the_call_raised():
    import torch.nn as nn

    def prune_then_fail(model):
        with torch.no_grad():
            model.weight.zero_()
        model.register_forward_hook(lambda *a: None)
        raise ValueError("student's own error")

    session = session_for({"prune_then_fail": prune_then_fail})
    remote = session.get("prune_then_fail")
    model = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="student's own error"):
        remote(model)
    assert not model.weight.any() and len(model._forward_hooks) == 1
