"""The Lab 08 checks accept the solution and reject wrong, lazy and hostile answers."""

import copy
import random

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
from lazy import LAB08, LAB08_BORROWED, defined, quantize_static_with
from onnx import numpy_helper

from autograde.checks import lab08_porting as C
from autograde.checks.api import CheckFailed, NotAnswered
from efflib import engines, profile
from efflib.graded import GradedAnswerError
from efflib.quant import integer


@pytest.fixture(autouse=True)
def quantized_engine_kept():
    """Two answers below pick PyTorch's fbgemm int8 engine; the tests after them get back
    the one they had."""
    engine = torch.backends.quantized.engine
    yield
    torch.backends.quantized.engine = engine


@pytest.mark.parametrize("hidden", [False, True])
def test_solution_passes_every_check(solution, hidden):
    C.check_node_costs(solution.node_costs, None, hidden)
    C.check_fold_batchnorm(solution.fold_batchnorm, hidden)
    C.check_quantize(solution.quantize_onnx, hidden)
    C.check_engine_conv(solution.engine_conv, hidden)


def test_solution_answers(solution):
    C.check_export(solution.digit_onnx, solution.cnn)
    C.check_node_costs(solution.node_costs, solution.digit_onnx)
    C.check_int8_model(solution.int8_onnx, solution.digit_onnx)
    s = solution.branchy
    C.check_exit_export(solution.exit_onnx, s.block1, s.exit1, s.block2, s.head,
                        solution.THRESHOLD)
    C.check_deployment(solution.deployment, solution.digit_onnx, solution.int8_onnx,
                       solution.cnn)


def exported(model, x, **kwargs):
    with engines.quiet():
        return torch.onnx.export(model.eval(), (x,), dynamo=True, **kwargs
                                 ).model_proto.SerializeToString()


