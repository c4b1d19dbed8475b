# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 02: Efficiency metrics
#
# *Efficient Deep Learning for Edge Deployment*
#
# "Efficient" means nothing until it is measured. This lab builds the
# vocabulary of lecture 02 into code: how many **parameters** a layer has and
# how many **bytes** they take, how many **multiply-accumulates (MACs)** it
# performs, how many **activations** must be held in memory (in total and at
# the peak), and what **latency**, **throughput** and **energy** the machine in
# front of you actually delivers. You will see why none of these numbers
# predicts the others.
#
# **How this lab is graded.** Each `## Q…` heading gives its points. Write your
# code where it says `YOUR CODE HERE` and delete the `raise NotImplementedError()`.
# The cell after each answer runs a *visible* check; the grader adds *hidden*
# checks with random cases. Formula questions want the formula: an answer that
# builds the layer and counts its tensors, or calls efflib's profiler, is
# refused with a message saying so. Q11 is read by a person.
#
# Notation (lecture 02): batch $n$, input channels $c_i$, output channels $c_o$,
# kernel $k_h \times k_w$, output size $h_o \times w_o$, groups $g$.

# %%
import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import efflib
from efflib import models, plots
from efflib.latency import fast_mode, threads_for_load

torch.manual_seed(0)
FAST = fast_mode()  # True while the grader runs this notebook: fewer timing repeats
# one thread under the grader (notebooks run side by side) or on a busy machine
torch.set_num_threads(1 if FAST else threads_for_load())
IMAGE = torch.randn(1, 3, 224, 224)
print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fast mode {FAST}")

# %% [markdown]
# ## Q1. Parameters (4 points)
#
# A **linear** layer holds a weight for every (input, output) pair and one bias
# per output: $c_o \cdot c_i + c_o$.
#
# A **convolution** holds $c_o$ filters of shape $c_i \times k_h \times k_w$. With
# **groups** $g$ the input channels are split into $g$ groups and each filter sees
# only one group, so a filter has $c_i/g \cdot k_h \cdot k_w$ weights. A
# **depthwise** convolution is the extreme case $g = c_i$ (each filter sees one
# channel). Both $c_i$ and $c_o$ must be divisible by $g$.
#
# **(a)** Write `linear_params(c_in, c_out, bias=True)`.

# %% nbgrader={"grade": false, "grade_id": "q1_linear_params", "locked": false, "schema_version": 3, "solution": true, "task": false}
def linear_params(c_in, c_out, bias=True):
    """Number of parameters of nn.Linear(c_in, c_out, bias=bias) (an int)."""
    ### BEGIN SOLUTION
    return c_out * c_in + (c_out if bias else 0)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q1_linear_params_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
"""Q1a: linear_params equals nn.Linear's parameter count."""
from autograde.checks.lab02_metrics import check_linear_params

