# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 08: Porting to inference engines
#
# *Efficient Deep Learning for Edge Deployment*
#
# Lab 06 ended with the digit classifier as a standalone C program. Most teams
# ship through an **inference engine** instead: they export the trained network
# to an exchange format, and a runtime on the device rewrites and runs it. The
# lecture notes call this step model porting (模型移植) and name the engines
# engineers use: MNN, ncnn, TensorRT, OpenVINO. Here you take the same network
# through the most common path on a CPU:
#
# * **ONNX** ([onnx.ai](https://onnx.ai/onnx/intro/)), a graph of standard
#   operators with the weights stored beside them as *initializers*;
# * **ONNX Runtime** ([onnxruntime.ai](https://onnxruntime.ai/docs/performance/model-optimizations/graph-optimizations.html)),
#   which rewrites the graph at an optimisation level you choose before it runs it,
#   and quantizes it to int8 with a calibration set you give it.
#
# You will read costs off the graph alone, do one of the engine's rewrites by hand,
# predict the engine's int8 arithmetic bit for bit, rewrite a model the exporter
# refuses, and measure what each way of deploying costs a device.
#
# **How this lab is graded.** Each `## Q…` heading gives its points. Write your
# code where it says `YOUR CODE HERE` and delete the `raise NotImplementedError()`.
# Hidden checks use random graphs built by the grader. Models you hand in travel as
# the bytes of their `.onnx` file and are run by the grader's own ONNX Runtime.
# Q7 is read by a person.
#
# *OpenVINO* is not installed by `make lab` (it is about 250 MB). No point depends
# on it; Q6 says how to add it and gives it a row of the deployment table.

# %%
import copy
import re
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import onnx
import torch
import torch.nn as nn
from matplotlib.ticker import FuncFormatter
from onnx import numpy_helper
from onnxruntime import quantization
from tqdm.auto import tqdm

from efflib import data, engines, export_c, models, profile, train
from efflib.latency import fast_mode, measure_in_turns, threads_for_load
from efflib.models.blocks import conv_norm_act
from efflib.models.mobilenet import InvertedResidual
from efflib.quant import integer, torch_int8

torch.manual_seed(0)
FAST = fast_mode()  # True while the grader runs this notebook: shorter training and timing
torch.set_num_threads(1 if FAST else threads_for_load())
loaders = data.digits(seed=0)
test_x, test_y = (torch.cat(t) for t in zip(*loaders.test, strict=True))
calibration = loaders.train.dataset.tensors[0][:256]  # the first 256 training images
x1 = test_x[:1]  # one image: edge devices see them one at a time
work = Path(tempfile.mkdtemp(prefix="lab08_"))  # the files this lab writes
measured = {}  # this lab's numbers, collected for the README
print(f"torch {torch.__version__}, onnx {onnx.__version__}, "
      f"onnxruntime {engines.ort.__version__}, fast mode {FAST}")

# %% [markdown]
# The network: Lab 05's digit CNN at width 16 (three 3x3 convolutions with
# BatchNorm and ReLU, a max pool, a global average pool and a linear classifier),
# trained for a few seconds.

# %%
torch.manual_seed(0)
cnn = models.digit_cnn(width=16)
train.fit(cnn, loaders.train, None, epochs=6, fast_epochs=3)
cnn = cnn.cpu().eval()
measured["cnn_accuracy"] = train.evaluate(cnn, loaders.test)
print(f"cnn: {sum(p.numel() for p in cnn.parameters()):,d} parameters, "
      f"test accuracy {measured['cnn_accuracy']:.1%}")
int_model = integer.convert(cnn, calibration)  # Lab 05's int8 network, for comparisons
torch8 = torch_int8.to_torch(int_model)        # the same, run by PyTorch's int8 kernels

# %% [markdown]
# ## Q1. Export, and read the graph (4 points)
#
# **Export (1 point).** `torch.onnx.export(model, (x,), dynamo=True, ...)` traces the
# model with `torch.export` and writes an ONNX graph; it returns an `ONNXProgram`
# whose `.model_proto` is the graph, and `.model_proto.SerializeToString()` its
# bytes, what a `.onnx` file holds. Export `cnn` as `digit_onnx` (bytes), with the
# input named `"image"`, the output `"logits"`, and a **dynamic batch dimension**
# (`dynamic_shapes={"x": {0: torch.export.Dim("batch")}}`; `x` is the name of
# `forward`'s argument), so one file serves batches of 1 and of 64. Wrap the call
# in `with engines.quiet():`, which silences the exporter's progress lines.