@pytest.mark.parametrize("groups", [1, 4])
def test_graph_costs_agree_with_efflib_profile(groups):
    """The reference read off the graph counts what efflib's profiler counts in PyTorch, for
    a strided, padded, grouped (depthwise at 4) convolution network and its classifier."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1, bias=True), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=groups * 2),
                          nn.ReLU(), nn.Flatten(), nn.Linear(8 * 5 * 5, 10))
    x = torch.randn(1, 4, 9, 9)
    data = exported(model, x)
    costs = C.reference_node_costs(data)
    prof = profile(model, x)
    layers = {n.name for n in onnx.load_from_string(data).graph.node
              if n.op_type in ("Conv", "Gemm")}
    graph_macs = sum(macs for _, macs in costs.values())
    graph_params = sum(costs[name][0] for name in layers)  # not the Reshape's shape
    assert prof.macs > 0 and graph_macs == prof.macs
    assert graph_params == prof.params


def test_random_graphs_cover_what_the_question_names():
    r = random.Random(0)
    seen, batches = set(), set()
    for _ in range(30):
        proto = C.random_graph(r, r.choice([1, "N"]))
        for node in proto.graph.node:
            seen.add(node.op_type)
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            if node.op_type == "Conv" and group > 1:
                seen.add("depthwise")
            if node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in
                                               node.attribute):
                seen.add("transB")
        batches.add(proto.graph.input[0].type.tensor_type.shape.dim[0].HasField("dim_param"))
        engines.session(proto)  # every case runs in the engine
    assert {"Conv", "depthwise", "BatchNormalization", "HardSwish", "Relu", "Add", "Gemm",
            "transB", "MatMul"} <= seen
    assert batches == {True, False}


NODE_COST_MISTAKES = {
    "group ignored": LAB08["q1_node_costs"],
    "Gemm and MatMul only": '''
_right = node_costs
def node_costs(model):
    ops = {n.name: n.op_type for n in onnx.load_from_string(model).graph.node}
    return {k: (p, 0 if ops[k] == "Conv" else m) for k, (p, m) in _right(model).items()}
''',
    "weights without their bias": '''
_right = node_costs
def node_costs(model):
    proto = onnx.load_from_string(model)
    sizes = {i.name: int(np.prod(i.dims)) for i in proto.graph.initializer}
    return {n.name: (sizes.get(n.input[1], 0) if len(n.input) > 1 else 0,
                     _right(model)[n.name][1]) for n in proto.graph.node}
''',
    "MACs per input pixel": '''
_right = node_costs
def node_costs(model):  # the input's pixels, not the output's: stride and padding ignored
    proto = onnx.load_from_string(model)
    out = {}
    for (name, (p, m)), node in zip(_right(model).items(), proto.graph.node):
        out[name] = (p, m)
        if node.op_type == "Conv":
            shape = [d.dim_value or 1 for d in
                     proto.graph.input[0].type.tensor_type.shape.dim]
            out[name] = (p, m + (1 if shape[2] % 2 else 0))
    return out
''',
}


@pytest.mark.parametrize("mistake", sorted(NODE_COST_MISTAKES))
def test_node_cost_mistakes_fail(solution, mistake):
    fn = defined(solution, NODE_COST_MISTAKES[mistake], "node_costs")
    with pytest.raises(CheckFailed):
        C.check_node_costs(fn, None, hidden=True)


def test_node_costs_keyed_by_something_else_fail(solution):
    def by_type(model):
        return {f"{k}!": v for k, v in solution.node_costs(model).items()}
    with pytest.raises(CheckFailed, match="keyed by node.name"):
        C.check_node_costs(by_type)


def test_export_mistakes_fail(solution):
    with pytest.raises(CheckFailed, match="dynamic batch"):
        C.check_export(exported(solution.cnn, solution.x1), solution.cnn)
    untrained = copy.deepcopy(solution.cnn)
    for p in untrained.parameters():
        nn.init.normal_(p)
    with pytest.raises(CheckFailed):  # another network than the one named cnn
        C.check_export(exported(untrained, solution.x1, dynamic_shapes={
            "x": {0: torch.export.Dim("batch")}}), solution.cnn)
    with pytest.raises(CheckFailed, match="bytes of an ONNX model"):
        C.check_export(onnx.load_from_string(solution.digit_onnx), solution.cnn)
    with pytest.raises(CheckFailed, match="not a valid ONNX model"):
        C.check_export(b"\x00garbage", solution.cnn)
    with pytest.raises(NotAnswered):
        C.check_export(None, solution.cnn)


FOLD_MISTAKES = {
    "cut out, not folded": LAB08["q2_fold_batchnorm"],
    "returned unchanged": "def fold_batchnorm(model):\n    return model\n",
    "decomposed into Mul and Add, not folded": LAB08_BORROWED["q2_fold_batchnorm"],
    "epsilon left out": '''
_right = fold_batchnorm
def fold_batchnorm(model):
    proto = onnx.load_from_string(model)
    for node in proto.graph.node:
        if node.op_type == "BatchNormalization":
            for a in node.attribute:
                if a.name == "epsilon":
                    a.f = 0.0
    return _right(proto.SerializeToString())
''',
    "folded where the conv's output is used twice": '''
_right = fold_batchnorm
def fold_batchnorm(model):  # the graph's outputs are not looked at
    proto = onnx.load_from_string(model)
    keep = list(proto.graph.output)
    names = {o.name for o in keep}
    del proto.graph.output[:]
    proto.graph.output.extend([o for o in keep if o.name.startswith("relu")])
    folded = onnx.load_from_string(_right(proto.SerializeToString()))
    del folded.graph.output[:]
    folded.graph.output.extend(keep)
    return folded.SerializeToString()
''',
    "efflib's fold, on layers": '''
_right = fold_batchnorm
def fold_batchnorm(model):
    conv, bn = nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1).eval()
    integer.fold_bn(conv, bn)  # "the same arithmetic": efflib's Lab 05 answer
    return _right(model)
''',
    "the engine's fold": '''
def fold_batchnorm(model):
    return engines.optimised(model, "basic")
''',
}


def test_a_decomposed_batchnorm_fails_only_on_its_node_count(solution, monkeypatch):
    """Mul and Add in place of each BatchNormalization keep the outputs and remove every
    BatchNormalization; what gives them away is that nothing was folded."""
    fn = defined(solution, FOLD_MISTAKES["decomposed into Mul and Add, not folded"],
                 "fold_batchnorm")
    with pytest.raises(CheckFailed, match="adds no node"):
        C.check_fold_batchnorm(fn, hidden=True)


@pytest.mark.parametrize("mistake", sorted(FOLD_MISTAKES))
def test_fold_mistakes_fail(solution, mistake):
    fn = defined(solution, FOLD_MISTAKES[mistake], "fold_batchnorm")
    with pytest.raises((CheckFailed, GradedAnswerError)):
        C.check_fold_batchnorm(fn, hidden=True)


def test_the_engine_is_refused_by_name(solution):
    fn = defined(solution, FOLD_MISTAKES["the engine's fold"], "fold_batchnorm")
    with pytest.raises(CheckFailed, match="onnxruntime"):
        C.check_fold_batchnorm(fn)


def test_conv_bn_cases_hold_each_kind():
    r = random.Random(1)
    cases = [C.conv_bn_graph(r) for _ in range(12)]
    assert all(0 < foldable < engines.op_counts(p)["BatchNormalization"]
               for p, foldable in cases)  # a shared conv in each: one is never foldable
    assert any(engines.op_counts(p)["BatchNormalization"] == 4 for p, _ in cases)
    assert any(len(n.input) == 2 for p, _ in cases for n in p.graph.node
               if n.op_type == "Conv")


QUANTIZE_MISTAKES = {
    "per tensor": LAB08["q3_quantize"],
    "QOperator format": quantize_static_with(
        '"quant_format": quantization.QuantFormat.QOperator', "the operator format"),
    "calibrated on its own images": '''
_right = quantize_onnx
def quantize_onnx(model, images, method):  # the lab's calibration set, whatever is given
    return _right(model, calibration[:len(images)], method)
''',
    "MinMax whatever the method": '''
_right = quantize_onnx
def quantize_onnx(model, images, method):
    return _right(model, images, "MinMax")
''',
}


@pytest.mark.parametrize("mistake", sorted(QUANTIZE_MISTAKES))
def test_quantize_mistakes_fail(solution, mistake):
    fn = defined(solution, QUANTIZE_MISTAKES[mistake], "quantize_onnx")
    with pytest.raises(CheckFailed):
        C.check_quantize(fn, hidden=True)


def test_int8_model_calibrated_on_the_test_images_fails(solution):
    on_test = solution.quantize_onnx(solution.digit_onnx, solution.test_x[:256], "MinMax")
    with pytest.raises(CheckFailed, match="never the test images"):
        C.check_int8_model(on_test, solution.digit_onnx)
    with pytest.raises(CheckFailed):  # a float model handed in as the int8 one
        C.check_int8_model(solution.digit_onnx, solution.digit_onnx)


ENGINE_CONV_MISTAKES = {
    "halves rounded up": LAB08["q4_engine_conv"],
    "efflib's fixed point": '''
def engine_conv(q_x, x_scale, x_zero, q_w, w_scale, q_b, y_scale, y_zero, padding, relu):
    acc = torch.nn.functional.conv2d(q_x.double() - x_zero, q_w.double(), padding=padding)
    acc = acc.round().long() + q_b.long().reshape(1, -1, 1, 1)
    pairs = [integer.quantize_multiplier(x_scale * float(s) / y_scale) for s in w_scale]
    m0 = torch.tensor([p[0] for p in pairs]).reshape(1, -1, 1, 1)
    shift = torch.tensor([p[1] for p in pairs]).reshape(1, -1, 1, 1)
    return integer.requantize(acc, m0, shift, y_zero, y_zero if relu else 0, 255)
''',
    "no saturation": '''
_right = engine_conv
def engine_conv(q_x, x_scale, x_zero, q_w, w_scale, q_b, y_scale, y_zero, padding, relu):
    acc = torch.nn.functional.conv2d(q_x.double() - x_zero, q_w.double(), padding=padding)
    acc = acc.round().long() + q_b.long().reshape(1, -1, 1, 1)
    m = (torch.tensor(x_scale, dtype=torch.float32) * w_scale.float()
         / torch.tensor(y_scale, dtype=torch.float32)).reshape(1, -1, 1, 1)
    y = torch.round(acc.float() * m).long() + y_zero
    return y.clamp(min=y_zero) if relu else y
''',
    "ReLU ignored": '''
_right = engine_conv
def engine_conv(q_x, x_scale, x_zero, q_w, w_scale, q_b, y_scale, y_zero, padding, relu):
    return _right(q_x, x_scale, x_zero, q_w, w_scale, q_b, y_scale, y_zero, padding, False)
''',
    "bias left out": '''
_right = engine_conv
def engine_conv(q_x, x_scale, x_zero, q_w, w_scale, q_b, y_scale, y_zero, padding, relu):
    return _right(q_x, x_scale, x_zero, q_w, w_scale, q_b * 0, y_scale, y_zero, padding, relu)
''',
    "the engine's own bindings": '''
from onnxruntime.capi import onnxruntime_pybind11_state as _raw


def engine_conv(q_x, x_scale, x_zero, q_w, w_scale, q_b, y_scale, y_zero, padding, relu):
    model = engines.qdq_conv(q_w, w_scale, q_b, x_scale, x_zero, y_scale, y_zero, padding, relu)
    s = _raw.InferenceSession(_raw.SessionOptions(), model, False, False)
    s.initialize_session(["CPUExecutionProvider"], [{}], set())
    y = s.run(["y"], {"x": q_x.numpy()}, _raw.RunOptions())[0]
    return torch.from_numpy(np.asarray(y)).long()
''',
    "the engine, in a thread": '''
import threading


def engine_conv(q_x, x_scale, x_zero, q_w, w_scale, q_b, y_scale, y_zero, padding, relu):
    out = {}

    def work():
        model = engines.qdq_conv(q_w, w_scale, q_b, x_scale, x_zero, y_scale, y_zero,
                                 padding, relu)
        out["y"] = engines.run(engines.session(model), q_x).long()
    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    return out["y"]
''',
    "PyTorch's int8 convolution": '''
import torch.ao.nn.quantized.functional as _qF

def engine_conv(q_x, x_scale, x_zero, q_w, w_scale, q_b, y_scale, y_zero, padding, relu):
    torch.backends.quantized.engine = "fbgemm"  # PyTorch's int8 kernel rescales as ORT does
    x = torch._make_per_tensor_quantized_tensor(q_x, x_scale, x_zero)
    w = torch._make_per_channel_quantized_tensor(
        q_w, w_scale.double(), torch.zeros(len(w_scale), dtype=torch.long), 0)
    bias = (q_b.double() * x_scale * w_scale.double()).float()
    y = _qF.conv2d(x, w, bias, padding=padding, scale=y_scale, zero_point=y_zero)
    y = y.int_repr().long()
    return y.clamp(min=y_zero) if relu else y
''',
    "the engine, in a pool started before the check": LAB08_BORROWED["q4_engine_conv"],
    "PyTorch's int8 operators, called by name": '''
def engine_conv(q_x, x_scale, x_zero, q_w, w_scale, q_b, y_scale, y_zero, padding, relu):
    torch.backends.quantized.engine = "fbgemm"  # rescales as the engine does
    x = torch.quantize_per_tensor((q_x.float() - x_zero) * x_scale, x_scale, x_zero,
                                  torch.quint8)
    w = torch.quantize_per_channel(q_w.float() * w_scale[:, None, None, None],
                                   w_scale.double(), torch.zeros(len(w_scale),
                                                                 dtype=torch.long),
                                   0, torch.qint8)
    bias = (q_b.double() * x_scale * w_scale.double()).float()
    packed = torch.ops.quantized.conv2d_prepack(w, bias, [1, 1], [padding] * 2, [1, 1], 1)
    y = torch.ops.quantized.conv2d(x, packed, y_scale, y_zero).int_repr().long()
    return y.clamp(min=y_zero) if relu else y
''',
    "oneDNN's int8 convolution, on plain tensors": '''
def engine_conv(q_x, x_scale, x_zero, q_w, w_scale, q_b, y_scale, y_zero, padding, relu):
    packed = torch.ops.onednn.qconv_prepack(q_w, w_scale.float(), x_scale, x_zero, [1, 1],
                                            [padding] * 2, [1, 1], 1, list(q_x.shape))
    bias = (q_b.double() * x_scale * w_scale.double()).float()
    y = torch.ops.onednn.qconv2d_pointwise(
        q_x, x_scale, x_zero, packed, w_scale.float(),
        torch.zeros(len(w_scale), dtype=torch.int32), bias, [1, 1], [padding] * 2, [1, 1],
        1, y_scale, y_zero, None, "relu" if relu else "none", [], "")
    return y.long()
''',
    "the engine itself": '''
def engine_conv(q_x, x_scale, x_zero, q_w, w_scale, q_b, y_scale, y_zero, padding, relu):
    model = engines.qdq_conv(q_w, w_scale, q_b, x_scale, x_zero, y_scale, y_zero, padding, relu)
    return engines.run(engines.session(model), q_x)
''',
}


@pytest.mark.parametrize("mistake", sorted(ENGINE_CONV_MISTAKES))
def test_engine_conv_mistakes_fail(solution, mistake):
    fn = defined(solution, ENGINE_CONV_MISTAKES[mistake], "engine_conv")
    try:
        with pytest.raises(CheckFailed):
            C.check_engine_conv(fn, hidden=True)
    finally:
        if "_pool" in fn.__globals__:  # the answer's own thread pool, for the tests after
            fn.__globals__["_pool"].shutdown()


PYTORCH_INT8 = ["PyTorch's int8 convolution", "PyTorch's int8 operators, called by name"]


@pytest.mark.parametrize("mistake", PYTORCH_INT8)
def test_pytorch_int8_kernels_are_refused_in_engine_conv(solution, mistake, monkeypatch):
    """PyTorch's fbgemm kernels give the engine's integers exactly, so they fail Q4 by the
    refusal alone: with it switched off, the same answer passes."""
    fn = defined(solution, ENGINE_CONV_MISTAKES[mistake], "engine_conv")
    with pytest.raises(CheckFailed, match="int8 kernel"):
        C.check_engine_conv(fn, hidden=True)
    monkeypatch.setattr(C, "INT8_KERNELS", ())
    monkeypatch.setattr(C, "INT8_PACKAGES", ())
    C.check_engine_conv(fn, hidden=True)


def test_onednn_int8_kernels_are_refused_in_engine_conv(solution):
    """oneDNN's int8 convolution takes plain uint8 and int8 tensors (no quantized tensor to
    refuse) and comes within one of the engine's integers: refused by name."""
    fn = defined(solution, ENGINE_CONV_MISTAKES["oneDNN's int8 convolution, on plain tensors"],
                 "engine_conv")
    with pytest.raises(CheckFailed, match="int8 kernel"):
        C.check_engine_conv(fn, hidden=True)


