"""autograde.judging.traces: one call of a tensor function recorded in the kernel and
replayed in the grader, from allow-listed operations, with sizes checked before use."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from autograde.judging import traces
from autograde.judging.values import JudgeError
from autograde.judging.wire import decode, encode


def round_trip(fn, *args, **kwargs) -> traces.TracedFunction:
    """Described as in the kernel, sent as JSON, rebuilt as in the grader."""
    desc = traces.describe(fn, args, kwargs)
    return traces.rebuild(decode(json.loads(json.dumps(encode(desc)))))


def conv_einsum(x, w, stride=1, padding=0):
    win = F.pad(x, (padding,) * 4).unfold(2, w.shape[2], stride).unfold(3, w.shape[3], stride)
    return torch.einsum("ncpqrs,mcrs->nmpq", win, w)  # (N, M, P, Q)


def test_a_replayed_call_computes_the_function_on_new_inputs():
    x, w = torch.randn(2, 3, 9, 9), torch.randn(4, 3, 3, 3)
    graph = round_trip(conv_einsum, x, w, stride=2, padding=1)
    assert {"constant_pad_nd", "unfold", "bmm"} <= graph.op_names()
    assert "convolution" not in graph.op_names()
    x2, w2 = torch.randn(2, 3, 9, 9), torch.randn(4, 3, 3, 3)
    torch.testing.assert_close(graph(x2, w2), F.conv2d(x2, w2, stride=2, padding=1),
                               atol=1e-4, rtol=1e-4)


def test_in_place_writes_and_several_results_replay_in_order():
    def fn(x):
        out = torch.zeros(x.shape[0], 3)
        out[:, 0] = x.max(dim=1).values  # a tuple result, then a write into a view
        out[:, 1:].add_(x.split(2, dim=1)[1].sum(1, keepdim=True))
        return out
    x = torch.randn(4, 5)
    graph = round_trip(fn, x)
    x2 = torch.randn(4, 5)
    torch.testing.assert_close(graph(x2), fn(x2))


def test_a_tensor_made_outside_the_record_is_a_constant():
    frozen = round_trip(lambda x: torch.from_numpy(np.tanh(x.numpy())), torch.randn(3))
    x2 = torch.randn(3)
    assert not torch.allclose(frozen(x2), torch.tanh(x2))  # still the first input's answer
    kinds = [n[2] for n in traces.describe(lambda x: x + torch.ones(2).as_subclass(torch.Tensor),
                                           (torch.randn(2),), {})["nodes"] if n[0] == "input"]
    assert kinds == ["USER_INPUT", "CONSTANT_TENSOR"]


def test_constants_are_bounded_the_result_among_them():
    big = torch.zeros(traces.MAX_CONSTANTS + 1)
    with pytest.raises(ValueError, match="more constant data"):
        traces.describe(lambda x: big, (torch.randn(2),), {})


def test_a_loop_over_single_elements_is_stopped_in_the_kernel():
    def elementwise(x):
        return torch.stack([v * 2 for v in x.flatten()])
    with pytest.raises(RuntimeError, match="more than 10,000 torch operations"):
        traces.describe(elementwise, (torch.randn(6000),), {})


def test_a_result_that_is_not_a_tensor_is_named():
    with pytest.raises(traces.NotATensor, match="should be a torch.Tensor, got list"):
        traces.describe(lambda x: [x], (torch.randn(2),), {})


def test_an_operation_outside_the_allow_list_is_refused():
    desc = traces.describe(lambda x: x + 1, (torch.randn(2),), {})
    desc["nodes"][1][2] = "aten.from_file.default"  # would read a file of the grader's
    with pytest.raises(JudgeError, match=r"from_file\.default, which the grader does not run"):
        traces.rebuild(desc)


def test_a_huge_allocation_is_refused_before_it_is_made():
    desc = traces.describe(lambda x: x + torch.zeros(2), (torch.randn(2),), {})
    zeros = next(n for n in desc["nodes"] if n[0] == "call" and "zeros" in n[2])
    zeros[3] = {"t": [{"l": [2**20, 2**20]}]}  # 4 TB of float32
    graph = traces.rebuild(desc)
    with pytest.raises(JudgeError, match="makes a tensor of 1,099,511,627,776 elements"):
        graph(torch.randn(2))
