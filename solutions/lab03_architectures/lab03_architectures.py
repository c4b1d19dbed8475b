# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 03: CNN architectures
#
# *Efficient Deep Learning for Edge Deployment*
#
# From AlexNet to ShuffleNet V2, each famous CNN is a stack of one or two
# building blocks. In this lab you write those blocks (VGG's stage, ResNet's
# bottleneck, MobileNetV2's inverted residual, ShuffleNet's channel shuffle,
# the zero-FLOP shift of Synetgy and a factorised Inception convolution),
# check them against reference implementations with the profiler of Lab 02,
# resize ShuffleNetV2 for an FPGA and build Synetgy's hardware-friendly unit,
# design and train a small CNN of your own, and compare the accuracy, MACs and
# measured latency of the classic ImageNet models.
#
# **How this lab is graded.** Each `## Q…` heading gives its points. Write your
# code where it says `YOUR CODE HERE` and delete the `raise NotImplementedError()`.
# Your blocks are compared with efflib's by output shape, parameter count, MACs
# and behaviour; they must be built from `torch.nn` layers (a block containing
# efflib's modules is refused). Hidden checks try more configurations. Q12 is
# read by a person.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import efflib
from efflib import data, models, plots, train
from efflib.latency import fast_mode, threads_for_load

torch.manual_seed(0)
FAST = fast_mode()  # True while the grader runs this notebook: shorter training and timing
# one thread under the grader (notebooks run side by side) or on a busy machine
torch.set_num_threads(1 if FAST else threads_for_load())
DEVICE = train.default_device()
print(f"torch {torch.__version__}, training on {DEVICE}, fast mode {FAST}")

# %% [markdown]
# ## Q1. A VGG stage (2 points)
#
# VGG ([arXiv:1409.1556](https://arxiv.org/abs/1409.1556)) showed that stacks of
# 3x3 convolutions are enough: two 3x3 layers see a 5x5 window with
# $2 \cdot 9 = 18$ weights per channel pair instead of 25. A stage is `convs`
# 3x3 convolutions with padding 1 (bias on), each followed by a ReLU, then a
# 2x2 max-pool that halves the height and width.
#
# Write `vgg_stage(c_in, c_out, convs)` returning an `nn.Sequential`.

# %% nbgrader={"grade": false, "grade_id": "q1_vgg_stage", "locked": false, "schema_version": 3, "solution": true, "task": false}
def vgg_stage(c_in, c_out, convs):
    """`convs` 3x3 conv + ReLU layers (c_in -> c_out, then c_out -> c_out), then a 2x2 max-pool."""
    ### BEGIN SOLUTION
    layers = []
    for i in range(convs):
        layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.MaxPool2d(2))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q1_vgg_stage_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
"""Q1: vgg_stage has VGG's shape, parameters and MACs."""
from autograde.checks.lab03_architectures import check_vgg_stage