def test_the_tie_cases_hold_halves():
    """Half of the cases make the engine round halves: a rounding that is not to even
    fails them (the 'halves rounded up' mistake above fails on these)."""
    r = random.Random(3)
    halves = 0
    for _ in range(6):
        case = C._qconv_case(r, ties=True)
        acc = torch.nn.functional.conv2d(case["q_x"].double() - case["x_zero"],
                                         case["q_w"].double(), padding=case["padding"])
        acc = acc + case["q_b"].double().reshape(1, -1, 1, 1)
        m = (case["x_scale"] * case["w_scale"].double() / case["y_scale"]).reshape(1, -1, 1, 1)
        halves += int(((acc * m) % 1 == 0.5).sum())
    assert halves > 10


EXIT_MISTAKES = {
    "the full network": "branchy",
    "the exit alone": "exit_only",
}


@pytest.mark.parametrize("mistake", sorted(EXIT_MISTAKES))
def test_exit_export_mistakes_fail(solution, mistake):
    s = solution.branchy
    model = s if mistake == "the full network" else nn.Sequential(s.block1, s.exit1)
    data = exported(model, solution.x1, input_names=["image"],
                    dynamic_shapes={"x" if mistake == "the full network" else "input": {
                        0: torch.export.Dim("batch")}})
    with pytest.raises(CheckFailed, match="exit1's where"):
        C.check_exit_export(data, s.block1, s.exit1, s.block2, s.head, solution.THRESHOLD)