check_linear_params(linear_params)
### BEGIN HIDDEN TESTS
check_linear_params(linear_params, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# **(b)** Write `conv_params(c_in, c_out, kernel, groups=1, bias=True)`, where
# `kernel` is an int (square) or a pair `(k_h, k_w)`. Raise a `ValueError` that
# says what is wrong when `groups` does not divide both channel counts.

# %% nbgrader={"grade": false, "grade_id": "q1_conv_params", "locked": false, "schema_version": 3, "solution": true, "task": false}
def conv_params(c_in, c_out, kernel, groups=1, bias=True):
    """Number of parameters of nn.Conv2d(c_in, c_out, kernel, groups=groups, bias=bias)."""
    ### BEGIN SOLUTION
    if c_in % groups or c_out % groups:
        raise ValueError(f"groups={groups} must divide c_in={c_in} and c_out={c_out}")
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    return c_out * (c_in // groups) * kh * kw + (c_out if bias else 0)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q1_conv_params_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q1b: conv_params equals nn.Conv2d's count (grouped, depthwise, rectangular) and checks groups."""
from autograde.checks.lab02_metrics import check_conv_params

check_conv_params(conv_params)
### BEGIN HIDDEN TESTS
check_conv_params(conv_params, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Q2. Model size (2 points)
#
# Model size = #parameters x bit width. Write `model_size_bytes(num_params, bits)`
# returning whole bytes (a partly used last byte still has to be stored), then
# set `alexnet_fp32_mb` to the size of torchvision's AlexNet (61,100,840
# parameters) at 32 bits in MB ($10^6$ bytes).
#
# *A slip to avoid:* the lecture slide says $61\text{M} \times 4$ bytes $= 224$ MB.
# It is about $244$ MB; at 8 bits, 61 MB. Give `alexnet_fp32_mb` to within 0.1%
# (244.4, not a rounded 244): keep the decimals of the division.

# %% nbgrader={"grade": false, "grade_id": "q2_model_size", "locked": false, "schema_version": 3, "solution": true, "task": false}
def model_size_bytes(num_params, bits):
    """Bytes needed to store num_params values of `bits` bits each (an int)."""
    ### BEGIN SOLUTION
    return (num_params * bits + 7) // 8
    ### END SOLUTION


alexnet_fp32_mb = None
### BEGIN SOLUTION
alexnet_fp32_mb = model_size_bytes(61_100_840, 32) / 1e6
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "q2_model_size_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
"""Q2: model_size_bytes rounds up to whole bytes; AlexNet at 32 bits is about 244 MB."""
from autograde.checks.lab02_metrics import check_alexnet_mb, check_model_size_bytes

check_model_size_bytes(model_size_bytes)
check_alexnet_mb(alexnet_fp32_mb)
### BEGIN HIDDEN TESTS
check_model_size_bytes(model_size_bytes, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# How big are the lecture's networks at each bit width? The plot uses your
# function and efflib's models (parameter counts equal torchvision's). The
# dashed line is 1 MB, a generous flash budget for a microcontroller.

# %%
ZOO = {"AlexNet": models.alexnet, "VGG-16": models.vgg16, "ResNet-50": models.resnet50,
       "MobileNetV2": models.mobilenet_v2, "ShuffleNetV2 1x": models.shufflenet_v2}
with torch.device("meta"):  # shapes only: no memory, no time spent on random weights
    zoo = {name: make() for name, make in ZOO.items()}
zoo_params = {name: sum(p.numel() for p in m.parameters()) for name, m in zoo.items()}
sizes = {bits: [plots.attempt(model_size_bytes, n, bits) for n in zoo_params.values()]
         for bits in (32, 16, 8, 4)}
if any(v is None for v in sizes[32]):
    print("Finish Q2 to see the model-size chart.")
else:
    fig, ax = plt.subplots(figsize=(8, 3.5))
    width = 0.2
    for i, (bits, values) in enumerate(sizes.items()):
        xs = [j + (i - 1.5) * width for j in range(len(zoo))]
        ax.bar(xs, [v / 1e6 for v in values], width, label=f"{bits}-bit")
    ax.axhline(1, color="k", ls="--", lw=1)
    ax.set_xticks(range(len(zoo)), list(zoo))
    ax.set_yscale("log")
    ax.set_ylabel("model size (MB)")
    ax.legend()
    ax.set_title("Parameters x bit width")
    plt.show()

# %% [markdown]
# ## Q3. MACs (4 points)
#
# A multiply-accumulate $a \leftarrow a + b \cdot c$ is the unit of work of
# linear and convolution layers (bias additions are not counted, by the
# lecture's convention).
#
# * linear: every output meets every input once: $c_o \cdot c_i$ MACs per sample.
# * convolution: every output element is one filter applied to one window:
#   $c_o \cdot h_o \cdot w_o \cdot (c_i/g) \cdot k_h \cdot k_w$ MACs per sample.
#
# Write both, for a batch of `batch` samples.

# %% nbgrader={"grade": false, "grade_id": "q3_macs", "locked": false, "schema_version": 3, "solution": true, "task": false}
def linear_macs(c_in, c_out, batch=1):
    """MACs of nn.Linear(c_in, c_out) on a batch (an int)."""
    ### BEGIN SOLUTION
    return batch * c_out * c_in
    ### END SOLUTION


def conv_macs(c_in, c_out, kernel, h_out, w_out, groups=1, batch=1):
    """MACs of a Conv2d producing (batch, c_out, h_out, w_out); kernel int or (k_h, k_w)."""
    ### BEGIN SOLUTION
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    return batch * c_out * h_out * w_out * (c_in // groups) * kh * kw
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q3_linear_macs_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
"""Q3a: linear_macs equals FlopCounterMode's count / 2."""
from autograde.checks.lab02_metrics import check_linear_macs

check_linear_macs(linear_macs)
### BEGIN HIDDEN TESTS
check_linear_macs(linear_macs, hidden=True)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "q3_conv_macs_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q3b: conv_macs equals FlopCounterMode's count / 2, grouped and rectangular kernels too."""
from autograde.checks.lab02_metrics import check_conv_macs

check_conv_macs(conv_macs)
### BEGIN HIDDEN TESTS
check_conv_macs(conv_macs, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Q4. Activations (3 points)
#
# Activations are the feature maps a forward pass produces. Two numbers matter:
#
# * the **total** (lecture 02): the input plus every layer's output, the memory
#   a training step keeps for the backward pass;
# * the **peak**: the most elements alive at one moment during inference, which
#   decides whether the model fits in a microcontroller's SRAM (MCUNet,
#   [arXiv:2007.10319](https://arxiv.org/abs/2007.10319)). In a plain chain a
#   layer needs its input and its output at once, and nothing older.
#
# Both functions take the list of shapes of a chain: the input's shape, then
# each layer's output shape, e.g. `[(1, 3, 32, 32), (1, 16, 32, 32), (1, 10)]`.

# %% nbgrader={"grade": false, "grade_id": "q4_activations", "locked": false, "schema_version": 3, "solution": true, "task": false}
def numel(shape):
    """Number of elements of a tensor of this shape."""
    n = 1
    for d in shape:
        n *= d
    return n


def total_activations(shapes):
    """Input plus every layer output of a chain, in elements."""
    ### BEGIN SOLUTION
    return sum(numel(s) for s in shapes)
    ### END SOLUTION


def peak_activations(shapes):
    """Most elements alive at once in a chain: the largest input + output pair."""
    ### BEGIN SOLUTION
    if len(shapes) == 1:
        return numel(shapes[0])
    return max(numel(a) + numel(b) for a, b in zip(shapes[:-1], shapes[1:], strict=True))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q4_activations_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q4: total_activations and peak_activations agree with efflib.profile on chains."""
from autograde.checks.lab02_metrics import check_activations

check_activations(total_activations, peak_activations)
### BEGIN HIDDEN TESTS
check_activations(total_activations, peak_activations, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Q5. The AlexNet table (3 points)
#
# Fill in lecture 02's AlexNet table with your functions: 96/256/384/384/256
# conv channels with conv2, conv4 and conv5 split into 2 groups (the two GPUs of
# the original), max-pools of 3x3 stride 2 after conv1, conv2 and conv5, then
# fully connected layers of 4096, 4096 and 1000. Ignore biases (the lecture's
# convention). `alexnet_table()` returns eight dicts, conv1 to fc8, each with
# `weights`, `macs` and `activations` (the layer's output elements, batch 1).
# `efflib.conv_output_size` (your Lab 01 answer) gives the spatial sizes.

# %% nbgrader={"grade": false, "grade_id": "q5_alexnet_table", "locked": false, "schema_version": 3, "solution": true, "task": false}
def alexnet_table():
    """Eight rows (conv1..fc8) of weights, MACs and output activations of lecture AlexNet."""
    ### BEGIN SOLUTION
    size = efflib.conv_output_size
    rows, c_in, h = [], 3, 224
    for c_out, k, s, p, g, pool in [(96, 11, 4, 2, 1, True), (256, 5, 1, 2, 2, True),
                                    (384, 3, 1, 1, 1, False), (384, 3, 1, 1, 2, False),
                                    (256, 3, 1, 1, 2, True)]:
        h = size(h, k, s, p)
        rows.append({"weights": conv_params(c_in, c_out, k, g, bias=False),
                     "macs": conv_macs(c_in, c_out, k, h, h, g),
                     "activations": c_out * h * h})
        c_in, h = c_out, size(h, 3, 2) if pool else h
    features = c_in * h * h
    for c_out in (4096, 4096, 1000):
        rows.append({"weights": linear_params(features, c_out, bias=False),
                     "macs": linear_macs(features, c_out), "activations": c_out})
        features = c_out
    return rows
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q5_alexnet_table_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q5: every row of alexnet_table equals efflib.profile of the lecture AlexNet."""
from autograde.checks.lab02_metrics import check_alexnet_table

check_alexnet_table(alexnet_table)

# %% [markdown]
# The table, with totals: the lecture's 60,954,656 weights and 724,406,816 MACs.
# Where do the weights live, and where does the work happen?

# %%
table = plots.attempt(alexnet_table)
names = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
if table is None:
    print("Finish Q5 to see the AlexNet table.")
else:
    print(f"{'layer':6s} {'weights':>12s} {'MACs':>13s} {'activations':>12s}")
    for name, row in zip(names, table, strict=True):
        print(f"{name:6s} {row['weights']:>12,d} {row['macs']:>13,d} {row['activations']:>12,d}")
    print(f"{'total':6s} {sum(r['weights'] for r in table):>12,d} "
          f"{sum(r['macs'] for r in table):>13,d}")
    fig, ax = plt.subplots(figsize=(8, 3.2))
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [r["weights"] / 1e6 for r in table], 0.4, label="weights (M)")
    ax.bar([x + 0.2 for x in xs], [r["macs"] / 1e6 for r in table], 0.4, label="MACs (M)")
    ax.set_xticks(list(xs), names)
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("AlexNet: convs do the work, fully connected layers hold the weights")
    plt.show()

# %% [markdown]
# ## Q6. FLOP, FLOPS and OP (2 points)
#
# Three names that are easy to confuse:
#
# * **FLOP** (plural FLOPs): a count of floating-point operations. One MAC is a
#   multiply and an add, so FLOPs = 2 x MACs: AlexNet needs 1.45 GFLOPs.
#   Beware: many tables (torchvision's "GFLOPS" column, the ShuffleNet V2 paper's
#   "FLOPs") actually list MACs.
# * **FLOPS**: floating-point operations *per second*, a rate of the hardware.
# * **OP / OPS**: the same counts and rates for operations that are not floating
#   point (int8 after quantisation, binary).
#
# Write `achieved_gflops(macs, seconds)`: the rate, in GFLOPS ($10^9$ FLOP/s), at
# which a model with `macs` MACs that ran in `seconds` computed.

# %% nbgrader={"grade": false, "grade_id": "q6_gflops", "locked": false, "schema_version": 3, "solution": true, "task": false}
def achieved_gflops(macs, seconds):
    """Billions of floating-point operations per second achieved (a float)."""
    ### BEGIN SOLUTION
    return 2 * macs / seconds / 1e9
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q6_gflops_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
"""Q6: achieved_gflops converts MACs and seconds into GFLOPS."""
from autograde.checks.lab02_metrics import check_achieved_gflops

check_achieved_gflops(achieved_gflops)
### BEGIN HIDDEN TESTS
check_achieved_gflops(achieved_gflops, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Q7. A counter of your own (4 points)
#
# Counting by hand does not scale to ResNet-50. Forward hooks let you watch a
# model run: `module.register_forward_hook(fn)` calls `fn(module, inputs,
# output)` after every call of that module and returns a handle whose
# `.remove()` takes the hook off again.
#
# Write `count_macs_with_hooks(model, x)`: run `model(x)` once with a hook on
# every `nn.Conv2d` and `nn.Linear`, return the total MACs (bias ignored,
# groups respected, the whole batch), and remove every hook before returning,
# even if the model raises.

# %% nbgrader={"grade": false, "grade_id": "q7_hook_counter", "locked": false, "schema_version": 3, "solution": true, "task": false}
def count_macs_with_hooks(model, x):
    """MACs of the Conv2d and Linear modules in one forward pass, counted with hooks."""
    ### BEGIN SOLUTION
    total = 0

    def conv_hook(m, inputs, out):
        nonlocal total
        kh, kw = m.kernel_size
        total += out.numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m, inputs, out):
        nonlocal total
        total += out.numel() * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return total
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q7_hook_counter_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
"""Q7: count_macs_with_hooks counts module MACs only and leaves no hook behind."""
from autograde.checks.lab02_metrics import check_hook_counter

check_hook_counter(count_macs_with_hooks)
### BEGIN HIDDEN TESTS
check_hook_counter(count_macs_with_hooks, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# Now compare three counters on a block that mixes modules with functional
# code, as attention layers and custom blocks do: your hooks, PyTorch's
# `FlopCounterMode` (dispatch level, conv and matmul only) and `efflib.profile`
# (dispatch level, with elementwise work kept in its own column).

# %%
class MixedBlock(nn.Module):
    """A conv, BatchNorm, a residual add and a functional attention-style matmul."""

    def __init__(self, c=32):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, c)

    def forward(self, x):                       # (N, C, H, W)
        y = x + F.relu(self.bn(self.conv(x)))   # residual add
        t = y.flatten(2).transpose(1, 2)        # (N, HW, C) tokens
        scores = t @ t.transpose(1, 2)          # (N, HW, HW): no module, no hook
        return self.fc(scores.softmax(-1) @ t)  # (N, HW, C)


block, xb = MixedBlock().eval(), torch.randn(1, 32, 16, 16)
with torch.no_grad(), FlopCounterMode(display=False) as fc_mode:
    block(xb)
prof = efflib.profile(block, xb)
with torch.no_grad():
    mine = plots.attempt(count_macs_with_hooks, block, xb)
print(f"your hooks        {mine if mine is None else f'{mine:,d}'} MACs")
print(f"FlopCounterMode   {fc_mode.get_total_flops() // 2:,d} MACs")
print(f"efflib.profile    {prof.macs:,d} MACs + {prof.elementwise_ops:,d} elementwise ops")
print(prof)

# %% [markdown]
# Hooks only see modules: the two matmuls, which here cost more than the conv,
# are invisible to them (and to hook-based tools such as thop and ptflops).
# `FlopCounterMode` sees them but ignores BatchNorm, ReLU, softmax and the
# residual add; those are cheap in MACs but not in memory traffic. Counting at
# the dispatch level and keeping elementwise work in its own column, as efflib
# does, loses neither.
#
# ## Q8. Latency and throughput (2 points)
#
# **Latency** is how long one input waits for its answer; **throughput** is how
# many inputs are finished per second. Lecture 02 compares two designs:
#
# | | latency | throughput |
# |---|---|---|
# | design 1 | 50 ms | 20 images/s |
# | design 2 | 100 ms | 40 images/s |
#
# Write `throughput(batch, latency_seconds)` for a system that finishes a batch
# of `batch` inputs every `latency_seconds`, and set `design2_batch` to the
# number of images design 2 must work on at once.

# %% nbgrader={"grade": false, "grade_id": "q8_throughput", "locked": false, "schema_version": 3, "solution": true, "task": false}
def throughput(batch, latency_seconds):
    """Inputs finished per second (a float)."""
    ### BEGIN SOLUTION
    return batch / latency_seconds
    ### END SOLUTION


design2_batch = None
### BEGIN SOLUTION
design2_batch = 4  # 40 images/s x 0.1 s
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "q8_throughput_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
"""Q8: throughput is batch / latency, and design 2 processes several images at once."""
from autograde.checks.lab02_metrics import check_throughput

check_throughput(throughput, design2_batch)

# %% [markdown]
# Measured on this machine: MobileNetV2's latency and throughput as the batch
# grows (`efflib.measure_throughput`, median of several runs after warm-up,
# with the spread as error bars). Larger batches keep the cores busier, so
# throughput rises until the machine is saturated; every input of the batch
# waits for the whole batch, so latency rises too.

# %%
mbv2 = models.mobilenet_v2().eval()
batches = [1, 2, 4, 8] if FAST else [1, 2, 4, 8, 16, 32]
sweep = efflib.measure_throughput(mbv2, IMAGE, batches, warmup=1 if FAST else 3,
                                  repeats=3 if FAST else 10, budget_s=0.5 if FAST else 2.0)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
ax1.errorbar(batches, [r.median * 1e3 for r in sweep],
             yerr=[[(r.median - r.q25) * 1e3 for r in sweep],
                   [(r.q75 - r.median) * 1e3 for r in sweep]], marker="o", capsize=3)
ax1.set(xscale="log", xlabel="batch size", ylabel="latency per batch (ms)", title="Latency")
plots.plain_log_axis(ax1, "x")  # batch sizes: plain numbers, not 3x10^0
mine = [plots.attempt(throughput, r.batch, r.median) for r in sweep]
ax2.plot(batches, [r.throughput for r in sweep], "o-", label="measured")
if None not in mine:
    ax2.plot(batches, mine, "x", color="tab:orange", ms=9, label="your throughput()")
ax2.set(xscale="log", xlabel="batch size", ylabel="images / s", title="Throughput")
plots.plain_log_axis(ax2, "x")
ax2.legend()
fig.suptitle(f"MobileNetV2 on {sweep[0].threads} CPU threads")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Q9. The roofline (3 points)
#
# A layer cannot finish faster than its arithmetic allows, nor faster than its
# data can be moved: latency $\approx \max(T_\text{compute}, T_\text{memory})$ with
# $T_\text{compute}$ = FLOPs / peak FLOP/s and $T_\text{memory}$ = bytes moved /
# bandwidth. The ratio FLOPs / bytes is the layer's **arithmetic intensity**;
# below the machine's *ridge point* (peak / bandwidth) a layer is memory-bound.
#
# Write `arithmetic_intensity(macs, nbytes)` (FLOP per byte) and
# `roofline_seconds(flops, nbytes, peak_flops, bandwidth)` with the peak in
# FLOP/s and the bandwidth in bytes/s.

# %% nbgrader={"grade": false, "grade_id": "q9_roofline", "locked": false, "schema_version": 3, "solution": true, "task": false}
def arithmetic_intensity(macs, nbytes):
    """FLOPs per byte moved (a float)."""
    ### BEGIN SOLUTION
    return 2 * macs / nbytes
    ### END SOLUTION


def roofline_seconds(flops, nbytes, peak_flops, bandwidth):
    """Roofline estimate of the time: the slower of compute and memory (seconds)."""
    ### BEGIN SOLUTION
    return max(flops / peak_flops, nbytes / bandwidth)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q9_roofline_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q9: arithmetic_intensity and roofline_seconds on random layers and machines."""
from autograde.checks.lab02_metrics import check_roofline

check_roofline(arithmetic_intensity, roofline_seconds)
### BEGIN HIDDEN TESTS
check_roofline(arithmetic_intensity, roofline_seconds, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# Here is this machine's roofline, measured (a float32 matmul for the peak, a
# large copy for the bandwidth), with every conv and linear layer of AlexNet
# and MobileNetV2 placed on it (weights, input and output moved once each, 4
# bytes per value).

# %%
machine = efflib.measure_machine(n=512 if FAST else 1024, mbytes=64 if FAST else 256)
print(f"peak {machine.gflops:.0f} GFLOP/s, bandwidth {machine.bandwidth_gbs:.1f} GB/s, "
      f"ridge {machine.ridge:.1f} FLOP/byte, {machine.threads} threads")
alex_lecture = models.alexnet(variant="lecture").eval()
fig, ax = plt.subplots(figsize=(7, 4))
grid = [2.0**e for e in range(-4, 12)]
ax.plot(grid, [min(machine.gflops, i * machine.bandwidth_gbs) for i in grid], "k-", lw=2,
        label="roofline")
for name, model, marker in [("AlexNet", alex_lecture, "s"), ("MobileNetV2", mbv2, "o")]:
    pts = efflib.roofline_points(efflib.profile(model, IMAGE), machine)
    ax.scatter([p.intensity for p in pts], [p.flops / p.seconds / 1e9 for p in pts],
               marker=marker, alpha=0.7, label=f"{name} layers")
    mine = plots.attempt(roofline_seconds, sum(p.flops for p in pts),
                         sum(p.bytes for p in pts), machine.gflops * 1e9,
                         machine.bandwidth_gbs * 1e9)
    if mine is not None:
        print(f"{name}: roofline says at least {sum(p.seconds for p in pts) * 1e3:.2f} ms "
              f"layer by layer ({mine * 1e3:.2f} ms as one block, your function)")
ax.set(xscale="log", yscale="log", xlabel="arithmetic intensity (FLOP/byte)",
       ylabel="attainable GFLOP/s", title="Roofline of this machine")
ax.legend()
plt.show()

# %% [markdown]
# Depthwise and 1x1 layers of MobileNetV2 sit far left of the ridge: they are
# memory-bound, so their low MAC counts do not turn into proportionally short
# run times. AlexNet's fully connected layers at batch 1 are the most
# memory-bound of all (each weight is used once).
#
# ## Q10. Energy (2 points)
#
# Moving data costs far more energy than computing on it. Horowitz (ISSCC 2014)
# gives, at 45 nm and 0.9 V: 32-bit float multiply 3.7 pJ, float add 0.9 pJ,
# 32-bit SRAM read 5 pJ, 32-bit DRAM read 640 pJ; one DRAM access costs as much
# as ~170 float multiplies.
#
# Write `energy_pj(macs, dram_words, sram_words=0)`: the energy in picojoules of
# `macs` float MACs (a multiply and an add each) plus the given 32-bit memory reads.

# %% nbgrader={"grade": false, "grade_id": "q10_energy", "locked": false, "schema_version": 3, "solution": true, "task": false}
def energy_pj(macs, dram_words, sram_words=0):
    """Picojoules for the arithmetic and memory reads, by Horowitz's 45 nm table."""
    ### BEGIN SOLUTION
    return macs * (3.7 + 0.9) + dram_words * 640.0 + sram_words * 5.0
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q10_energy_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
"""Q10: energy_pj adds MAC and memory-read energies from the 45 nm table."""
from autograde.checks.lab02_metrics import check_energy

check_energy(energy_pj)
### BEGIN HIDDEN TESTS
check_energy(energy_pj, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# One AlexNet inference that reads every weight once from DRAM:

# %%
compute = plots.attempt(energy_pj, 724_406_816, 0)
memory = plots.attempt(energy_pj, 0, 60_954_656)
if compute is None:
    print("Finish Q10 to see the energy split.")
else:
    fig, ax = plt.subplots(figsize=(6, 1.8))
    ax.barh(["AlexNet"], [compute / 1e9], label="MACs")
    ax.barh(["AlexNet"], [memory / 1e9], left=[compute / 1e9], label="weights from DRAM")
    ax.set_xlabel("millijoules per image")
    ax.legend(loc="lower right")
    plt.show()
    print(f"compute {compute / 1e9:.1f} mJ, weight reads {memory / 1e9:.1f} mJ: "
          f"{memory / compute:.0f}x more for moving the weights than for using them")

# %% [markdown]
# ## Q11. MACs do not predict latency (3 points, graded by hand)
#
# The cell below measures four networks on this machine at batch 1 and plots
# their measured latency against their MACs.

# %%
contenders = {name: ZOO[name]().eval() for name in ("AlexNet", "ResNet-50", "ShuffleNetV2 1x")}
contenders["MobileNetV2"] = mbv2
results = {}
for name, model in contenders.items():
    lat = efflib.measure_latency(model, IMAGE, warmup=2 if FAST else 5,
                                 repeats=5 if FAST else 30, budget_s=0.5 if FAST else 2.0)
    results[name] = (efflib.profile(model, IMAGE).macs, lat)
    print(f"{name:16s} {results[name][0] / 1e9:5.2f} GMACs  {lat}")
fig, ax = plt.subplots(figsize=(6, 4))
for macs, lat in results.values():
    ax.errorbar(macs / 1e9, lat.median * 1e3, yerr=lat.iqr * 1e3 / 2, fmt="o", capsize=3)
ax.set(xlabel="GMACs", ylabel="latency at batch 1 (ms)", title="MACs vs measured latency")
plots.plain_log_axis(ax, "x")
plots.plain_log_axis(ax, "y")
ax.margins(0.15)
plots.label_points(ax, [m / 1e9 for m, _ in results.values()],
                   [lat.median * 1e3 for _, lat in results.values()], list(results), fontsize=8)
plt.show()
r50, mb = results["ResNet-50"], results["MobileNetV2"]
print(f"ResNet-50 / MobileNetV2: {r50[0] / mb[0]:.1f}x the MACs, "
      f"{r50[1].median / mb[1].median:.1f}x the latency")

# %% [markdown]
# In four to six sentences, using the numbers you measured above and your
# roofline: compare ResNet-50's MAC ratio to MobileNetV2 (printed above) with
# their measured latency ratio. Where the two ratios differ, name at least two
# causes and say which of your measurements supports each. Check the spread
# first: efflib warns when the machine was too busy for a timing to mean much,
# and a busy machine can reorder these networks, so rerun before concluding.
# Would you expect the gap to change on a microcontroller without a data cache,
# and why?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q11_reflection", "locked": false, "points": 3, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# A good answer quotes its own two ratios. On a quiet run of this machine
# ResNet-50 does about 13x the MACs of MobileNetV2 but measures only a few
# times slower. First, MobileNetV2's depthwise and 1x1 layers have low
# arithmetic intensity: on the roofline they sit left of the ridge, so they are
# limited by memory bandwidth and reach a small fraction of the peak GFLOP/s
# that ResNet-50's 3x3 convs reach. Second, its inverted residual blocks expand
# to 6x wider activations, so it moves many activations per MAC (its total
# activations are about half of ResNet-50's despite 13x fewer MACs), and every
# small layer pays a fixed per-operator overhead (dispatch, BatchNorm, ReLU6,
# thread synchronisation) that MACs do not count. On a cache-less
# microcontroller both networks are dominated by memory traffic, and
# MobileNetV2's advantage would depend on whether its peak activation fits in
# SRAM; its smaller weights help, but its wide expanded tensors hurt.
# ### END SOLUTION