# %% nbgrader={"grade": false, "grade_id": "q1_export", "locked": false, "schema_version": 3, "solution": true, "task": false}
digit_onnx = None
### BEGIN SOLUTION
with engines.quiet():
    exported = torch.onnx.export(cnn, (x1,), dynamo=True, input_names=["image"],
                                 output_names=["logits"],
                                 dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
digit_onnx = exported.model_proto.SerializeToString()
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "q1_export_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
"""Q1: digit_onnx is cnn, exported: the same logits in ONNX Runtime at batch 1 and 64."""
from autograde.checks.lab08_porting import check_export

check_export(digit_onnx, cnn)

# %% [markdown]
# The graph, node by node. Each node has an `op_type`, a `name`, and the names of
# its `input`s and `output`s; an input that is an **initializer**
# (`graph.initializer`, a stored tensor) is a weight. Notice what is *not* there:
# the exporter already folded each BatchNorm into the convolution before it.

# %%
if digit_onnx is not None:
    graph = onnx.load_from_string(digit_onnx).graph
    stored = {init.name: tuple(init.dims) for init in graph.initializer}
    for node in graph.node:
        weights = [f"{i}{list(stored[i])}" for i in node.input if i in stored]
        print(f"{node.name:<22} {node.op_type:<12} weights: {', '.join(weights) or '-'}")
    print(f"{len(digit_onnx):,d} bytes")
else:
    print("Export cnn in Q1 to see its graph.")

# %% [markdown]
# **Costs from the graph alone (3 points).** A device team often receives only
# the `.onnx` file. Write `node_costs(model)`, which takes a model's bytes and
# returns `{node.name: (parameters, MACs)}` for every node:
#
# * parameters: the number of elements of the initializers the node reads;
# * MACs at batch 1: a `Conv` does $(C_{in} / \text{group}) \cdot k_h \cdot k_w$
#   multiply-accumulates per output element; a `Gemm` or `MatMul` does $K$ (the
#   length of the dot products) per output element; every other node 0.
#
# Output shapes come from ONNX's shape inference,
# `onnx.shape_inference.infer_shapes(model)`, whose `graph.value_info` lists the
# inferred intermediate tensors (`graph.output` the outputs). A symbolic batch
# dimension has no value: set each graph input's symbolic dimensions to 1
# (`dim.dim_value = 1` on a copy) before inferring. Mind `group` (a depthwise
# convolution has `group` equal to its channels) and Gemm's `transA`.

# %% nbgrader={"grade": false, "grade_id": "q1_node_costs", "locked": false, "schema_version": 3, "solution": true, "task": false}
def node_costs(model):
    """{node name: (parameters, MACs at batch 1)} read off an ONNX model's bytes."""
    ### BEGIN SOLUTION
    proto = onnx.load_from_string(model)
    for value in proto.graph.input:  # a symbolic batch becomes 1
        for dim in value.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.dim_value = 1
    inferred = onnx.shape_inference.infer_shapes(proto).graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*inferred.input, *inferred.value_info, *inferred.output]}
    shapes.update({i.name: list(i.dims) for i in proto.graph.initializer})
    stored = {i.name for i in proto.graph.initializer}
    costs = {}
    for node in proto.graph.node:
        params = sum(int(np.prod(shapes[i])) for i in node.input if i in stored)
        out = int(np.prod(shapes[node.output[0]]))
        if node.op_type == "Conv":
            macs = out * int(np.prod(shapes[node.input[1]][1:]))  # (Cin/group) kh kw
        elif node.op_type == "Gemm":
            trans_a = any(a.name == "transA" and a.i for a in node.attribute)
            a = shapes[node.input[0]]
            macs = out * (a[0] if trans_a else a[1])
        elif node.op_type == "MatMul":
            macs = out * shapes[node.input[0]][-1]
        else:
            macs = 0
        costs[node.name] = (params, macs)
    return costs
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q1_node_costs_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q1: node_costs counts parameters and MACs per node on digit_onnx and random graphs."""
from autograde.checks.lab08_porting import check_node_costs

check_node_costs(node_costs, digit_onnx)
### BEGIN HIDDEN TESTS
check_node_costs(node_costs, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# The graph's totals beside efflib's profiler, which counted the same network in
# PyTorch (Lab 02). The MACs agree to the last one. The parameters do not, and
# the difference is the export: the graph keeps a bias per convolution channel
# (each BatchNorm's shift, folded in) where PyTorch has BatchNorm's scale and
# shift, and it stores the shapes that its ReduceMean and Reshape read as small
# initializers too.

# %%
try:
    costs = node_costs(digit_onnx) if digit_onnx is not None else None
except NotImplementedError:
    costs = None
if costs is not None:
    prof = profile(cnn, x1)
    graph_params = sum(p for p, _ in costs.values())
    graph_macs = sum(m for _, m in costs.values())
    bn_channels = sum(m.num_features for m in cnn.modules() if isinstance(m, nn.BatchNorm2d))
    print(f"graph: {graph_params:,d} parameters, {graph_macs:,d} MACs")
    print(f"torch: {prof.params:,d} parameters, {prof.macs:,d} MACs "
          f"({2 * bn_channels:,d} of the parameters are BatchNorm's scale and shift)")
    print(f"the graph's conv biases: {bn_channels:,d}; its shape initializers: "
          f"{graph_params - prof.params + bn_channels:,d} numbers")
    measured["graph_params"], measured["profile_params"] = graph_params, prof.params
    measured["graph_macs"], measured["profile_macs"] = graph_macs, prof.macs
    names = [n for n, (_, m) in costs.items() if m]
    fig, ax = plt.subplots(figsize=(6.5, 2.8))
    ax.barh(names, [costs[n][1] / 1e3 for n in names], color="tab:blue")
    ax.invert_yaxis()
    ax.set_xlabel("thousand MACs (batch 1)")
    ax.set_title("Where the digit CNN's arithmetic is, read off the ONNX graph")
    plt.tight_layout()
    plt.show()
else:
    print("Finish node_costs to compare the graph's totals with the profiler's.")

# %% [markdown]
# ## Q2. What the engine does to a graph (3 points)
#
# An engine's first job is to rewrite the graph. The simplest rewrite, and the one
# every engine makes, folds a BatchNorm into the convolution before it: in
# inference BatchNorm is a fixed per-channel affine map,
# $\mathrm{BN}(y) = \gamma (y - \mu) / \sqrt{\sigma^2 + \epsilon} + \beta$, so for
# a convolution $y = w * x + b$,
#
# $$w' = w \cdot \frac{\gamma}{\sqrt{\sigma^2 + \epsilon}}, \qquad
#   b' = (b - \mu) \frac{\gamma}{\sqrt{\sigma^2 + \epsilon}} + \beta,$$
#
# each per output channel ($b = 0$ when the Conv has no bias). Lab 05 folded
# PyTorch modules; here you fold an ONNX graph.
#
# Write `fold_batchnorm(model)`: it takes a model's bytes and returns the bytes of
# a model in which every `BatchNormalization` whose input is a `Conv`'s output,
# and the only use of that output (a graph output is a use too), is folded into
# that `Conv` (new weight and bias initializers; the BatchNorm removed and its
# output's consumers reading the Conv).
# A BatchNorm after anything else stays, and so does one after a Conv whose output
# is used elsewhere too. Read `epsilon` from the node (default `1e-5`), and the
# four parameters (inputs 1 to 4: scale, bias, mean, variance) from the
# initializers. Use `onnx` and NumPy (`numpy_helper.to_array` / `from_array`);
# ONNX Runtime and onnxscript are refused during the check: they would do it for
# you.

# %% nbgrader={"grade": false, "grade_id": "q2_fold_batchnorm", "locked": false, "schema_version": 3, "solution": true, "task": false}
def fold_batchnorm(model):
    """The model's bytes with each Conv -> BatchNormalization pair folded into one Conv."""
    ### BEGIN SOLUTION
    proto = onnx.load_from_string(model)
    g = proto.graph
    inits = {i.name: i for i in g.initializer}
    uses = {}
    for node in g.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    outputs = {o.name for o in g.output}
    producer = {out: node for node in g.node for out in node.output}
    kept = []
    for node in g.node:
        conv = producer.get(node.input[0]) if node.op_type == "BatchNormalization" else None
        if (conv is None or conv.op_type != "Conv" or uses[conv.output[0]] != 1
                or conv.output[0] in outputs
                or not all(i in inits for i in [*node.input[1:5], *conv.input[1:]])):
            kept.append(node)
            continue
        scale, beta, mean, var = (numpy_helper.to_array(inits[i]).astype(np.float64)
                                  for i in node.input[1:5])
        eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        k = scale / np.sqrt(var + eps)                                 # (Cout,)
        w = numpy_helper.to_array(inits[conv.input[1]]).astype(np.float64)
        b = (numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64)
             if len(conv.input) > 2 and conv.input[2] else np.zeros(len(k)))
        new_w = numpy_helper.from_array((w * k.reshape(-1, 1, 1, 1)).astype(np.float32),
                                        f"{conv.name}_folded_w")
        new_b = numpy_helper.from_array(((b - mean) * k + beta).astype(np.float32),
                                        f"{conv.name}_folded_b")
        g.initializer.extend([new_w, new_b])
        del conv.input[1:]
        conv.input.extend([new_w.name, new_b.name])
        conv.output[0] = node.output[0]  # the BatchNorm's consumers now read the Conv
    del g.node[:]
    g.node.extend(kept)
    used = {i for n in g.node for i in n.input}
    alive = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(alive)
    return proto.SerializeToString()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q2_fold_batchnorm_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q2: fold_batchnorm folds every foldable BatchNormalization and keeps the outputs."""
from autograde.checks.lab08_porting import check_fold_batchnorm

check_fold_batchnorm(fold_batchnorm)
### BEGIN HIDDEN TESTS
check_fold_batchnorm(fold_batchnorm, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# Now the engine's turn. `digit_onnx` has no BatchNorm left to fold (the exporter
# folded them), so we export a twin with the exporter's own optimisation off
# (`optimize=False`), after giving each convolution a zero bias so that the graph
# keeps it as an initializer. Then we count the node types of that graph, of your
# fold, and of the graph ONNX Runtime builds at each optimisation level
# (`engines.optimised` saves it), and time each level in turns at batch 1.

# %%
twin = copy.deepcopy(cnn)
for m in twin.modules():
    if isinstance(m, nn.Conv2d) and m.bias is None:
        m.bias = nn.Parameter(torch.zeros(m.out_channels))
with engines.quiet():
    raw_onnx = torch.onnx.export(twin, (x1,), dynamo=True, optimize=False,
                                 input_names=["image"], output_names=["logits"],
                                 dynamic_shapes={"x": {0: torch.export.Dim("batch")}}
                                 ).model_proto.SerializeToString()
graphs = {"exported": raw_onnx}
try:
    graphs["your fold"] = fold_batchnorm(raw_onnx)
except NotImplementedError:
    print("Finish Q2 to see your fold beside the engine's.")
graphs |= {f"ORT {level}": engines.optimised(raw_onnx, level) for level in engines.LEVELS}
kinds = ["BatchNormalization", "Conv", "Relu", "FusedConv", "ReorderInput", "ReorderOutput"]
print(f"{'':<14}" + "".join(f"{k[:13]:>14}" for k in kinds) + f"{'all nodes':>11}")
for name, g in graphs.items():
    counts = engines.op_counts(g)
    print(f"{name:<14}" + "".join(f"{counts[k]:>14}" for k in kinds)
          + f"{sum(counts.values()):>11}")
levels = {level: (engines.Engine(raw_onnx, level), x1) for level in engines.LEVELS}
timed = measure_in_turns(levels, warmup=20, repeats=100 if FAST else 400, num_threads=1)
measured["level_us"] = {k: round(v.median * 1e6, 1) for k, v in timed.items()}
for level, t in timed.items():
    print(f"{level:<9} {t.median * 1e6:7.1f} µs")

# %% [markdown]
# The digit CNN is built from the layers of 2015. Mobile networks add what engines
# work hardest on: **depthwise** convolutions, **residual adds** and **hard-swish**.
# Here is a small one: a hard-swish stem and three of MobileNetV2's inverted
# residual blocks (`InvertedResidual`, Lab 03; their ReLU6 exports as `Clip`),
# untrained, since what the engine does to a graph does not depend on its weights.
# It goes through the same levels, timed in turns with PyTorch running it.

# %%
torch.manual_seed(0)
mobile = nn.Sequential(*conv_norm_act(1, 16, 3, activation=nn.Hardswish),
                       InvertedResidual(16, 16, 1, 4), InvertedResidual(16, 24, 2, 4),
                       InvertedResidual(24, 24, 1, 4), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                       nn.Linear(24, 10)).eval()                          # (N, 10)
with engines.quiet():
    mobile_onnx = torch.onnx.export(mobile, (x1,), dynamo=True, input_names=["image"],
                                    output_names=["logits"],
                                    dynamic_shapes={"input": {0: torch.export.Dim("batch")}}
                                    ).model_proto.SerializeToString()
mobile_graphs = {f"ORT {level}": engines.optimised(mobile_onnx, level)
                 for level in engines.LEVELS}
kinds = ["Conv", "FusedConv", "Clip", "HardSwish", "HardSigmoid", "Mul", "Add",
         "ReorderOutput"]
print(f"{'':<14}" + "".join(f"{k:>14}" for k in kinds) + f"{'all nodes':>11}")
for name, g in {"exported": mobile_onnx, **mobile_graphs}.items():
    counts = engines.op_counts(g)
    print(f"{name:<14}" + "".join(f"{counts[k]:>14}" for k in kinds)
          + f"{sum(counts.values()):>11}")
mobile_timed = measure_in_turns(
    {"torch": (mobile, x1)} | {level: (engines.Engine(mobile_onnx, level), x1)
                               for level in engines.LEVELS},
    warmup=20, repeats=100 if FAST else 300, num_threads=1)
measured["mobile_us"] = {k: round(v.median * 1e6, 1) for k, v in mobile_timed.items()}
try:
    mobile_costs = node_costs(mobile_onnx)
    depthwise = [n.name for n in onnx.load_from_string(mobile_onnx).graph.node
                 if n.op_type == "Conv" and any(a.name == "group" and a.i > 1
                                                for a in n.attribute)]
    share = sum(mobile_costs[n][1] for n in depthwise) / sum(m for _, m in mobile_costs.values())
    print(f"{len(depthwise)} depthwise convolutions: {share:.0%} of the network's MACs")
except NotImplementedError:
    print("Finish Q1's node_costs to see the depthwise convolutions' share of the MACs.")
fig, axes = plt.subplots(1, 2, figsize=(9, 2.8))
for ax, (title, times) in zip(axes, [("digit CNN", timed), ("mobile network", mobile_timed)],
                              strict=True):
    names = [k for k in times if k != "torch"]
    ax.bar(names, [times[k].median * 1e6 for k in names], color="tab:purple")
    ax.set_title(f"{title}, batch 1, one thread")
axes[0].set_ylabel("µs per image (median)")
plt.tight_layout()
plt.show()
for level, t in mobile_timed.items():
    print(f"{level:<9} {t.median * 1e6:7.1f} µs")

# %% [markdown]
# Read the tables: `basic` removes the BatchNorms (your fold, done by the engine),
# `extended` fuses each Conv with the ReLU after it into one `FusedConv` kernel,
# and `all` rewrites the convolutions for a blocked memory layout (NCHWc, hence the
# `Reorder` nodes at its edges), which is specific to this CPU: a graph saved at
# `all` may not run on another machine, which is why engines save `extended`
# graphs and redo the rest on the device. On the mobile network, `extended` fuses
# the ReLU6s (`Clip`) but leaves the hard-swish (split into `HardSigmoid` and
# `Mul`) and the residual `Add`s as nodes of their own; `all` takes every one of
# them into its convolutions. Which level paid for itself, on which network, is in
# the charts: compare them with what the node counts led you to expect.

# %% [markdown]
# ## Q3. int8 in the engine (4 points)
#
# ONNX Runtime quantizes a float graph itself
# (`onnxruntime.quantization.quantize_static`): it runs the model on a
# **calibration set** that you feed it through a `CalibrationDataReader`, picks
# each activation's grid from what it saw, and writes a **QDQ** graph, in which
# every quantized tensor passes through a `QuantizeLinear` / `DequantizeLinear`
# pair that the engine later fuses into integer kernels.
#
# Write `quantize_onnx(model, images, method)`: it takes a float model's bytes,
# calibration images (a tensor `(N, 1, 8, 8)`) and a calibration method name
# (`"MinMax"`, `"Entropy"` or `"Percentile"`), and returns the int8 model's bytes.
# Write a subclass of `quantization.CalibrationDataReader` whose `get_next()`
# returns `{input name: a NumPy batch}` for the images **in order, in batches of
# 16** and then `None` (the sets here hold whole batches: the histogram-based
# methods need batches of one size). `quantize_static` reads and
# writes files: use a temporary folder. Use QDQ format, `per_channel=True`,
# `QuantType.QInt8` weights and `QuantType.QUInt8` activations, and the method as
# `quantization.CalibrationMethod[method]`.
#
# Then quantize `digit_onnx` as `int8_onnx`, calibrated with MinMax on
# `calibration` (training images: the test images judge the model, and a model
# calibrated on them has seen them).

# %% nbgrader={"grade": false, "grade_id": "q3_quantize", "locked": false, "schema_version": 3, "solution": true, "task": false}
def quantize_onnx(model, images, method):
    """ONNX Runtime's static int8 quantization of `model`, calibrated on `images`."""
    ### BEGIN SOLUTION
    name = onnx.load_from_string(model).graph.input[0].name

    class Reader(quantization.CalibrationDataReader):
        def __init__(self):
            self.batches = iter([images[i:i + 16].numpy() for i in range(0, len(images), 16)])

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {name: batch}

    with tempfile.TemporaryDirectory() as d, engines.quiet():
        src, dst = Path(d) / "fp32.onnx", Path(d) / "int8.onnx"
        src.write_bytes(model)
        quantization.quantize_static(
            str(src), str(dst), Reader(), quant_format=quantization.QuantFormat.QDQ,
            per_channel=True, weight_type=quantization.QuantType.QInt8,
            activation_type=quantization.QuantType.QUInt8,
            calibrate_method=quantization.CalibrationMethod[method])
        return dst.read_bytes()
    ### END SOLUTION