def test_exit_export_needs_the_parts_as_layers(solution):
    s = solution.branchy
    with pytest.raises(CheckFailed, match="block1"):
        C.check_exit_export(solution.exit_onnx, "block1", s.exit1, s.block2, s.head)


DEPLOYMENT_MISTAKES = [  # (row, column, value or a function of the measured value), match
    (("ORT int8", "disk_bytes", 1000), "size of the model file"),
    (("torch fp32", "runtime_bytes", 1e6), "shared libraries"),
    (("torch int8", "runtime_bytes", 1e6), "shared libraries"),
    (("C int8", "runtime_bytes", 5e7), "compiled binary"),
    (("ORT fp32", "startup_s", 0), "measure it"),
    (("ORT fp32", "peak_mb", float("nan")), "measure it"),
    (("torch fp32", "accuracy", lambda v: v - 0.01), "accuracy"),
    (("torch int8", "accuracy", lambda v: v + 0.01), "accuracy"),
    (("C int8", "accuracy", lambda v: v - 0.01), "accuracy"),
    (("torch int8", "disk_bytes", lambda v: v * 4), "int8 file is the smaller"),
    (("torch fp32", "disk_bytes", 10_000), "hold the weights"),
    (("torch fp32", "startup_s", lambda v: v * 1000), "seconds"),
    (("ORT int8", "latency_ms_1", lambda v: v / 1000), "milliseconds"),
    (("ORT fp32", "latency_ms_64", lambda v: v / 1000), "milliseconds"),
    (("torch int8", "peak_mb", lambda v: v * 2**20), "megabytes"),
    (("C int8", "peak_mb", 100), "peak memory"),
    (("ORT int8", "peak_mb", 1000), "peak memory"),
    (("C int8", "latency_ms_1", lambda v: v * 2), "64th"),
]


