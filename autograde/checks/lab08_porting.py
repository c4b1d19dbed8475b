"""Checks for Lab 08, porting to inference engines: ONNX graphs, ONNX Runtime, int8 in the engine.

Graphs for the hidden cases are built here with onnx.helper (random convolutions,
depthwise ones, batch norms, residual adds, Gemm and MatMul), so no case is an exported
model a student could keep. Models handed in travel as the bytes of their .onnx file and
are run here, in the grader's own ONNX Runtime; where a question asks for the engine's
work (folding, predicting its integers), ONNX Runtime and onnxscript's rewriter are
refused during the call.
"""

import math
import random
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import TensorProto, helper, numpy_helper
from onnxruntime import quantization as q

from autograde.checks.api import (
    Withheld,
    as_float,
    as_int,
    as_tensor,
    call,
    check,
    compared,
    expect_close,
    fail,
    fmt_call,
    in_hidden_case,
    is_layer_tree,
    new_handwriting,
    rng,
    torch_gen,
    watch,
)
from efflib import engines
from efflib.data import digits
from efflib.quant import integer, torch_int8

# efflib's batch-norm folding (Lab 05 Q10) works on PyTorch layers: refused in Q2, and the
# clean room (judging.clean_room) has none of it; the engine, which would answer Q2 and Q4,
# is refused by module (ENGINES)
TOPICS = ("batchnorm_folding",)
WITHHELD = Withheld(topics=TOPICS)
# the engine's own passes: refused where a question asks for the engine's work
ENGINES = ("onnxruntime", "onnxscript", "onnx_ir")
NOT_THE_ENGINE = ("is the engine doing the work this question asks you to write: use onnx "
                  "and NumPy (or torch) only.")
# PyTorch's own int8 kernels (fbgemm rescales in float32 and rounds halves to even, as the
# engine does): a quantized convolution needs a quantized tensor and packed weights, so
# Q4 refuses making either, at the dispatcher, and torch's quantization package; oneDNN's
# int8 convolution (torch.ops.onednn) takes plain tensors, so its ops are refused by name
INT8_KERNELS = ("quantize_per_tensor", "quantize_per_channel", "quantize_per_tensor_dynamic",
                "_make_per_tensor_quantized_tensor", "_make_per_channel_quantized_tensor",
                "_empty_affine_quantized", "_empty_per_channel_affine_quantized",
                "empty_quantized", "conv2d_prepack", "conv_prepack", "conv1d_prepack",
                "conv3d_prepack", "linear_prepack", "quantized_batch_norm",
                "qconv_prepack", "qconv1d_pointwise", "qconv2d_pointwise",
                "qconv3d_pointwise", "qconv_pointwise", "qlinear_prepack",
                "qlinear_pointwise")  # the last seven: oneDNN's, on plain int8 tensors
INT8_PACKAGES = ("torch.ao", "torch.quantization", "torch.nn.quantized")
NOT_AN_INT8_KERNEL = ("runs an int8 kernel (the engine's or PyTorch's) that does the "
                      "arithmetic this question asks you to write: use plain tensor "
                      "operations in float64 or integers.")
CALIBRATION_BATCH = 16
CALIBRATION_IMAGES = 256  # the lab calibrates on the first 256 training images, in order
METHODS = ("MinMax", "Entropy", "Percentile")
THRESHOLD = 0.9  # the early exit's confidence threshold in the lab


def _load(model, what: str) -> onnx.ModelProto:
    """A student's ONNX bytes as a checked ModelProto, or a failure naming the problem."""
    if not isinstance(model, bytes | bytearray):
        fail(f"{what} should be the bytes of an ONNX model (model_proto.SerializeToString() "
             f"or open(path, 'rb').read()), got {type(model).__name__}")
    try:
        proto = onnx.load_from_string(bytes(model))
        onnx.checker.check_model(proto)
    except Exception as e:  # noqa: BLE001 - onnx raises several kinds
        fail(f"{what} is not a valid ONNX model: {str(e)[:300]}")
    return proto


def _session(model, what: str, level: str = "all"):
    try:
        return engines.session(model, level)
    except ValueError as e:
        fail(f"{what}: {e}")


def _graph_model(nodes, inits, inputs, outputs, name="case") -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", engines.OPSET)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def _init(name: str, array: np.ndarray):
    return numpy_helper.from_array(np.ascontiguousarray(array), name)


# --- Q1. Export, and costs read off the graph -------------------------------------------