int8_onnx = None
### BEGIN SOLUTION
int8_onnx = quantize_onnx(digit_onnx, calibration, "MinMax")
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "q3_quantize_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
"""Q3: quantize_onnx calibrates as asked; int8_onnx is digit_onnx calibrated on calibration."""
from autograde.checks.lab08_porting import check_int8_model, check_quantize

check_quantize(quantize_onnx)
check_int8_model(int8_onnx, digit_onnx)
### BEGIN HIDDEN TESTS
check_quantize(quantize_onnx, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# The three calibrations against Lab 05's own int8 network (efflib's integer
# model, run by PyTorch's int8 kernels), on the same calibration set: test
# accuracy, bytes stored and latency at batch 1, all timed in turns.

# %%
engines_int8, table3 = {}, {}
if int8_onnx is not None:
    for method in tqdm(["MinMax", "Entropy", "Percentile"], desc="calibrations"):
        engines_int8[f"ORT {method}"] = (int8_onnx if method == "MinMax"
                                         else quantize_onnx(digit_onnx, calibration, method))
rows = {"ORT fp32": (engines.Engine(digit_onnx), len(digit_onnx))} if digit_onnx else {}
rows |= {name: (engines.Engine(m), len(m)) for name, m in engines_int8.items()}
rows["Lab 05 int8"] = (torch8, int_model.stored_bytes())
timed = measure_in_turns({n: (m, x1) for n, (m, _) in rows.items()}, warmup=20,
                         repeats=100 if FAST else 300, num_threads=1)
for name, (m, size) in rows.items():
    with torch.no_grad():
        acc = (m(test_x).argmax(1) == test_y).float().mean().item()
    table3[name] = {"accuracy": acc, "bytes": size, "us": timed[name].median * 1e6}
    print(f"{name:<15} accuracy {acc:6.1%}   {size:>8,d} bytes   "
          f"{timed[name].median * 1e6:7.1f} µs")
measured["int8_table"] = {k: {c: round(v, 4) for c, v in r.items()} for k, r in table3.items()}
if not engines_int8:
    print("Finish Q1 and Q3 to see the engine's int8 models beside Lab 05's.")
else:
    for name, m in (("fp32", digit_onnx), ("int8", int8_onnx)):
        proto = onnx.load_from_string(m)
        tensors = sum(numpy_helper.to_array(i).nbytes for i in proto.graph.initializer)
        measured[f"{name}_file"] = {"bytes": len(m), "tensors": tensors,
                                    "nodes": len(proto.graph.node)}
        print(f"{name} file: {len(m):,d} bytes, {tensors:,d} of them tensors; "
              f"{len(proto.graph.node)} nodes")

# %% [markdown]
# The int8 file is smaller than the float one but not four times smaller. Its
# tensors shrink about four times (int8 weights, with an int32 bias and a scale per
# channel); the graph around them grows, since every quantized tensor now passes
# through a `QuantizeLinear` / `DequantizeLinear` pair, and in a network this
# small the nodes and the names of things are a large share of the file. Lab 05's
# model stores only the integers and one multiplier per channel. Whether int8 is
# faster in the engine, for a network this small, is in the table: an integer
# kernel only pays for itself when there is enough arithmetic to hide the
# conversions at its edges.

# %% [markdown]
# ## Q4. The engine's integers, bit by bit (4 points)
#
# Lab 05's integer model (efflib's, the one Lab 06 ran in C) and ONNX Runtime
# compute the same int8 convolution with the same scales and zero points. Do they
# give the same integers? Here is one convolution as the engine is handed it,
# `engines.qdq_conv(...)`: `DequantizeLinear` of the uint8 input, a float `Conv`
# whose int8 weights (per output channel) and int32 bias are dequantized too, an
# optional `Relu`, and `QuantizeLinear` to uint8. ONNX Runtime fuses this pattern
# into one integer kernel.
#
# Write `engine_conv(q_x, x_scale, x_zero, q_w, w_scale, q_b, y_scale, y_zero,
# padding, relu)` that returns, as integers, **exactly** the engine's output for
# uint8 input `q_x (N, Cin, H, W)`, int8 weights `q_w (Cout, Cin, k, k)` with
# per-channel scales `w_scale (Cout,)`, int32 bias `q_b (Cout,)` (at scale
# `x_scale * w_scale`), stride 1 and `padding` on each side. Find out what the
# engine does: where it accumulates in integers, where it multiplies in float,
# how it rounds (try halves), where it saturates, what `Relu` does to the
# integers. You may compute the integer accumulator with `F.conv2d` in float64,
# which holds these sums exactly. ONNX Runtime is refused during the check.

# %% nbgrader={"grade": false, "grade_id": "q4_engine_conv", "locked": false, "schema_version": 3, "solution": true, "task": false}
def engine_conv(q_x, x_scale, x_zero, q_w, w_scale, q_b, y_scale, y_zero, padding, relu):
    """ONNX Runtime's uint8 output of one QDQ convolution, predicted exactly."""
    ### BEGIN SOLUTION
    x = q_x.double() - x_zero                                          # (N, Cin, H, W)
    acc = torch.nn.functional.conv2d(x, q_w.double(), padding=padding)  # exact in float64
    acc = acc.round().to(torch.int64) + q_b.to(torch.int64).reshape(1, -1, 1, 1)
    multiplier = (torch.tensor(x_scale, dtype=torch.float32) * w_scale.float()
                  / torch.tensor(y_scale, dtype=torch.float32))       # float32, per channel
    y = torch.round(acc.float() * multiplier.reshape(1, -1, 1, 1))     # halves to even
    y = y.to(torch.int64) + y_zero
    return y.clamp(y_zero if relu else 0, 255)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q4_engine_conv_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
"""Q4: engine_conv gives ONNX Runtime's integers exactly, halves and saturation included."""
from autograde.checks.lab08_porting import check_engine_conv

check_engine_conv(engine_conv)
### BEGIN HIDDEN TESTS
check_engine_conv(engine_conv, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# Now the first convolution of Lab 05's integer model, handed to the engine with
# its own scales and zero points. Count the output integers on which efflib (the
# arithmetic of Lab 06's C program) and the engine disagree, and check that your
# prediction matches the engine everywhere.

# %%
kind, layer = int_model.steps[0]
args = dict(q_x=int_model.quantize_input(test_x), x_scale=layer.x.scale,
            x_zero=layer.x.zero_point, q_w=layer.weight.to(torch.int8),
            w_scale=layer.w_scale.float(), q_b=layer.bias.to(torch.int32),
            y_scale=layer.y.scale, y_zero=layer.y.zero_point,
            padding=layer.conv.padding[0], relu=layer.relu)
ort_q = engines.run(engines.session(engines.qdq_conv(
    args["q_w"], args["w_scale"], args["q_b"], args["x_scale"], args["x_zero"],
    args["y_scale"], args["y_zero"], args["padding"], args["relu"])),
    args["q_x"].to(torch.uint8)).to(torch.int64)
efflib_q = layer(args["q_x"])
diff = (ort_q - efflib_q).abs()
measured["bit_diff"] = {"differ": int((diff > 0).sum()), "of": diff.numel(),
                        "max": int(diff.max())}
print(f"efflib against ONNX Runtime: {int((diff > 0).sum()):,d} of {diff.numel():,d} "
      f"integers differ, by at most {int(diff.max())}")
try:
    mine = engine_conv(**args).to(torch.int64)
    print(f"engine_conv against ONNX Runtime: {int((mine != ort_q).sum()):,d} differ")
except NotImplementedError:
    print("Finish Q4 to compare your prediction with the engine.")

# %% [markdown]
# Where the two differ, they differ by one, and rarely: a handful of integers in
# hundreds of thousands, or none. Both sides compute the same int32 accumulator;
# they part at the rescaling. efflib (and the C program of Lab 06)
# multiplies by a 31-bit fixed-point multiplier and shifts, rounding halves up,
# using integers only, which a microcontroller without a floating-point unit can
# run. The engine multiplies in float32 and rounds halves to even, which costs
# nothing on a CPU that has a float unit anyway. Neither is wrong; but a test that
# expects one engine's integers from another will fail on a handful of outputs,
# and that is why a port is checked by its accuracy and by the size of the
# differences, not by bit equality.

# %% [markdown]
# ## Q5. What does not port (3 points)
#
# Lab 07's early-exit network decides, image by image, whether to stop at its
# first classifier. In Python that decision is an `if`. An exporter traces the
# network once into a fixed graph, and a branch whose direction depends on the
# data has no place in it. Here is the network, trained as in Lab 07, and a
# direct port that exits when every image of the batch is confident:

# %% tags=["setup"]
THRESHOLD = 0.9
torch.manual_seed(0)
branchy = models.early_exit_cnn(width=8)
train.fit(branchy, loaders.train, None, epochs=6, fast_epochs=3,
          loss=lambda m, x, y: sum(nn.functional.cross_entropy(o, y) for o in m.exits(x)))
branchy = branchy.cpu().eval()


class DirectExit(nn.Module):
    """Stops at exit1 when the whole batch is confident: Python control flow."""

    def __init__(self, net, threshold):
        super().__init__()
        self.net, self.threshold = net, threshold

    def forward(self, x):
        h = self.net.block1(x)
        early = self.net.exit1(h)
        if early.softmax(1).max(1).values.min() >= self.threshold:  # depends on the data
            return early
        return self.net.head(self.net.block2(h))


try:
    with engines.quiet():
        torch.onnx.export(DirectExit(branchy, THRESHOLD), (x1,), dynamo=True)
    print("exported")
except Exception as e:  # noqa: BLE001 - show why
    first = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).splitlines()[0]  # without colour codes
    print(f"the exporter refuses it: {type(e).__name__}: {first[:150]}")

# %% [markdown]
# Rewrite it so that it exports and gives, **image by image**, exit1's logits
# where exit1's top softmax probability reaches `THRESHOLD` and the full
# network's logits otherwise: compute both classifiers and choose per image with
# `torch.where`, which is an operator (`Where`), not a branch. Export it with a
# dynamic batch dimension as `exit_onnx` (bytes).

# %% nbgrader={"grade": false, "grade_id": "q5_exit_export", "locked": false, "schema_version": 3, "solution": true, "task": false}
exit_onnx = None
### BEGIN SOLUTION
class ExportableExit(nn.Module):
    """Both classifiers, then a per-image choice: a graph with no data-dependent branch."""

    def __init__(self, net, threshold):
        super().__init__()
        self.net, self.threshold = net, threshold

    def forward(self, x):                                     # (N, 1, 8, 8)
        h = self.net.block1(x)
        early = self.net.exit1(h)                             # (N, 10)
        full = self.net.head(self.net.block2(h))              # (N, 10)
        sure = early.softmax(1).max(1, keepdim=True).values >= self.threshold  # (N, 1)
        return torch.where(sure, early, full)


with engines.quiet():
    exit_onnx = torch.onnx.export(
        ExportableExit(branchy, THRESHOLD), (x1,), dynamo=True, input_names=["image"],
        output_names=["logits"], dynamic_shapes={"x": {0: torch.export.Dim("batch")}}
    ).model_proto.SerializeToString()
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "q5_exit_export_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q5: exit_onnx gives, image by image, the early-exit network's logits."""
from autograde.checks.lab08_porting import check_exit_export

check_exit_export(exit_onnx, branchy.block1, branchy.exit1, branchy.block2, branchy.head,
                  THRESHOLD)

# %% [markdown]
# The exported graph computes both classifiers for every image, so it saves no
# arithmetic: the port kept the early exit's *answers* and lost its *savings*.
# Engines that run a graph once per input can get the savings back only with
# control-flow operators (ONNX's `If` and `Loop`), which few edge runtimes
# accelerate; the usual port splits the network into two models and lets the
# application call the second only when the first is unsure.

# %% [markdown]
# ## Q6. The deployment table (2 points)
#
# Five ways to ship the digit classifier, measured in one run: PyTorch in float32
# and in int8 (Lab 05's), ONNX Runtime in float32 and in int8 (yours), and Lab 06's
# standalone C program. For each, fill a row of `deployment` with
#
# * `disk_bytes`: the model file (PyTorch: the TorchScript file; ORT: the
#   `.onnx` bytes; C: the binary, which holds its weights);
# * `runtime_bytes`: the shared libraries the device must carry to run it
#   (`engines.library_bytes("torch")` or `("onnxruntime")`; the C binary needs
#   none beyond itself and the C library);
# * `startup_s` and `peak_mb`: a fresh process that loads the model and predicts
#   one image, timed to its exit, and its peak resident memory
#   (`engines.cold_start(argv)`);
# * `latency_ms_1`, `latency_ms_64`: the median time of one call at batch 1 and
#   64 (for C, which has no per-call overhead: a run over 64 images less a run
#   over none, its start-up, and a 64th of that for one image);
# * `accuracy` on the test images.
#
# Most of the measuring is written for you below; complete the rows.

# %% tags=["setup"]
paths = {"torch fp32": work / "cnn.pt", "torch int8": work / "cnn_int8.pt",
         "ORT fp32": work / "digits.onnx", "ORT int8": work / "digits_int8.onnx"}
with torch.no_grad(), engines.quiet():  # TorchScript: PyTorch's own deployable file
    for name, m in (("torch fp32", cnn), ("torch int8", torch8)):
        torch.jit.save(torch.jit.trace(m, x1), paths[name])
one_image = work / "one.f32"
one_image.write_bytes(x1.numpy().tobytes())
no_image = work / "none.f32"
no_image.write_bytes(b"")
batch64 = work / "batch64.f32"
batch64.write_bytes(test_x[:64].numpy().tobytes())
TORCH_START = ("import numpy, torch; torch.set_num_threads(1); "
               "m = torch.jit.load({path!r}); "
               "x = torch.from_numpy(numpy.fromfile({img!r}, numpy.float32)).reshape(1, 1, 8, 8); "
               "print(int(m(x).argmax()))")
ORT_START = ("import numpy, onnxruntime as ort; s = ort.InferenceSession({path!r}); "
             "x = numpy.fromfile({img!r}, numpy.float32).reshape(1, 1, 8, 8); "
             "print(int(s.run(None, {{'image': x}})[0].argmax()))")
program = export_c.export(int_model, (1, 8, 8))
exe = program.build("digits_int8")

# %% nbgrader={"grade": false, "grade_id": "q6_deployment", "locked": false, "schema_version": 3, "solution": true, "task": false}
deployment = None
### BEGIN SOLUTION
if int8_onnx is not None:
    paths["ORT fp32"].write_bytes(digit_onnx)
    paths["ORT int8"].write_bytes(int8_onnx)
    runners = {"torch fp32": cnn, "torch int8": torch8, "ORT fp32": engines.Engine(digit_onnx),
               "ORT int8": engines.Engine(int8_onnx)}
    at1 = measure_in_turns({n: (m, x1) for n, m in runners.items()}, warmup=10,
                           repeats=50 if FAST else 200, num_threads=1)
    at64 = measure_in_turns({n: (m, test_x[:64]) for n, m in runners.items()}, warmup=5,
                            repeats=20 if FAST else 50, num_threads=1)
    deployment = {}
    for name, m in tqdm(runners.items(), desc="cold starts"):
        code = (TORCH_START if name.startswith("torch") else ORT_START).format(
            path=str(paths[name]), img=str(one_image))
        cold = engines.cold_start(engines.python_argv(code))
        with torch.no_grad():
            acc = (m(test_x).argmax(1) == test_y).float().mean().item()
        package = "torch" if name.startswith("torch") else "onnxruntime"
        deployment[name] = {"disk_bytes": paths[name].stat().st_size,
                            "runtime_bytes": engines.library_bytes(package),
                            "startup_s": cold.seconds, "latency_ms_1": at1[name].median * 1e3,
                            "latency_ms_64": at64[name].median * 1e3,
                            "peak_mb": cold.peak_bytes / 2**20, "accuracy": acc}
    runs = {f: [engines.cold_start([exe, f]).seconds for _ in range(7)]
            for f in (no_image, one_image, batch64)}
    start, first = float(np.median(runs[no_image])), float(np.median(runs[one_image]))
    per_64 = max(float(np.median(runs[batch64])) - start, 1e-6)
    predictions, _ = program.run(exe, test_x)
    size = exe.stat().st_size
    deployment["C int8"] = {
        "disk_bytes": size, "runtime_bytes": size, "startup_s": first,
        "latency_ms_1": per_64 / 64 * 1e3, "latency_ms_64": per_64 * 1e3,
        "peak_mb": engines.cold_start([exe, one_image]).peak_bytes / 2**20,
        "accuracy": (predictions == test_y).float().mean().item()}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "q6_deployment_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
"""Q6: the deployment table holds measured values; sizes and accuracies match the models."""
from autograde.checks.lab08_porting import check_deployment

check_deployment(deployment, digit_onnx, int8_onnx, cnn)

# %% [markdown]
# **OpenVINO, where installed.** Intel's engine compiles the same `.onnx` file for
# the CPU. It is not part of `make lab` (about 250 MB); to add it, run
# `.venv/bin/python -m pip install -c constraints.txt openvino` and run this cell
# again. It adds a row to the table below (no point depends on it). Ask it for
# float32: on a CPU with bfloat16 instructions its default is bfloat16, which this
# cell reports.

# %%
try:
    import openvino
except ImportError:
    openvino = None
if openvino is None or deployment is None:
    print("OpenVINO is not installed (or Q6 is not finished): no OpenVINO row.")
else:
    core = openvino.Core()
    ov_graph = core.read_model(str(paths["ORT fp32"]))
    ov_run = core.compile_model(ov_graph, "CPU", {"INFERENCE_NUM_THREADS": 1,
                                                  "INFERENCE_PRECISION_HINT": "f32"})
    default_precision = core.compile_model(ov_graph, "CPU").get_property(
        "INFERENCE_PRECISION_HINT")

    class OpenVINO(nn.Module):
        """A compiled OpenVINO model as a module, for efflib's timing."""

        def forward(self, x):  # (N, 1, 8, 8) -> (N, 10)
            return torch.from_numpy(ov_run(x.numpy())[0])

    ov_model = OpenVINO()
    at1 = measure_in_turns({"OpenVINO": (ov_model, x1)}, warmup=10, repeats=200, num_threads=1)
    at64 = measure_in_turns({"OpenVINO": (ov_model, test_x[:64])}, warmup=5, repeats=50,
                            num_threads=1)
    cold = engines.cold_start(engines.python_argv(
        "import numpy, openvino; "
        f"c = openvino.Core().compile_model({str(paths['ORT fp32'])!r}, 'CPU'); "
        f"x = numpy.fromfile({str(one_image)!r}, numpy.float32).reshape(1, 1, 8, 8); "
        "print(int(c(x)[0].argmax()))"))
    deployment["OpenVINO fp32"] = {
        "disk_bytes": len(digit_onnx), "runtime_bytes": engines.library_bytes("openvino"),
        "startup_s": cold.seconds, "latency_ms_1": at1["OpenVINO"].median * 1e3,
        "latency_ms_64": at64["OpenVINO"].median * 1e3, "peak_mb": cold.peak_bytes / 2**20,
        "accuracy": (ov_model(test_x).argmax(1) == test_y).float().mean().item()}
    print(f"OpenVINO {openvino.__version__}: its default precision on this CPU is "
          f"{default_precision}; the row is at f32")

# %% [markdown]
# The table, and the same rows as a chart: what a device must hold (model plus
# runtime, log scale) against the latency of one image. A row is on the **Pareto
# front** when no other row is both smaller and faster.

# %%
if deployment is not None:
    cols = list(next(iter(deployment.values())))
    print(f"{'':<14}" + "".join(f"{c:>15}" for c in cols))
    for name, row in deployment.items():
        print(f"{name:<14}" + "".join(f"{row[c]:>15,.4g}" for c in cols))
    measured["deployment"] = {n: {c: round(float(v), 5) for c, v in r.items()}
                              for n, r in deployment.items()}
    held = {n: (r["disk_bytes"] + (r["runtime_bytes"] if n != "C int8" else 0)) / 2**20
            for n, r in deployment.items()}
    front = [n for n in deployment
             if not any(held[o] <= held[n] and deployment[o]["latency_ms_1"]
                        <= deployment[n]["latency_ms_1"] and o != n for o in deployment)]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for (name, row), marker in zip(deployment.items(), "osD^vP", strict=False):
        ax.scatter(held[name], row["latency_ms_1"], s=70, marker=marker, zorder=3,
                   color="tab:red" if name in front else "tab:gray",
                   label=f"{name}: {row['accuracy']:.1%}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("MB the device holds (model + runtime)")
    ax.set_ylabel("ms per image, batch 1")
    ax.set_title("Deployment options (red: on the Pareto front)")
    ax.margins(x=0.3, y=0.3)
    for axis in (ax.xaxis, ax.yaxis):  # 0.03, not 3 x 10^-2
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.legend(title="test accuracy", loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
    plt.tight_layout()
    plt.show()
    print("on the Pareto front:", ", ".join(front))
else:
    print("Finish Q3 and Q6 to see the table.")

# %% [markdown]
# ## Q7. Reflection (2 points, graded by hand)
#
# You are shipping this classifier to three devices: a Linux gateway with a
# 4-core ARM CPU and 1 GB of memory, a phone app, and a microcontroller with
# 256 kB of flash and no floating-point unit. For each, which of the five
# options (or which engine you would look for), and why? Use your table's
# numbers, and say what Q4's difference in rounding would mean for the
# microcontroller (three to six sentences).

# %% [markdown] nbgrader={"grade": true, "grade_id": "q7_reflection", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# On the gateway, ONNX Runtime is the natural choice: its runtime is tens of
# megabytes, which 1 GB of memory absorbs, it starts several times faster than
# PyTorch without PyTorch's hundreds of megabytes, and it runs the same `.onnx` file at
# whatever optimisation level suits the ARM CPU (saved at `extended`, so the
# layout rewrite happens on the device). The phone wants the same kind of engine
# in its mobile build (ONNX Runtime Mobile, or TFLite, MNN or ncnn), whose
# runtime is a few megabytes and which uses the phone's accelerators. The
# microcontroller can hold only the C program: its binary holds the weights and
# the code in tens of kilobytes, needs no runtime, and uses integers only. Q4
# matters there: a float-rescaling engine's integers would not be reproducible on
# a device without a float unit, so the reference for testing the port must be
# the integer-only arithmetic (fixed-point multipliers, halves rounded up) that
# the C program uses, and a few outputs that differ by one from ONNX Runtime's are
# expected, not a bug.
# ### END SOLUTION