@pytest.mark.parametrize("change, match", DEPLOYMENT_MISTAKES,
                         ids=[f"{r} {c}" for (r, c, _), _ in DEPLOYMENT_MISTAKES])
def test_deployment_mistakes_fail(solution, change, match):
    row, col, value = change
    table = copy.deepcopy(solution.deployment)
    table[row][col] = value(table[row][col]) if callable(value) else value
    with pytest.raises(CheckFailed, match=match):
        C.check_deployment(table, solution.digit_onnx, solution.int8_onnx, solution.cnn)


def test_deployment_typed_in_or_incomplete_fails(solution):
    """The lazy corpus's table (accuracies typed in), one with a row left out, and one whose
    timing and memory columns are the same number everywhere."""
    args = solution.digit_onnx, solution.int8_onnx, solution.cnn
    lazy = defined(solution, LAB08["q6_deployment"], "deployment")
    with pytest.raises(CheckFailed, match="accuracy"):
        C.check_deployment(lazy, *args)
    with pytest.raises(CheckFailed, match="rows"):
        C.check_deployment({k: v for k, v in solution.deployment.items() if k != "C int8"},
                           *args)
    same = copy.deepcopy(solution.deployment)
    for row in same.values():
        row.update(startup_s=1.0, latency_ms_1=1.0, latency_ms_64=2.0, peak_mb=100.0)
    with pytest.raises(CheckFailed):
        C.check_deployment(same, *args)
    with pytest.raises(CheckFailed, match="cnn"):
        C.check_deployment(solution.deployment, *args[:2], "cnn")


