"""autograde.judging.graphs: a student's own module travels as its exported graph and its
tensors; the grader runs what it rebuilt, and refuses anything it does not know."""

import copy
import json

import pytest
import torch
import torch.nn as nn

from autograde.judging import graphs, wire
from autograde.judging.values import JudgeError
from efflib import models
from efflib.profiler import profile


def _travelled(module: nn.Module, x: torch.Tensor) -> graphs.GraphModel:
    """Described, sent as JSON as the kernel would, rebuilt."""
    message = json.dumps(wire.encode(graphs.describe(module, (x,))))
    return graphs.rebuild(wire.decode(json.loads(message)))


@pytest.mark.parametrize("make", [lambda: models.Bottleneck(64, 16, 2),
                                  lambda: models.InvertedResidual(16, 16, 1, 6),
                                  lambda: models.InvertedResidual(16, 24, 2, 1)])
def test_a_block_computes_the_same_in_the_grader(make):
    torch.manual_seed(0)
    block = make().eval()
    x = torch.randn(2, block_in(block), 8, 8)
    graph = _travelled(copy.deepcopy(block), x)
    with torch.no_grad():
        assert torch.allclose(graph(x), block(x), atol=1e-6)
    assert sum(p.numel() for p in graph.parameters()) == sum(
        p.numel() for p in block.parameters())
    assert profile(graph, x).macs == profile(block, x).macs
    assert any(c.endswith(type(block).__name__) for c in graph.classes)


def block_in(block: nn.Module) -> int:
    return next(m for m in block.modules() if isinstance(m, nn.Conv2d)).in_channels


def test_zeroing_the_conv_weights_zeroes_the_graphs():
    block = models.InvertedResidual(8, 8, 1, 2).eval()
    x = torch.randn(2, 8, 4, 4)
    graph = _travelled(block, x)
    with torch.no_grad():
        for t in graph.conv_weights():
            t.zero_()
        assert torch.allclose(graph(x), x)  # only the skip is left
    assert len(graph.conv_weights()) == 3


def test_what_the_student_wrote_on_the_instance_counts_for_nothing():
    class Liar(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 300, 3)

        def forward(self, x):
            return self.conv(x)

        def parameters(self, recurse=True):
            return iter([])
    graph = _travelled(Liar(), torch.randn(1, 3, 5, 5))
    assert sum(p.numel() for p in graph.parameters()) == 300 * 27 + 300


def _description():
    return graphs.describe(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()).eval(),
                           (torch.randn(1, 1, 4, 4),))


@pytest.mark.parametrize("spoil, match", [
    (lambda d: d["nodes"][-2].__setitem__(2, "aten.empty.memory_format"), "does not run"),
    (lambda d: d["nodes"][-2].__setitem__(2, "os.system"), "does not run"),
    (lambda d: d["nodes"][-2].__setitem__(3, {"t": [{"n": "nowhere"}]}), "before it exists"),
    (lambda d: d["state"].clear(), "is missing"),
    (lambda d: d["nodes"].pop(), "no output"),
    (lambda d: d["nodes"].insert(0, list(d["nodes"][0])), "repeated"),
    (lambda d: d["nodes"][-2].__setitem__(3, {"t": [{"eval": "1"}]}), "malformed"),
    (lambda d: d.__setitem__("nodes", [["call"]] * (graphs.MAX_NODES + 1)), "at most"),
    (lambda d: d.__setitem__("extra", 1), "not a module description"),
])
def test_a_malformed_description_is_refused(spoil, match):
    desc = _description()
    spoil(desc)
    with pytest.raises(JudgeError, match=match):
        graphs.rebuild(desc)