check_vgg_stage(vgg_stage)
### BEGIN HIDDEN TESTS
check_vgg_stage(vgg_stage, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Q2. ResNet's bottleneck (3 points)
#
# ResNet-50 ([arXiv:1512.03385](https://arxiv.org/abs/1512.03385)) adds each
# block's input back to its output, so the block only learns a residual. Its
# bottleneck block narrows the channels before the expensive 3x3 conv:
#
# 1. 1x1 conv `c_in -> width`, BatchNorm, ReLU
# 2. 3x3 conv `width -> width` with the block's `stride` (padding 1), BatchNorm, ReLU.
#    The stride sits on the 3x3 conv as in torchvision's ResNet-50 ("v1.5"); the
#    paper puts it on the first 1x1 conv, which costs fewer MACs but loses accuracy.
# 3. 1x1 conv `width -> 4 * width`, BatchNorm (no ReLU yet)
# 4. add the skip, then ReLU.
#
# The skip is `x` itself when the shape is unchanged (stride 1 and
# `c_in == 4 * width`); otherwise a 1x1 conv with the block's stride and a
# BatchNorm project it. Convs followed by BatchNorm have `bias=False`.
#
# The grader traces your block with `torch.export` and runs the traced graph
# itself, so decide in `__init__` (from the stride and channel counts) what
# `forward` does, rather than with `if`s on tensor values.

# %% nbgrader={"grade": false, "grade_id": "q2_bottleneck", "locked": false, "schema_version": 3, "solution": true, "task": false}
class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand to 4 x width, plus the skip, then ReLU."""

    def __init__(self, c_in, width, stride=1):
        super().__init__()
        ### BEGIN SOLUTION
        c_out = 4 * width
        self.body = nn.Sequential(
            nn.Conv2d(c_in, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, c_out, 1, bias=False), nn.BatchNorm2d(c_out),
        )
        self.skip = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                      nn.BatchNorm2d(c_out))
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        return F.relu(self.body(x) + self.skip(x))
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q2_bottleneck_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q2: Bottleneck matches ResNet's block, skip and final ReLU included."""
from autograde.checks.lab03_architectures import check_bottleneck

check_bottleneck(Bottleneck)
### BEGIN HIDDEN TESTS
check_bottleneck(Bottleneck, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Q3. MobileNetV2's inverted residual (3 points)
#
# MobileNetV2 ([arXiv:1801.04381](https://arxiv.org/abs/1801.04381)) inverts
# the bottleneck: it *expands* the channels by a factor `expand` with a 1x1
# conv, filters each channel with a cheap 3x3 depthwise conv, and projects back
# with a 1x1 conv that has **no activation** (a "linear bottleneck": ReLU on a
# narrow tensor destroys information).
#
# 1. if `expand != 1`: 1x1 conv `c_in -> c_in * expand`, BatchNorm, ReLU6
# 2. 3x3 depthwise conv (`groups` = its channels) with the block's `stride`, BatchNorm, ReLU6
# 3. 1x1 conv to `c_out`, BatchNorm
# 4. add `x` only when `stride == 1` and `c_in == c_out`.

# %% nbgrader={"grade": false, "grade_id": "q3_inverted_residual", "locked": false, "schema_version": 3, "solution": true, "task": false}
class InvertedResidual(nn.Module):
    """Expand (1x1), depthwise 3x3, linear projection (1x1), skip when shapes match."""

    def __init__(self, c_in, c_out, stride=1, expand=6):
        super().__init__()
        ### BEGIN SOLUTION
        hidden = c_in * expand
        layers = []
        if expand != 1:
            layers += [nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
                       nn.ReLU6(inplace=True)]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
                   nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
                   nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.body = nn.Sequential(*layers)
        self.use_skip = stride == 1 and c_in == c_out
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        out = self.body(x)
        return x + out if self.use_skip else out
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q3_inverted_residual_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q3: InvertedResidual matches MobileNetV2's block, linear bottleneck and skip rule."""
from autograde.checks.lab03_architectures import check_inverted_residual

check_inverted_residual(InvertedResidual)
### BEGIN HIDDEN TESTS
check_inverted_residual(InvertedResidual, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# Why "inverted"? The plot compares the channel widths along one block of each
# kind: ResNet's is wide-narrow-wide, MobileNetV2's narrow-wide-narrow, and its
# wide part is only ever touched by depthwise (cheap) and 1x1 convs.

# %%
def widths(block, x):
    """Output channels of each conv in the order they run."""
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(o.shape[1]))
             for m in block.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        block.eval()(x)
    for h in hooks:
        h.remove()
    return seen


fig, ax = plt.subplots(figsize=(6, 3))
for name, make, c in [("Bottleneck(256, 64)", lambda: Bottleneck(256, 64), 256),
                      ("InvertedResidual(24, 24, expand=6)",
                       lambda: InvertedResidual(24, 24, 1, 6), 24)]:
    block = plots.attempt(make)
    if block is None:
        continue
    w = [c] + widths(block, torch.zeros(1, c, 8, 8))
    ax.plot(range(len(w)), w, "o-", label=name)
ax.set(xlabel="layer in the block (0 = input)", ylabel="channels", yscale="log",
       title="Bottleneck vs inverted residual")
ax.legend()
plt.show()

# %% [markdown]
# ## Q4. Channel shuffle (2 points)
#
# Grouped 1x1 convolutions are cheap, but stacked they never mix information
# between groups. ShuffleNet ([arXiv:1707.01083](https://arxiv.org/abs/1707.01083),
# V2 [arXiv:1807.11164](https://arxiv.org/abs/1807.11164)) interleaves the
# channels of the `g` groups inside each unit, right after its first grouped 1x1
# conv (V2 shuffles at the end of each unit instead): with 2 groups `[a0 a1 a2 | b0 b1 b2]`
# becomes `[a0 b0 a1 b1 a2 b2]`. The usual trick: view the channels as a
# `(g, C/g)` grid, transpose it to `(C/g, g)`, flatten back.
#
# Write `channel_shuffle(x, groups)` for `x` of shape `(N, C, H, W)`; raise a
# `ValueError` when `C` is not divisible by `groups`.

# %% nbgrader={"grade": false, "grade_id": "q4_channel_shuffle", "locked": false, "schema_version": 3, "solution": true, "task": false}
def channel_shuffle(x, groups):
    """Interleave the channels of `groups` groups."""
    ### BEGIN SOLUTION
    n, c, h, w = x.shape
    if c % groups:
        raise ValueError(f"{c} channels cannot be split into {groups} groups")
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q4_channel_shuffle_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
"""Q4: channel_shuffle interleaves the groups exactly and rejects indivisible channels."""
from autograde.checks.lab03_architectures import check_channel_shuffle

check_channel_shuffle(channel_shuffle)
### BEGIN HIDDEN TESTS
check_channel_shuffle(channel_shuffle, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Q5. Shift: a convolution with zero FLOPs (2 points)
#
# Synetgy (Yang et al., FPGA 2019, [arXiv:1811.08634](https://arxiv.org/abs/1811.08634))
# replaces ShuffleNet's 3x3 depthwise conv by a **shift**: each channel is moved
# by a fixed offset and nothing is multiplied. With a `k x k` neighbourhood the
# $C$ channels are split into $k^2$ groups in order (channel $c$ is in group
# $g = \lfloor c k^2 / C \rfloor$), and group $g$ takes its value at output
# pixel $(i, j)$ from input pixel $(i + d_y, j + d_x)$ with
# $d_y = \lfloor g / k \rfloor - \lfloor k/2 \rfloor$ and
# $d_x = (g \bmod k) - \lfloor k/2 \rfloor$, or 0 where that falls outside the
# image. (It equals a depthwise conv whose kernels are one-hot, which is how the
# check computes it.)
#
# Write `shift(x, k)` with slicing only: no convolution, no `torch.roll`. The
# check records the torch operations one call runs and replays them on new
# inputs, so compute the result from `x` itself (no NumPy, no `.item()`).

# %% nbgrader={"grade": false, "grade_id": "q5_shift", "locked": false, "schema_version": 3, "solution": true, "task": false}
def shift(x, k=3):
    """Shift each channel group of x (N, C, H, W) by its offset, zero fill."""
    ### BEGIN SOLUTION
    n, c, h, w = x.shape
    out = torch.zeros_like(x)
    for ch in range(c):
        g = ch * k * k // c
        dy, dx = g // k - k // 2, g % k - k // 2
        # output rows i read input rows i + dy; keep those inside the image
        oy0, oy1 = max(0, -dy), min(h, h - dy)
        ox0, ox1 = max(0, -dx), min(w, w - dx)
        if oy0 < oy1 and ox0 < ox1:
            out[:, ch, oy0:oy1, ox0:ox1] = x[:, ch, oy0 + dy:oy1 + dy, ox0 + dx:ox1 + dx]
    return out
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q5_shift_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
"""Q5: shift equals a one-hot depthwise convolution, without calling a convolution."""
from autograde.checks.lab03_architectures import check_shift

check_shift(shift)
### BEGIN HIDDEN TESTS
check_shift(shift, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# One digit, nine channels, a 3x3 shift: each copy moves one pixel in its own
# direction. A following 1x1 conv can now combine neighbouring pixels although
# nothing was multiplied here.

# %%
digit = torch.tensor(data.digit_arrays()[0][0], dtype=torch.float32)  # (8, 8)
moved = plots.attempt(shift, digit.expand(1, 9, 8, 8).clone(), 3)
fig, axes = plt.subplots(1, 9, figsize=(10, 1.4))
for i, ax in enumerate(axes):
    ax.imshow(digit if moved is None else moved[0, i], cmap="gray_r")
    ax.set_title("input" if moved is None else f"group {i}", fontsize=8)
    ax.axis("off")
plt.show()

# %% [markdown]
# Synetgy also swaps ResNet's *additive* skip for a **concatenative** one,
# `torch.cat([x, block(x)], dim=1)`, which needs no addition and lets the block
# produce only the new channels.
#
# ## Q6. Factorised convolutions (3 points)
#
# Inception-v3 ([arXiv:1512.00567](https://arxiv.org/abs/1512.00567)) replaces
# an `n x n` convolution by a `1 x n` followed by an `n x 1` one: $2n$ instead of
# $n^2$ weights per channel pair. Write `factorised_conv(c_in, c_out, n)`: an
# `nn.Sequential` of a `(1, n)` conv `c_in -> c_out` and an `(n, 1)` conv
# `c_out -> c_out`, both `bias=False`, padded so the output keeps the input's
# height and width (odd `n`). With one channel the pair is exactly one `n x n`
# kernel of rank 1: the outer product of its two 1-D kernels.

# %% nbgrader={"grade": false, "grade_id": "q6_factorised", "locked": false, "schema_version": 3, "solution": true, "task": false}
def factorised_conv(c_in, c_out, n):
    """A 1 x n conv then an n x 1 conv, same-size output, no bias."""
    ### BEGIN SOLUTION
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, (1, n), padding=(0, n // 2), bias=False),
        nn.Conv2d(c_out, c_out, (n, 1), padding=(n // 2, 0), bias=False),
    )
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q6_factorised_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q6: factorised_conv keeps the size, has 2n weights per pair and a rank-1 kernel."""
from autograde.checks.lab03_architectures import check_factorised

check_factorised(factorised_conv)
### BEGIN HIDDEN TESTS
check_factorised(factorised_conv, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# What the factorisation buys, measured: MACs (efflib's profiler) and latency
# (median of repeated runs) of an `n x n` conv and its factorised pair at
# 128 channels on a 17x17 map, as in Inception-v3's middle blocks.

# %%
x17 = torch.randn(1, 128, 17, 17)
rows = []
for n in (3, 5, 7):
    full = nn.Conv2d(128, 128, n, padding=n // 2, bias=False).eval()
    pair = plots.attempt(factorised_conv, 128, 128, n)
    for label, m in [(f"{n}x{n}", full), (f"1x{n}+{n}x1", pair)]:
        if m is None:
            continue
        m.eval()
        lat = efflib.measure_latency(m, x17, warmup=2, repeats=5 if FAST else 30,
                                     budget_s=0.3 if FAST else 1.0)
        rows.append((n, label, efflib.profile(m, x17).macs, lat.median))
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3))
for ax, col, title in [(ax1, 2, "MACs (M)"), (ax2, 3, "latency (ms)")]:
    scale = 1e-6 if col == 2 else 1e3
    ax.bar([r[1] for r in rows], [r[col] * scale for r in rows],
           color=["tab:blue" if "+" not in r[1] else "tab:orange" for r in rows])
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=45)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Q7. Reading a published table (2 points)
#
# The ShuffleNet V2 paper's table 5 lists "FLOPs" of 41M, 146M, 299M and 591M
# for widths 0.5x to 2x. Using `efflib.profile` on `models.shufflenet_v2(width=...)`
# (224x224 input), fill `ratios[width]` = efflib's MACs / the table's number,
# then set `table5_counts` to `"MACs"` or `"FLOPs"`, whichever the table really
# counts. (torchvision's "GFLOPS" column has the same habit.)
#
# *Tip:* building a model inside `with torch.device("meta"):` and profiling it
# on a meta input counts its MACs and parameters exactly without allocating or
# computing anything (activation counts need real tensors).

# %% nbgrader={"grade": false, "grade_id": "q7_table5", "locked": false, "schema_version": 3, "solution": true, "task": false}
table5 = {0.5: 41e6, 1.0: 146e6, 1.5: 299e6, 2.0: 591e6}
ratios = None
table5_counts = None
### BEGIN SOLUTION
ratios = {}
for width, published in table5.items():
    with torch.device("meta"):
        net = models.shufflenet_v2(width=width)
    ratios[width] = efflib.profile(net, torch.empty(1, 3, 224, 224, device="meta")).macs / published
table5_counts = "MACs"
### END SOLUTION
print(ratios, table5_counts)

# %% nbgrader={"grade": true, "grade_id": "q7_table5_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
"""Q7: the MAC ratios against table 5, and what its FLOPs column counts."""
from autograde.checks.lab03_architectures import check_table5

check_table5(ratios, table5_counts)

# %% [markdown]
# ## Q8. The notes' ShuffleNetV2 for an FPGA (3 points)
#
# The edge-deployment notes shrink ShuffleNetV2 0.5x for a small accelerator:
# the input goes from 224x224 to 192x192, conv5 is cut from 1024 to 512
# channels with a 4x4 output, and the global pool averages that 4x4 grid. Trace
# the sizes before believing them. Five layers have stride 2 (conv1, the max
# pool and the first unit of each stage), and each uses a 3x3 window with
# padding 1, so a side of $n$ becomes $\lfloor (n + 2 - 3)/2 \rfloor + 1$.
#
# 1. Write `feature_sizes(side)`: the `(C, H, W)` after conv1, maxpool, stage2,
#    stage3, stage4 and conv5, in that order, for a `side x side` input (channels
#    from table 5's 0.5x column, conv5 with 512). Use the formula, not a model:
#    building a layer or a tensor in `feature_sizes`, even on the meta device, is
#    refused.
# 2. Set `conv5_side_at_192` to conv5's side for the notes' 192x192 input, and
#    `largest_side_for_4x4` to the largest input side that really gives 4x4.
# 3. Set `edge_macs` to the MACs of the modified network (1000 classes) at that
#    largest side, counted with `efflib.profile`: start from
#    `models.shufflenet_v2(width=0.5)` and replace its `conv5` (a 1x1 conv with
#    BatchNorm and ReLU) and its `fc`.

# %% nbgrader={"grade": false, "grade_id": "q8_edge_shufflenet", "locked": false, "schema_version": 3, "solution": true, "task": false}
def feature_sizes(side):
    """(C, H, W) after conv1, maxpool, stage2, stage3, stage4 and conv5."""
    ### BEGIN SOLUTION
    sizes, h = [], side
    for i, c in enumerate((24, 24, 48, 96, 192, 512)):
        if i < 5:  # conv5 is 1x1, stride 1
            h = (h + 2 - 3) // 2 + 1
        sizes.append((c, h, h))
    return sizes
    ### END SOLUTION


conv5_side_at_192 = None
largest_side_for_4x4 = None
edge_macs = None
### BEGIN SOLUTION
conv5_side_at_192 = feature_sizes(192)[-1][1]
largest_side_for_4x4 = max(s for s in range(1, 512) if feature_sizes(s)[-1][1] == 4)
with torch.device("meta"):
    edge = models.shufflenet_v2(width=0.5)
    edge.conv5 = nn.Sequential(nn.Conv2d(192, 512, 1, bias=False), nn.BatchNorm2d(512),
                               nn.ReLU(inplace=True))
    edge.fc = nn.Linear(512, 1000)
side = largest_side_for_4x4
edge_macs = efflib.profile(edge, torch.empty(1, 3, side, side, device="meta")).macs
### END SOLUTION
for name, size in zip(["conv1", "maxpool", "stage2", "stage3", "stage4", "conv5"],
                      plots.attempt(feature_sizes, 192) or [], strict=False):
    print(f"{name:8s} {size}")
print("conv5 side at 192:", conv5_side_at_192, "| largest side for 4x4:", largest_side_for_4x4,
      "| edge MACs:", edge_macs)

# %% nbgrader={"grade": true, "grade_id": "q8_edge_shufflenet_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q8: every stage's size, the input that gives conv5 at 4x4, and the edge model's MACs."""
from autograde.checks.lab03_architectures import check_edge_numbers, check_edge_sizes

check_edge_sizes(feature_sizes)
check_edge_numbers(conv5_side_at_192, largest_side_for_4x4, edge_macs)
### BEGIN HIDDEN TESTS
check_edge_sizes(feature_sizes, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# Where the MACs went: the original 0.5x at 224x224 beside the edge version
# at the side you found, stage by stage.

# %%
def stage_macs(net, side):
    """MACs of stem, stages 2-4, conv5 and fc for a side x side input."""
    rows = efflib.profile(net, torch.empty(1, 3, side, side, device="meta")).rows
    parts = {"stem": 0, "stages.0": 0, "stages.1": 0, "stages.2": 0, "conv5": 0, "fc": 0}
    for row in rows:
        for key in parts:
            if row.name == key or row.name.startswith(key + "."):
                parts[key] += row.macs
    return parts


if isinstance(largest_side_for_4x4, int) and "edge" in globals():
    with torch.device("meta"):
        original = models.shufflenet_v2(width=0.5)
    before, after = stage_macs(original, 224), stage_macs(edge, largest_side_for_4x4)
    labels = ["stem", "stage2", "stage3", "stage4", "conv5", "fc"]
    xs = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar(xs - 0.2, [v / 1e6 for v in before.values()], 0.4, label="0.5x, 224x224")
    ax.bar(xs + 0.2, [v / 1e6 for v in after.values()], 0.4,
           label=f"edge, {largest_side_for_4x4}x{largest_side_for_4x4}, conv5 = 512")
    ax.set_xticks(xs, labels)
    ax.set(ylabel="MACs (millions)", title="ShuffleNetV2 0.5x, where the MACs are")
    ax.legend()
    plt.tight_layout()
    plt.show()
else:
    print("Answer Q8 (with the edge model in `edge`) to see where its MACs went.")

# %% [markdown]
# ## Q9. Synetgy's shuffle: two block copies instead of a transpose (2 points)
#
# On an FPGA or a microcontroller, moving channels costs one memory copy per
# contiguous run of channels. ShuffleNet's shuffle (Q4) interleaves, so no two
# neighbouring output channels come from neighbouring input channels: it costs
# one copy per channel. Synetgy's DiracDeltaNet (the authors' code shows it)
# mixes its two branches more cheaply: after concatenating the $C$ channels it
# moves the last quarter to the front, so output channels are input channels
# $3C/4, \dots, C-1, 0, \dots, 3C/4 - 1$. The next unit's split then gives each
# half channels from both branches, which is all the shuffle was for.
#
# 1. Write `rotate_shuffle(x)` for `x` of shape `(N, C, H, W)`; raise a
#    `ValueError` when `C` is not divisible by 4.
# 2. Write `contiguous_runs(perm)`: output channel `j` reads input channel
#    `perm[j]`; return the number of maximal runs in which each output channel
#    reads the input channel right after the previous one's (0 for an empty list).

# %% nbgrader={"grade": false, "grade_id": "q9_synetgy_shuffle", "locked": false, "schema_version": 3, "solution": true, "task": false}
def rotate_shuffle(x):
    """Move the last quarter of the channels of x (N, C, H, W) to the front."""
    ### BEGIN SOLUTION
    c = x.shape[1]
    if c % 4:
        raise ValueError(f"rotate_shuffle needs a multiple of 4 channels, got {c}")
    return torch.cat((x[:, 3 * c // 4:], x[:, :3 * c // 4]), dim=1)
    ### END SOLUTION


def contiguous_runs(perm):
    """Number of block copies that gather input channels perm[0], perm[1], ... in order."""
    ### BEGIN SOLUTION
    if not perm:
        return 0
    return 1 + sum(1 for i in range(1, len(perm)) if perm[i] != perm[i - 1] + 1)
    ### END SOLUTION


c = 96  # stage 3 of the 0.5x network
interleave = [(j % 2) * (c // 2) + j // 2 for j in range(c)]
rotation = [(j + 3 * c // 4) % c for j in range(c)]
print("block copies for", c, "channels: transpose shuffle",
      plots.attempt(contiguous_runs, interleave), "| rotation", plots.attempt(contiguous_runs, rotation))

# %% nbgrader={"grade": true, "grade_id": "q9_synetgy_shuffle_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
"""Q9: rotate_shuffle moves the last quarter first; contiguous_runs counts block copies."""
from autograde.checks.lab03_architectures import check_contiguous_runs, check_rotate_shuffle

check_rotate_shuffle(rotate_shuffle)
check_contiguous_runs(contiguous_runs)
### BEGIN HIDDEN TESTS
check_rotate_shuffle(rotate_shuffle, hidden=True)
check_contiguous_runs(contiguous_runs, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Q10. A concatenative skip (2 points)
#
# ResNet *adds* its skip to the branch output: the accelerator has to read
# both tensors back and spend $C \cdot H \cdot W$ additions. ShuffleNetV2's
# stride-1 unit, and Synetgy after it, *concatenate* instead: half of the
# channels skip the branch untouched and are written beside the branch's
# output, which costs no arithmetic and, when the branch writes into the
# second half of the same buffer, no copy either. DiracDeltaNet's stride-1 unit
# (without its BatchNorms and quantizers) is:
#
# 1. split `x` into halves `a` (first `C/2` channels) and `b`;
# 2. branch on `b`: 1x1 conv with `w1`, ReLU, your `shift(.., 3)` from Q5, 1x1
#    conv with `w2`, ReLU (no biases);
# 3. concatenate `a` and the branch output, then `rotate_shuffle`.
#
# Write `dirac_unit(x, w1, w2)` with `w1` of shape `(M, C/2, 1, 1)` and `w2` of
# shape `(C/2, M, 1, 1)`.

# %% nbgrader={"grade": false, "grade_id": "q10_concat_unit", "locked": false, "schema_version": 3, "solution": true, "task": false}
def dirac_unit(x, w1, w2):
    """Split x (N, C, H, W), run the shift branch on one half, concatenate, rotate."""
    ### BEGIN SOLUTION
    a, b = x.chunk(2, dim=1)                   # (N, C/2, H, W) each
    y = F.relu(F.conv2d(b, w1))                # (N, M, H, W)
    y = F.relu(F.conv2d(shift(y, 3), w2))      # (N, C/2, H, W)
    return rotate_shuffle(torch.cat((a, y), dim=1))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q10_concat_unit_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
"""Q10: dirac_unit passes one half through, runs the shift branch on the other, and rotates."""
from autograde.checks.lab03_architectures import check_dirac_unit

check_dirac_unit(dirac_unit)
### BEGIN HIDDEN TESTS
check_dirac_unit(dirac_unit, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Q11. Your own digit classifier (3 points)
#
# Design a CNN for scikit-learn's 8x8 digits (`data.digits()`: 1,347 training and
# 450 test images, input `(N, 1, 8, 8)`, 10 classes) with **at most 20,000
# parameters** and train it with `train.fit` to **at least 95% test accuracy**.
# Build it as an `nn.Sequential` of `torch.nn` layers (Conv2d, BatchNorm2d, ReLU,
# MaxPool2d, AdaptiveAvgPool2d, Flatten, Linear, ...): the grader rebuilds it from
# its layers and weights and tests that copy (efflib's `digit_cnn` has 24,058
# parameters, over budget anyway). Leave the trained model in `digit_model`. Keep
# `fast_epochs` small: the grader trains with that many epochs, in seconds.
#
# Train on `loaders.train` only. The 450 test images come with every copy of
# scikit-learn, so the check also measures your model on **new handwriting**:
# digits drawn from pen strokes, which no one has trained on, and asks for at
# least 93% there. The grader draws new handwriting of its own and asks for 92%:
# a model that generalises passes both, a model that has seen the test images
# gains nothing (a model like the one described above, trained on the training
# images only, reaches 95-98% on new handwriting).

# %% nbgrader={"grade": false, "grade_id": "q11_digit_model", "locked": false, "schema_version": 3, "solution": true, "task": false}
loaders = data.digits(seed=0)
digit_model = None
### BEGIN SOLUTION
digit_model = nn.Sequential(
    nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
    nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
    nn.MaxPool2d(2),                                                     # (N, 32, 4, 4)
    nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
)
history = train.fit(digit_model, loaders.train, loaders.test, epochs=8, fast_epochs=6,
                    device=DEVICE)
### END SOLUTION
print(f"{sum(p.numel() for p in digit_model.parameters()):,d} parameters")

# %% nbgrader={"grade": true, "grade_id": "q11_digit_model_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q11: digit_model has at most 20,000 parameters and reaches 95% test accuracy."""
from autograde.checks.lab03_architectures import check_digit_model

check_digit_model(digit_model)

# %% [markdown]
# Its learning curve and the test images it still gets wrong:

# %%
if digit_model is None or "history" not in globals():
    print("Train your model in Q11 (and keep train.fit's result in `history`) to see its curves.")
else:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3))
    ax1.plot(history.train_loss, "o-")
    ax1.set(xlabel="epoch", ylabel="training loss", yscale="log")
    ax2.plot([100 * a for a in history.test_accuracy], "o-", color="tab:green")
    ax2.axhline(95, color="k", ls="--", lw=1)
    ax2.set(xlabel="epoch", ylabel="test accuracy (%)")
    plt.tight_layout()
    plt.show()

# %% [markdown]
# ## The ImageNet classics, side by side
#
# Published ImageNet top-1 accuracy (torchvision's pretrained weights, from
# the torchvision model documentation) and MACs counted by efflib's profiler,
# beside the batch-1 latency measured now on this machine.

# %%
TOP1 = {  # torchvision's published ImageNet-1k top-1 accuracy (%) of its pretrained weights
    "AlexNet": 56.522, "VGG-16": 71.592, "ResNet-50": 76.130, "MobileNetV2": 71.878,
    "ShuffleNetV2 0.5x": 60.552, "ShuffleNetV2 1x": 69.362, "ShuffleNetV2 1.5x": 72.996,
    "ShuffleNetV2 2x": 76.230,
}
FACTORIES = {
    "AlexNet": models.alexnet, "VGG-16": models.vgg16, "ResNet-50": models.resnet50,
    "MobileNetV2": models.mobilenet_v2,
    "ShuffleNetV2 0.5x": lambda: models.shufflenet_v2(width=0.5),
    "ShuffleNetV2 1x": lambda: models.shufflenet_v2(width=1.0),
    "ShuffleNetV2 1.5x": lambda: models.shufflenet_v2(width=1.5),
    "ShuffleNetV2 2x": lambda: models.shufflenet_v2(width=2.0),
}
image = torch.randn(1, 3, 224, 224)
zoo = {}
for name, make in FACTORIES.items():
    net = make().eval()
    lat = efflib.measure_latency(net, image, warmup=1 if FAST else 3, repeats=3 if FAST else 15,
                                 budget_s=0.5 if FAST else 1.5)
    zoo[name] = (efflib.profile(net, image).macs, lat.median)
    del net
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
panels = [(ax1, [m / 1e9 for m, _ in zoo.values()]), (ax2, [t * 1e3 for _, t in zoo.values()])]
top1 = [TOP1[name] for name in zoo]
for ax, xs in panels:
    ax.scatter(xs, top1)
    plots.plain_log_axis(ax, "x")
    ax.margins(x=0.2, y=0.12)  # room for the names inside the axes
ax1.set(xlabel="GMACs (efflib)", ylabel="ImageNet top-1 (%)", title="Accuracy vs MACs")
ax2.set(xlabel=f"latency at batch 1 on {torch.get_num_threads()} threads (ms)",
        title="Accuracy vs measured latency")
plt.tight_layout()
for ax, xs in panels:
    plots.label_points(ax, xs, top1, list(zoo), fontsize=8)
plt.show()

# %% [markdown]
# ## Q12. Reflection (2 points, graded by hand)
#
# Look at the two panels above. Name one pair of networks whose order changes
# between the MACs axis and the latency axis, and explain from the blocks you
# wrote in this lab why it changes (three to five sentences).

# %% [markdown] nbgrader={"grade": true, "grade_id": "q12_reflection", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# A good answer names a pair from its own plot. On a quiet run of this
# machine, AlexNet needed 2.4x the MACs of MobileNetV2 but only about 1.5x its
# time, and ShuffleNetV2 1x, with half of MobileNetV2's MACs, was slower than
# it (a busy machine can reorder these; the spread in the printout says when). AlexNet is a handful of large dense convolutions and matrix
# products that a CPU runs near its peak rate. MobileNetV2's inverted residuals
# and ShuffleNet's units are made of depthwise 3x3 convs, 1x1 convs, channel
# splits, shuffles and concatenations: many small operators with little
# arithmetic per byte moved, so they are memory- and overhead-bound and reach
# a fraction of the peak. MACs count arithmetic, while latency also pays for
# data movement and for every operator launched.
# ### END SOLUTION