def _shapes(proto: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape by ONNX's shape inference, a symbolic batch taken as 1."""
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    for value in proto.graph.input:
        for dim in value.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.dim_value = 1
    inferred = onnx.shape_inference.infer_shapes(proto)
    shapes = {}
    for value in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = tuple(d.dim_value for d in dims)
    for init in proto.graph.initializer:
        shapes[init.name] = tuple(init.dims)
    return shapes


def reference_node_costs(model: bytes) -> dict[str, tuple[int, int]]:
    """{node name: (parameters, MACs)} at batch 1: parameters are the elements of the
    initializers a node reads; MACs count Conv, Gemm and MatMul (one per weight use)."""
    proto = onnx.load_from_string(model)
    shapes = _shapes(proto)
    stored = {i.name for i in proto.graph.initializer}
    costs = {}
    for node in proto.graph.node:
        params = sum(math.prod(shapes[i]) for i in node.input if i in stored)
        macs = 0
        if node.op_type == "Conv":
            macs = math.prod(shapes[node.output[0]]) * math.prod(shapes[node.input[1]][1:])
        elif node.op_type == "Gemm":
            trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
            a = shapes[node.input[0]]
            k = a[0] if trans_a else a[1]
            macs = math.prod(shapes[node.output[0]]) * k
        elif node.op_type == "MatMul":
            macs = math.prod(shapes[node.output[0]]) * shapes[node.input[0]][-1]
        costs[node.name] = (params, macs)
    return costs


def random_graph(r: random.Random, batch) -> onnx.ModelProto:
    """A small CNN as an ONNX graph: convolutions (strided, padded, dilated, depthwise, with
    and without bias), batch norm, ReLU or HardSwish, a residual Add, then a pool and a
    classifier that is a Gemm (transposed weight or not) or a MatMul plus Add."""
    g = np.random.default_rng(r.randrange(2**31))
    c, h = r.choice([1, 2, 3, 4]), r.randint(7, 16)
    nodes, inits, last, n = [], [], "x", 0
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, c, h, h])]

    def add(op, ins, **attrs):
        nonlocal last, n
        n += 1
        out = f"t{n}"
        nodes.append(helper.make_node(op, ins, [out], name=f"{op.lower()}_{n}", **attrs))
        last = out
        return out

    for layer in range(r.randint(2, 4)):
        depthwise = layer > 0 and r.random() < 0.4
        cout = c if depthwise else r.choice([4, 6, 8, 12])
        k = r.choice([1, 3, 3, 5])
        stride, dil = r.choice([1, 1, 2]), r.choice([1, 1, 2])
        pad = r.randint(0, k // 2 * dil)
        if (h + 2 * pad - dil * (k - 1) - 1) // stride + 1 < 2:
            k, stride, dil, pad = 1, 1, 1, 0
        group = c if depthwise else 1
        w = f"w{layer}"
        inits.append(_init(w, g.standard_normal((cout, c // group, k, k)).astype(np.float32)))
        ins = [last, w]
        if r.random() < 0.6:
            inits.append(_init(f"b{layer}", g.standard_normal(cout).astype(np.float32)))
            ins.append(f"b{layer}")
        before = last
        add("Conv", ins, kernel_shape=[k, k], strides=[stride, stride],
            dilations=[dil, dil], pads=[pad] * 4, group=group)
        h = (h + 2 * pad - dil * (k - 1) - 1) // stride + 1
        if r.random() < 0.5:
            names = [f"bn{layer}_{p}" for p in ("scale", "bias", "mean", "var")]
            for p, name in zip(("scale", "bias", "mean", "var"), names, strict=True):
                value = g.uniform(0.5, 2, cout) if p in ("scale", "var") else g.normal(0, 1, cout)
                inits.append(_init(name, value.astype(np.float32)))
            add("BatchNormalization", [last, *names])
        add(r.choice(["Relu", "HardSwish"]), [last])
        if depthwise and stride == 1 and dil * (k - 1) == 2 * pad:  # same shape: residual
            add("Add", [last, before])
        c = cout
    add("GlobalAveragePool", [last])
    add("Flatten", [last], axis=1)
    classes = r.choice([3, 10])
    if r.random() < 0.5:
        trans = r.random() < 0.5
        wshape = (classes, c) if trans else (c, classes)
        inits += [_init("fc_w", g.standard_normal(wshape).astype(np.float32)),
                  _init("fc_b", g.standard_normal(classes).astype(np.float32))]
        add("Gemm", [last, "fc_w", "fc_b"], transB=int(trans))
    else:
        inits += [_init("fc_w", g.standard_normal((c, classes)).astype(np.float32)),
                  _init("fc_b", g.standard_normal(classes).astype(np.float32))]
        add("MatMul", [last, "fc_w"])
        add("Add", [last, "fc_b"])
    outputs = [helper.make_tensor_value_info(last, TensorProto.FLOAT, [batch, classes])]
    return _graph_model(nodes, inits, inputs, outputs)


def _costs_of(fn, model: bytes, case: str) -> dict[str, tuple[int, int]]:
    got = call(fn, case, model)
    if not isinstance(got, dict):
        fail(f"{case}: expected a dict {{node name: (parameters, MACs)}}, got "
             f"{type(got).__name__}")
    out = {}
    for name, value in got.items():
        if not isinstance(value, tuple | list) or len(value) != 2:
            fail(f"{case}: the value for node {name!r} should be a pair (parameters, MACs), "
                 f"got {value!r}")
        out[str(name)] = (as_int(value[0], f"{case}[{name!r}][0]"),
                          as_int(value[1], f"{case}[{name!r}][1]"))
    return out


def _off(got: int, expected: int, show: bool) -> str:
    """The end of a message: the expected value where it may be shown, else which way."""
    if show and not in_hidden_case():
        return compared(got, expected, ",d")
    return f", which is too {'high' if got > expected else 'low'}"


def _expect_costs(got: dict, expected: dict, case: str, show: bool = True) -> None:
    """`show`: a visible case may print the expected value; the student's own model, whose
    bytes change with each run, may not (a table of answers made at home fails there)."""
    if set(got) != set(expected):
        missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
        fail(f"{case}: expected one entry per node, keyed by node.name; missing "
             f"{missing[:5]}, unknown {extra[:5]}")
    for name, (params, macs) in expected.items():
        op = name.split("_")[0]
        if got[name][0] != params:
            fail(f"{case}: node {name!r}: parameters {got[name][0]:,d}"
                 f"{_off(got[name][0], params, show)}. Count every element of the "
                 "initializers the node reads (weights and bias).")
        if got[name][1] != macs:
            fail(f"{case}: node {name!r} ({op}): MACs {got[name][1]:,d}"
                 f"{_off(got[name][1], macs, show)}. A Conv does (Cin / group) * kh * kw "
                 "MACs per output element; a Gemm or MatMul K per output element; take the "
                 "output shape from shape inference, the batch as 1.")


@check
def check_node_costs(fn, model: bytes | None = None, hidden: bool = False) -> None:
    """Costs per node on random graphs (and on the lab's own export, if given)."""
    r = rng(hidden, "node_costs")
    if model is not None:
        _load(model, "digit_onnx")
        _expect_costs(_costs_of(fn, bytes(model), "node_costs(digit_onnx)"),
                      reference_node_costs(bytes(model)), "node_costs(digit_onnx)", show=False)
    for i in range(12 if hidden else 4):
        case_model = random_graph(r, r.choice([1, "N"])).SerializeToString()
        case = f"node_costs(<random graph {i}>)"
        with watch(forbidden=(), modules=ENGINES, why=NOT_THE_ENGINE):
            got = _costs_of(fn, case_model, case)
        _expect_costs(got, reference_node_costs(case_model), case)


def _run_batch(sess, batch: torch.Tensor, case: str) -> torch.Tensor:
    """The model's output for `batch` in the grader's engine, or a failure saying why."""
    try:
        return engines.run(sess, batch)
    except Exception as e:  # noqa: BLE001 - ORT's own errors
        fail(f"{case}: ONNX Runtime refused it ({str(e)[:200]}). Export with a dynamic "
             "batch dimension (dynamic_shapes) so one model takes any batch.")


def _logits(model, images: torch.Tensor, case: str) -> torch.Tensor:
    got = call(model, case, images)
    return as_tensor(got, case).float()


@check
def check_export(model: bytes, cnn, hidden: bool = False) -> None:
    """digit_onnx is `cnn` exported: same logits in ONNX Runtime at batch 1 and 64."""
    proto = _load(model, "digit_onnx")
    if len(proto.graph.input) != 1 or len(proto.graph.output) != 1:
        fail("digit_onnx should have one input (the images) and one output (the logits)")
    sess = _session(model, "digit_onnx")
    images, labels = (t[:64] for t in test_set())
    for batch in (images[:1], images):
        case = f"digit_onnx on a batch of {len(batch)}"
        got = _run_batch(sess, batch, case)
        expected = _logits(cnn, batch.clone(), f"cnn on a batch of {len(batch)}")
        expect_close(got, expected, case, atol=1e-4, rtol=1e-4,
                     hint="Export the trained `cnn` itself, in eval mode.")
    accuracy = (engines.run(sess, images).argmax(1) == labels).float().mean().item()
    if accuracy < 0.8:
        fail(f"digit_onnx gets {accuracy:.0%} of 64 test images right; export the trained "
             "network.")


# --- Q2. Folding batch norm into the convolution ----------------------------------------

def conv_bn_graph(r: random.Random) -> tuple[onnx.ModelProto, int]:
    """(graph, how many Conv -> BatchNormalization pairs can be folded): some convs with a
    bias and some without, a batch norm that follows no conv, and a conv whose output also
    feeds a second node (which must not be folded)."""
    g = np.random.default_rng(r.randrange(2**31))
    c, h = r.choice([1, 3]), r.randint(5, 9)
    c0, nodes, inits, last, foldable = c, [], [], "x", 0
    outputs = []

    def bn(name, ins, cout):
        names = [f"{name}_{p}" for p in ("scale", "bias", "mean", "var")]
        inits.extend([_init(names[0], g.uniform(0.3, 3, cout).astype(np.float32)),
                      _init(names[1], g.normal(0, 1, cout).astype(np.float32)),
                      _init(names[2], g.normal(0, 1, cout).astype(np.float32)),
                      _init(names[3], g.uniform(0.2, 4, cout).astype(np.float32))])
        eps = r.choice([1e-5, 1e-3])
        nodes.append(helper.make_node("BatchNormalization", [ins, *names], [f"{name}_y"],
                                      name=name, epsilon=eps))
        return f"{name}_y"

    if r.random() < 0.5:
        last = bn("bn_input", last, c)
    shared = r.randrange(3)
    for i in range(3):
        cout, k = r.choice([4, 6, 8]), r.choice([1, 3])
        w = f"conv{i}_w"
        inits.append(_init(w, g.standard_normal((cout, c, k, k)).astype(np.float32) * 0.5))
        ins = [last, w]
        if r.random() < 0.5:
            inits.append(_init(f"conv{i}_b", g.standard_normal(cout).astype(np.float32)))
            ins.append(f"conv{i}_b")
        nodes.append(helper.make_node("Conv", ins, [f"conv{i}_y"], name=f"conv{i}",
                                      pads=[k // 2] * 4))
        y = bn(f"bn{i}", f"conv{i}_y", cout)
        if i == shared:  # the conv's output is an output of the graph too
            outputs.append(helper.make_tensor_value_info(f"conv{i}_y", TensorProto.FLOAT,
                                                         ["N", cout, h, h]))
        else:
            foldable += 1
        nodes.append(helper.make_node("Relu", [y], [f"relu{i}_y"], name=f"relu{i}"))
        last, c = f"relu{i}_y", cout
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c0, h, h])]
    outputs.insert(0, helper.make_tensor_value_info(last, TensorProto.FLOAT, ["N", c, h, h]))
    return _graph_model(nodes, inits, inputs, outputs, "conv_bn"), foldable


def _all_outputs(model, x: torch.Tensor, what: str) -> list[torch.Tensor]:
    sess = _session(model, what, level="disable")
    names = [i.name for i in sess.get_inputs()]
    try:
        return [torch.from_numpy(o) for o in sess.run(None, {names[0]: x.numpy()})]
    except Exception as e:  # noqa: BLE001 - ORT's own errors
        fail(f"{what}: ONNX Runtime could not run it: {str(e)[:300]}")


@check
def check_fold_batchnorm(fn, hidden: bool = False) -> None:
    """fold_batchnorm removes each foldable BatchNormalization and keeps every output."""
    r = rng(hidden, "fold_batchnorm")
    for i in range(8 if hidden else 3):
        proto, foldable = conv_bn_graph(r)
        model = proto.SerializeToString()
        case = f"fold_batchnorm(<conv-bn graph {i}>)"
        with watch(forbidden=(), topics=TOPICS, modules=ENGINES, why=NOT_THE_ENGINE):
            got = call(fn, case, model)
        folded = _load(got, f"what {case} returned")
        before, after = engines.op_counts(model), engines.op_counts(folded)
        if after["Conv"] != before["Conv"]:
            fail(f"{case}: the graph had {before['Conv']} Conv nodes and yours has "
                 f"{after['Conv']}; folding changes a Conv's weights and bias, not their "
                 "number.")
        left = before["BatchNormalization"] - foldable
        if after["BatchNormalization"] != left:
            fail(f"{case}: {after['BatchNormalization']} BatchNormalization nodes are left"
                 f"{compared(after['BatchNormalization'], left)}. Fold a BatchNormalization "
                 "into the Conv before it when the Conv's output goes to that node only.")
        nodes_before, nodes_after = sum(before.values()), sum(after.values())
        if nodes_after != nodes_before - foldable:
            fail(f"{case}: the graph had {nodes_before} nodes and yours has {nodes_after}. "
                 "Folding removes each folded BatchNormalization and adds no node: its "
                 "scale and shift go into the Conv's weight and bias initializers.")
        x = torch.randn(2, *_image_size(proto), generator=torch_gen(r))
        want = _all_outputs(model, x, "the original graph")
        have = _all_outputs(got, x, f"what {case} returned")
        if len(have) != len(want):
            fail(f"{case}: the graph had {len(want)} outputs and yours has {len(have)}")
        for k, (h, w) in enumerate(zip(have, want, strict=True)):
            expect_close(h, w, f"{case}, output {k}", atol=1e-4, rtol=1e-4,
                         hint="Folding must not change what the graph computes: "
                              "w' = w * scale / sqrt(var + eps), "
                              "b' = (b - mean) * scale / sqrt(var + eps) + bias (b = 0 "
                              "without a bias), each per output channel; read epsilon "
                              "from the node.")


def _image_size(proto: onnx.ModelProto) -> tuple[int, int, int]:
    """(C, H, W) of the graph's input."""
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    return dims[1].dim_value, dims[2].dim_value, dims[3].dim_value


# --- Q3. int8 in the engine ---------------------------------------------------------------

def small_float_graph(r: random.Random) -> onnx.ModelProto:
    """Conv -> Relu -> Conv -> Relu -> pool -> Gemm, random, for the calibration cases."""
    g = np.random.default_rng(r.randrange(2**31))
    c1, c2 = r.choice([4, 8]), r.choice([8, 16])
    inits = [_init("w1", g.standard_normal((c1, 1, 3, 3)).astype(np.float32) * 0.5),
             _init("b1", g.standard_normal(c1).astype(np.float32) * 0.1),
             _init("w2", g.standard_normal((c2, c1, 3, 3)).astype(np.float32) * 0.3),
             _init("b2", g.standard_normal(c2).astype(np.float32) * 0.1),
             _init("fc_w", g.standard_normal((10, c2)).astype(np.float32) * 0.3),
             _init("fc_b", np.zeros(10, np.float32))]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1] * 4),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1] * 4),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("GlobalAveragePool", ["r2"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"], name="fc", transB=1)]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])]
    return _graph_model(nodes, inits, inputs, outputs, "small")


def reference_quantize(model: bytes, images: torch.Tensor, method: str) -> bytes:
    """ONNX Runtime's static quantization: QDQ, int8 weights per output channel, uint8
    activations, calibrated on `images` in order, CALIBRATION_BATCH at a time."""
    name = onnx.load_from_string(model).graph.input[0].name
    batches = [images[i:i + CALIBRATION_BATCH].numpy()
               for i in range(0, len(images), CALIBRATION_BATCH)]

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.items = iter(batches)

        def get_next(self):
            batch = next(self.items, None)
            return None if batch is None else {name: batch}

    with tempfile.TemporaryDirectory() as d, engines.quiet():
        src, dst = Path(d) / "fp32.onnx", Path(d) / "int8.onnx"
        src.write_bytes(model)
        q.quantize_static(str(src), str(dst), Reader(), quant_format=q.QuantFormat.QDQ,
                          per_channel=True, weight_type=q.QuantType.QInt8,
                          activation_type=q.QuantType.QUInt8,
                          calibrate_method=getattr(q.CalibrationMethod, method))
        return dst.read_bytes()


def _grids(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    """The quantized model's scales and zero points, by initializer name."""
    return {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer
            if i.name.endswith(("_scale", "_zero_point"))}


def _expect_same_grids(got: bytes, expected: bytes, case: str, advice: str) -> None:
    have, want = _load(got, f"what {case} returned"), onnx.load_from_string(expected)
    if engines.op_counts(have) != engines.op_counts(want):
        fail(f"{case}: the quantized graph's nodes are not those of a QDQ model quantized "
             "per channel (QuantizeLinear / DequantizeLinear pairs around the float ops). "
             + advice)
    a, b = _grids(have), _grids(want)
    if set(a) != set(b):
        fail(f"{case}: the scales and zero points are not the expected ones ({len(a)} "
             f"found, {len(b)} expected). " + advice)
    for name, value in b.items():
        if a[name].shape != value.shape:
            fail(f"{case}: {name} has shape {a[name].shape}; weights are quantized per "
                 "output channel (per_channel=True). " + advice)
        if a[name].dtype != value.dtype or not np.allclose(a[name], value, rtol=1e-5,
                                                           atol=0):
            fail(f"{case}: {name} is not the grid this calibration gives. " + advice)


QUANTIZE_ADVICE = (f"Calibrate on the images you are given, in order, {CALIBRATION_BATCH} at "
                   "a time, with the method named; QDQ format, QInt8 weights per channel, "
                   "QUInt8 activations.")


@check
def check_quantize(fn, hidden: bool = False) -> None:
    """quantize_onnx gives ORT's QDQ model for the images and method asked for."""
    r = rng(hidden, "quantize")
    handwriting = digits(seed=0).train.dataset.tensors[0]
    methods = list(METHODS) if hidden else ["MinMax", "Percentile"]
    for method in methods:
        model = small_float_graph(r).SerializeToString()
        start = r.randrange(len(handwriting) - 80)
        images = handwriting[start:start + r.choice([32, 48, 64])].clone()  # whole batches
        case = fmt_call("quantize_onnx", model, images, method)
        with watch(forbidden=()):
            got = call(fn, case, model, images, method)
        _expect_same_grids(got, reference_quantize(model, images, method), case,
                           QUANTIZE_ADVICE)


def calibration_images() -> torch.Tensor:
    """The lab's calibration set: the first CALIBRATION_IMAGES training images, in order."""
    return digits(seed=0).train.dataset.tensors[0][:CALIBRATION_IMAGES].clone()


def test_set() -> tuple[torch.Tensor, torch.Tensor]:
    """The lab's test images and labels, whole: (N, 1, 8, 8) and (N,)."""
    images, labels = (torch.cat(t) for t in zip(*digits(seed=0).test, strict=True))
    return images, labels


def _accuracy(model: bytes, what: str) -> float:
    images, labels = test_set()
    return (engines.run(_session(model, what), images).argmax(1) == labels).float().mean().item()


@check
def check_int8_model(int8_model: bytes, fp32_model: bytes, hidden: bool = False) -> None:
    """int8_onnx is digit_onnx calibrated (MinMax) on the lab's calibration set."""
    _load(fp32_model, "digit_onnx")
    expected = reference_quantize(bytes(fp32_model), calibration_images(), "MinMax")
    _expect_same_grids(int8_model, expected, "int8_onnx",
                       "Quantize digit_onnx with quantize_onnx(digit_onnx, calibration, "
                       "'MinMax'), `calibration` being the lab's training images (never "
                       "the test images: they judge the model).")
    accuracy = _accuracy(int8_model, "int8_onnx")
    if accuracy < 0.85:
        fail(f"int8_onnx gets {accuracy:.1%} on the test images; expected at least 85%.")


# --- Q4. The engine's integers -------------------------------------------------------------

def engine_integers(q_x, x_scale, x_zero, q_w, w_scale, q_b, y_scale, y_zero, padding,
                    relu) -> torch.Tensor:
    """The integers ONNX Runtime's QDQ convolution gives: run it in the engine."""
    model = engines.qdq_conv(q_w, w_scale, q_b, x_scale, x_zero, y_scale, y_zero, padding,
                             relu)
    return engines.run(engines.session(model), q_x.to(torch.uint8)).to(torch.int64)


def _qconv_case(r: random.Random, ties: bool) -> dict:
    g = torch_gen(r)
    cin, cout, k = r.choice([1, 3, 8]), r.choice([2, 4, 8]), r.choice([1, 3])
    n, h = r.choice([1, 2]), r.randint(4, 8)
    x_zero, y_zero = r.randint(0, 255), r.randint(0, 255)
    if ties:  # multipliers x_scale w_scale / y_scale that are powers of two: halves happen
        x_scale = 2.0 ** -r.randint(2, 6)
        w_scale = torch.full((cout,), 2.0 ** -r.randint(5, 8))
        y_scale = float(x_scale * w_scale[0] * 2.0 ** r.randint(1, 3))
        q_x = (x_zero + torch.randint(-4, 5, (n, cin, h, h), generator=g)).clamp(0, 255)
        q_w = torch.randint(-6, 7, (cout, cin, k, k), generator=g)
        q_b = torch.randint(-20, 21, (cout,), generator=g)
    else:
        x_scale = float(torch.empty(1).uniform_(0.005, 0.05, generator=g))
        w_scale = torch.empty(cout).uniform_(0.001, 0.02, generator=g)
        spread = (cin * k * k) ** 0.5 * 70 * 70
        y_scale = float(x_scale * w_scale.mean() * spread / 60)
        q_x = torch.randint(0, 256, (n, cin, h, h), generator=g)
        q_w = torch.randint(-127, 128, (cout, cin, k, k), generator=g)
        q_b = torch.randint(-3000, 3001, (cout,), generator=g)
    w_scale = w_scale.float()
    return {"q_x": q_x.to(torch.uint8), "x_scale": x_scale, "x_zero": x_zero,
            "q_w": q_w.to(torch.int8), "w_scale": w_scale, "q_b": q_b.to(torch.int32),
            "y_scale": float(np.float32(y_scale)), "y_zero": y_zero,
            "padding": k // 2 if r.random() < 0.7 else 0, "relu": r.random() < 0.5}


@check
def check_engine_conv(fn, hidden: bool = False) -> None:
    """engine_conv gives ONNX Runtime's integers exactly, halves and saturation included."""
    r = rng(hidden, "engine_conv")
    for i in range(10 if hidden else 4):
        case_args = _qconv_case(r, ties=i % 2 == 1)
        a = case_args  # the case in short: the scales are in the call, not the message
        case = (f"engine_conv(q_x {tuple(a['q_x'].shape)}, q_w {tuple(a['q_w'].shape)}, "
                f"padding={a['padding']}, relu={a['relu']})")
        expected = engine_integers(**{k: (v.clone() if isinstance(v, torch.Tensor) else v)
                                      for k, v in case_args.items()})
        with watch(forbidden=INT8_KERNELS, modules=ENGINES + INT8_PACKAGES,
                   why=NOT_AN_INT8_KERNEL):
            got = call(fn, case, **{k: (v.clone() if isinstance(v, torch.Tensor) else v)
                                    for k, v in case_args.items()})
        got = as_tensor(got, case)
        if tuple(got.shape) != tuple(expected.shape):
            fail(f"{case}: got shape {tuple(got.shape)}"
                 f"{'' if in_hidden_case() else f', expected {tuple(expected.shape)}'}")
        if got.is_floating_point() and not bool((got == got.round()).all()):
            fail(f"{case}: the engine's outputs are integers; yours are not")
        wrong = got.to(torch.int64) != expected
        if bool(wrong.any()):
            worst = int((got.to(torch.int64) - expected).abs().max())
            fail(f"{case}: {int(wrong.sum()):,d} of {wrong.numel():,d} integers differ from "
                 f"the engine's (by up to {worst}). The engine accumulates in int32, then "
                 "multiplies by x_scale * w_scale / y_scale in float, rounds half to even, "
                 "adds y_zero and saturates to 0..255; a ReLU before QuantizeLinear clips "
                 "at y_zero.")


# --- Q5. What does not port ----------------------------------------------------------------

def reference_exit(parts: dict[str, nn.Module], x: torch.Tensor, threshold: float):
    """Image by image: exit1's logits where its top softmax probability reaches the
    threshold, the full network's otherwise."""
    with torch.no_grad():
        h = parts["block1"].eval()(x)
        early = parts["exit1"].eval()(h)
        full = parts["head"].eval()(parts["block2"].eval()(h))
        exited = early.softmax(1).max(1).values >= threshold
    return torch.where(exited[:, None], early, full), exited


@check
def check_exit_export(model: bytes, block1, exit1, block2, head,
                      threshold: float = THRESHOLD, hidden: bool = False) -> None:
    """exit_onnx gives, image by image, what the early-exit network gives."""
    parts = {"block1": block1, "exit1": exit1, "block2": block2, "head": head}
    for name, part in parts.items():
        if not isinstance(part, nn.Module) or not is_layer_tree(part):
            fail(f"pass the early-exit network's {name} (an nn.Sequential of torch.nn "
                 f"layers), got {type(part).__name__}")
    _load(model, "exit_onnx")
    sess = _session(model, "exit_onnx")
    images, _ = test_set()
    new, _, _, _ = new_handwriting()
    noise = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(8)) * 4 - 2
    x = torch.cat([images, new.float(), noise])
    expected, exited = reference_exit(parts, x, as_float(threshold, "threshold"))
    if bool(exited.all()) or not bool(exited.any()):
        fail("at this threshold every image (or none) exits early, so the export cannot be "
             "told from a network with one classifier; train the network as the lab does.")
    for batch in (x[:1], x[:64], x):
        case = f"exit_onnx on a batch of {len(batch)}"
        got = _run_batch(sess, batch, case)
        expect_close(got, expected[:len(batch)], case, atol=1e-4, rtol=1e-4,
                     hint="Each image's logits are exit1's where its top softmax "
                          "probability reaches the threshold, the head's otherwise "
                          "(compute both, then choose per image).")


# --- Q6. The deployment table ----------------------------------------------------------------

ROWS = ("torch fp32", "torch int8", "ORT fp32", "ORT int8", "C int8")
COLUMNS = ("disk_bytes", "runtime_bytes", "startup_s", "latency_ms_1", "latency_ms_64",
           "peak_mb", "accuracy")


def _deployed_accuracies(cnn) -> dict[str, float]:
    """Test accuracy of the rows the grader can rebuild from `cnn`: itself, Lab 05's int8
    network made from it on the lab's calibration set, run by PyTorch's int8 kernels, and
    the same integers as the C program computes them (bit-exact with efflib's model)."""
    images, labels = test_set()
    int_model = integer.convert(cnn, calibration_images())
    with torch.no_grad():
        outputs = {"torch fp32": cnn(images).argmax(1),
                   "torch int8": torch_int8.to_torch(int_model)(images).argmax(1),
                   "C int8": int_model.predict(images)}
    return {row: (got == labels).float().mean().item() for row, got in outputs.items()}


def _expect_units(table: dict) -> None:
    """Values in the units the columns name, and the relations every measurement keeps
    however busy the machine was: a batch of 64 takes longer than one image, and a
    process's peak memory is PyTorch's above ONNX Runtime's above the C program's."""
    for row, values in table.items():
        v = {c: float(values[c]) for c in COLUMNS}
        if not v["startup_s"] <= 600:
            fail(f"deployment[{row!r}]['startup_s'] is {v['startup_s']:g}: seconds, please.")
        if not 1e-3 <= v["latency_ms_1"] < v["latency_ms_64"]:
            fail(f"deployment[{row!r}]: latency_ms_1 {v['latency_ms_1']:g} and latency_ms_64 "
                 f"{v['latency_ms_64']:g} should be milliseconds, a batch of 64 taking "
                 "longer than one image.")
        if not v["peak_mb"] <= 65536:
            fail(f"deployment[{row!r}]['peak_mb'] is {v['peak_mb']:g}: megabytes, please.")
    peak = {row: float(table[row]["peak_mb"]) for row in ROWS}
    if not min(peak["torch fp32"], peak["torch int8"]) > max(peak["ORT fp32"],
                                                              peak["ORT int8"]) > peak["C int8"]:
        fail("deployment: the peak memory column should be each process's own peak "
             "(engines.cold_start): a process that imports PyTorch holds more than one "
             "that imports ONNX Runtime, which holds more than the C program.")
    c = table["C int8"]
    if abs(float(c["latency_ms_64"]) / (64 * float(c["latency_ms_1"])) - 1) > 1e-3:
        fail("deployment['C int8']: its latency_ms_1 is a 64th of its latency_ms_64 (a run "
             "over 64 images less a run over none).")


@check
def check_deployment(table, fp32_model: bytes, int8_model: bytes, cnn,
                     hidden: bool = False) -> None:
    """The table's rows hold measured values: sizes and accuracies the grader checks
    against the models, latencies and memory in their units and in their order."""
    if not isinstance(table, dict) or not set(ROWS) <= set(table):  # more rows are fine
        fail(f"deployment should be a dict with the rows {list(ROWS)}, got "
             f"{sorted(table) if isinstance(table, dict) else type(table).__name__}")
    for row in table:
        if not isinstance(table[row], dict) or set(table[row]) != set(COLUMNS):
            fail(f"deployment[{row!r}] should be a dict with the keys {list(COLUMNS)}")
        for col in COLUMNS:
            value = as_float(table[row][col], f"deployment[{row!r}][{col!r}]")
            if not math.isfinite(value) or value <= 0:
                fail(f"deployment[{row!r}][{col!r}] is {value}; measure it (a positive "
                     "number).")
    accuracies = {}
    for row, model in (("ORT fp32", fp32_model), ("ORT int8", int8_model)):
        _load(model, "digit_onnx" if row == "ORT fp32" else "int8_onnx")
        if int(table[row]["disk_bytes"]) != len(model):
            fail(f"deployment[{row!r}]['disk_bytes'] is {table[row]['disk_bytes']}, not the "
                 "size of the model file.")
        accuracies[row] = _accuracy(model, row)
    if not isinstance(cnn, nn.Module) or not is_layer_tree(cnn):
        fail(f"pass the lab's cnn (a module of torch.nn layers), got {type(cnn).__name__}")
    accuracies |= _deployed_accuracies(cnn.eval())
    weights = sum(p.numel() for p in cnn.parameters())
    disk = {row: float(table[row]["disk_bytes"]) for row in ROWS}
    if not disk["torch int8"] < disk["torch fp32"] or disk["torch fp32"] < 4 * weights \
            or min(disk["torch int8"], disk["C int8"]) < weights:
        fail("deployment: disk_bytes should be each model file's size: the TorchScript "
             "files and the C binary hold the weights (4 bytes each in float32, 1 in "
             "int8), so the int8 file is the smaller.")
    for row, accuracy in accuracies.items():
        if abs(float(table[row]["accuracy"]) - accuracy) > 1e-3:  # one image is 2.2e-3
            fail(f"deployment[{row!r}]['accuracy'] is {float(table[row]['accuracy']):.4f}, "
                 "not the model's accuracy on the test images.")
    for row, package in (("ORT fp32", "onnxruntime"), ("ORT int8", "onnxruntime"),
                         ("torch fp32", "torch"), ("torch int8", "torch")):
        size = engines.library_bytes(package)
        if abs(float(table[row]["runtime_bytes"]) / size - 1) > 0.05:
            fail(f"deployment[{row!r}]['runtime_bytes'] is not the size of {package}'s "
                 "shared libraries (engines.library_bytes).")
    c = {k: float(v) for k, v in table["C int8"].items()}
    if not 1_000 <= c["disk_bytes"] <= 2_000_000 or c["runtime_bytes"] != c["disk_bytes"]:
        fail("deployment['C int8']: the program is its own runtime: its disk_bytes and "
             "runtime_bytes are both the size of the compiled binary.")
    _expect_units(table)
