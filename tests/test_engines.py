"""efflib.engines against ONNX Runtime's own behaviour and the operating system's counts."""

import logging
import sys
import warnings

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn

from efflib import engines
from efflib.latency import measure_in_turns


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Flatten(), nn.Linear(4 * 8 * 8, 10)).eval()


@pytest.fixture(scope="module")
def exported() -> bytes:
    with engines.quiet():
        return torch.onnx.export(small_cnn(), (torch.randn(1, 1, 8, 8),), dynamo=True,
                                 dynamic_shapes={"input": {0: torch.export.Dim("batch")}}
                                 ).model_proto.SerializeToString()


class Heard(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_quiet_silences_prints_warnings_and_logs_and_restores_them(capsys, recwarn):
    heard = Heard()
    logger = logging.getLogger("efflab.test.quiet")
    logger.addHandler(heard)
    try:
        with engines.quiet():
            print("progress line")
            print("to stderr", file=sys.stderr)
            warnings.warn("noise", stacklevel=1)
            logger.warning("a log line")
        out, err = capsys.readouterr()
        assert out == err == "" and not heard.messages and not recwarn.list
        logger.warning("heard again")
        assert heard.messages == ["heard again"]
    finally:
        logger.removeHandler(heard)


def test_the_engine_runs_the_export_like_torch(exported):
    x = torch.randn(5, 1, 8, 8)
    for level in engines.LEVELS:
        got = engines.run(engines.session(exported, level), x)
        torch.testing.assert_close(got, small_cnn()(x).detach(), atol=1e-5, rtol=1e-5)
    engine = engines.Engine(exported)
    assert engine(x).shape == (5, 10)
    timed = measure_in_turns({"engine": (engine, x[:1]), "torch": (small_cnn(), x[:1])},
                             warmup=2, repeats=5)
    assert all(t.median > 0 and t.repeats == 5 for t in timed.values())


def test_each_level_rewrites_the_graph_as_documented(exported):
    """The exporter folded the BatchNorm; extended fuses Conv+Relu; the saved graph loads."""
    counts = {level: engines.op_counts(engines.optimised(exported, level))
              for level in engines.LEVELS}
    assert counts["disable"]["BatchNormalization"] == 0 and counts["disable"]["Relu"] == 1
    assert counts["extended"]["FusedConv"] == 1 and counts["extended"]["Relu"] == 0
    assert onnx.load_from_string(engines.optimised(exported, "basic")).graph.node


def test_bad_inputs_are_named(exported):
    with pytest.raises(ValueError, match="level must be one of"):
        engines.session(exported, "fastest")
    with pytest.raises(ValueError, match="cannot load this model"):
        engines.session(b"not onnx")
    with pytest.raises(TypeError, match="ONNX model's bytes"):
        engines.session("model.onnx")
    with pytest.raises(ValueError, match="takes 1 inputs"):
        engines.run(engines.session(exported), torch.zeros(1, 1, 8, 8), torch.zeros(1))
    with pytest.raises(ValueError, match="not an installed package"):
        engines.library_bytes("no_such_package_here")
    with pytest.raises(ValueError, match="absolute path"):
        engines.cold_start(["python3", "-c", "pass"])


def test_library_bytes_counts_shared_libraries_only():
    size = engines.library_bytes("onnxruntime")
    assert 5e6 < size < 5e8
    assert engines.library_bytes("efflib") == 0  # pure Python: no native runtime


def test_cold_start_measures_the_child_not_the_parent():
    """A child forked by this (large) process would report this process's peak memory as
    its own; the launcher's children do not."""
    hog = torch.ones(100_000_000, dtype=torch.uint8)  # this process now holds 100 MB more
    small = engines.cold_start(["/bin/true"])
    assert small.peak_bytes < 20 * 2**20 and 0 < small.seconds < 5
    big = engines.cold_start(engines.python_argv(
        "import sys; b = bytearray(200_000_000); b[::4096] = b'x' * len(b[::4096]); "
        "print('done')"))
    assert big.peak_bytes > 200_000_000 and big.stdout == "done\n"
    with pytest.raises(RuntimeError, match="exited with 3: why"):
        engines.cold_start(engines.python_argv("import sys; print('why', file=sys.stderr); "
                                               "sys.exit(3)"))
    del hog


def test_qdq_conv_is_fused_and_matches_its_float_meaning():
    """The graph the engine runs as integers computes the dequantized convolution, within
    one step of the output grid."""
    g = torch.Generator().manual_seed(0)
    q_w = torch.randint(-127, 128, (4, 2, 3, 3), generator=g)
    w_scale, q_b = torch.full((4,), 0.01), torch.randint(-500, 500, (4,), generator=g)
    model = engines.qdq_conv(q_w, w_scale, q_b, 0.02, 128, 0.5, 10, padding=1, relu=True)
    ops = engines.op_counts(engines.optimised(model, "extended"))
    assert ops["QLinearConv"] == 1 or ops["QuantizeLinear"] < 2
    q_x = torch.randint(0, 256, (2, 2, 5, 5), generator=g).to(torch.uint8)
    got = engines.run(engines.session(model), q_x).to(torch.int64)
    x = (q_x.double() - 128) * 0.02
    y = torch.nn.functional.conv2d(x, q_w.double() * 0.01, q_b.double() * 0.02 * 0.01,
                                   padding=1).relu()
    want = (y / 0.5).round() + 10
    assert got.shape == (2, 4, 5, 5) and (got - want.clamp(0, 255)).abs().max() <= 1
    assert got.dtype == torch.int64 and np.isin(got.unique().numpy(), np.arange(10, 256)).all()