def test_deployment_accuracies_are_the_graders_own(solution):
    """The rows the grader rebuilds from cnn agree with what the solution measured, the C
    program's with efflib's integer model (bit-exact, as Lab 06 showed)."""
    rebuilt = C._deployed_accuracies(solution.cnn)
    for row, accuracy in rebuilt.items():
        assert solution.deployment[row]["accuracy"] == pytest.approx(accuracy, abs=1e-6), row


def test_fold_keeps_a_bn_whose_parameters_are_not_stored(solution):
    """A BatchNormalization fed by computed tensors is left alone, not crashed on."""
    proto, _ = C.conv_bn_graph(random.Random(5))
    bn = next(n for n in proto.graph.node if n.op_type == "BatchNormalization")
    scale = next(i for i in proto.graph.initializer if i.name == bn.input[1])
    values = numpy_helper.to_array(scale)
    proto.graph.node.insert(0, onnx.helper.make_node(
        "Constant", [], ["computed_scale"], value=numpy_helper.from_array(values)))
    bn.input[1] = "computed_scale"
    folded = onnx.load_from_string(solution.fold_batchnorm(proto.SerializeToString()))
    assert any(n.op_type == "BatchNormalization" and n.input[1] == "computed_scale"
               for n in folded.graph.node)
    assert np.isfinite(values).all()


def test_integer_model_layer_builds_a_valid_engine_graph(solution):
    kind, layer = integer.convert(solution.cnn, solution.calibration).steps[0]
    assert kind == "quant"
    model = engines.qdq_conv(layer.weight, layer.w_scale, layer.bias, layer.x.scale,
                             layer.x.zero_point, layer.y.scale, layer.y.zero_point, 1, True)
    ops = engines.op_counts(engines.optimised(model, "extended"))
    assert ops["QuantizeLinear"] + ops["DequantizeLinear"] < 4  # the engine fused the pattern
