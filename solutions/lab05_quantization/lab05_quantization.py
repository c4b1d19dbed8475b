# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 05: Quantization
#
# *Efficient Deep Learning for Edge Deployment*
#
# A trained network's weights are 32-bit floats, but far fewer bits carry what
# matters. Storing a weight in 8 bits makes the model 4x smaller, and an 8-bit
# integer multiply costs a fraction of the energy of a 32-bit float one (Lab 02's
# Horowitz table: 3.7 pJ for a 32-bit float multiply, 0.2 pJ for an 8-bit integer
# one, and a DRAM read of 640 pJ per 32 bits that shrinks with the width).
#
# This lab walks the quantization toolbox of the lecture notes: number formats;
# **linear** quantization (a scale and a zero point) per tensor and per channel;
# **weight sharing** by k-means with centroid fine-tuning and **Huffman coding**,
# the stages of Deep Compression (Han et al., [arXiv:1510.00149](https://arxiv.org/abs/1510.00149));
# **binary and ternary** weights; **quantization-aware training** with a
# straight-through estimator; **batch norm folding** and **activation calibration**
# (min/max, percentile, entropy); and **integer-only inference**, where a whole conv
# layer runs in int8 and int32 (Jacob et al., [arXiv:1712.05877](https://arxiv.org/abs/1712.05877)).
# It ends by measuring PyTorch's own int8 kernels against fp32 on this machine.
#
# **How this lab is graded.** Each `## Q…` heading gives its points. Write your
# code where it says `YOUR CODE HERE` and delete the `raise NotImplementedError()`.
# Hidden checks use random cases. Answers that call torch's quantize functions
# (`torch.quantize_per_tensor`, `torch.fake_quantize_*`, ...) or `efflib.quant`'s
# copy of the question are refused. Q12 is read by a person.

# %%
import copy
import math

import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import parametrize

import efflib
from efflib import data, models, plots, train
from efflib.latency import fast_mode, threads_for_load
from efflib.quant import huffman, integer, linear, pipeline, torch_int8
from efflib.quant.kmeans import kmeans

torch.manual_seed(0)
FAST = fast_mode()  # True while the grader runs this notebook: shorter training and timing
# one thread under the grader (notebooks run side by side) or on a busy machine
torch.set_num_threads(1 if FAST else threads_for_load())
loaders = data.digits(seed=0)
print(f"torch {torch.__version__}, fast mode {FAST}")

# %% [markdown]
# The network we quantize: efflib's digit CNN at width 16 (three 3x3 convs of
# 16, 32 and 64 channels with BatchNorm, global pooling, a linear classifier),
# trained for a few seconds (on CUDA when there is one), then brought to the
# CPU, where integer arithmetic and the bit-level plots below run.

# %%
torch.manual_seed(0)
base = models.digit_cnn(width=16)
train.fit(base, loaders.train, loaders.test, epochs=6, fast_epochs=3)
base = base.cpu().eval()  # trained on CUDA when there is one; quantized on the CPU
base_acc = train.evaluate(base, loaders.test)
LAYERS = ["features.0", "features.3", "features.7", "fc"]  # every conv and the classifier
print(f"fp32: {sum(p.numel() for p in base.parameters()):,d} parameters, "
      f"test accuracy {base_acc:.1%}")


def with_weights(model, new_weight):
    """A copy of `model` whose LAYERS' weights are replaced by new_weight(name, weight)."""
    twin = copy.deepcopy(model).eval()
    with torch.no_grad():
        for name in LAYERS:
            layer = twin.get_submodule(name)
            layer.weight.copy_(new_weight(name, layer.weight.detach()))
    return twin


# %% [markdown]
# ## Q1. Number formats (3 points)
#
# An IEEE-style float with $e$ exponent bits and $m$ mantissa (fraction) bits
# stores $\pm 1.f \times 2^{E - \text{bias}}$ with $\text{bias} = 2^{e-1} - 1$;
# the all-zeros exponent is kept for zero and subnormals and the all-ones one
# for infinity and NaN. Write `float_format(e, m)` returning three floats:
# the **largest** finite value, **eps** (the gap between 1 and the next
# float), and the **smallest normal** positive value. The checks compare with
# `torch.finfo` for fp32 (8, 23), fp16 (5, 10) and bf16 (8, 7), and with the rule
# above for formats torch does not have (an IEEE-style 8-bit float with $e = 4$,
# $m = 3$, and, hidden, made-up ones): compute the three from $e$ and $m$.
#
# An integer grid of $b$ bits holds $2^b$ values. Write `int_range(bits, signed)`
# returning `(qmin, qmax)`: two's complement when signed, from 0 otherwise.

# %% nbgrader={"grade": false, "grade_id": "q1_formats", "locked": false, "schema_version": 3, "solution": true, "task": false}
def float_format(e, m):
    """(largest finite, eps, smallest normal) of a float with e exponent and m mantissa bits."""
    ### BEGIN SOLUTION
    bias = 2 ** (e - 1) - 1
    largest = (2 - 2.0**-m) * 2.0 ** (2**e - 2 - bias)
    return largest, 2.0**-m, 2.0 ** (1 - bias)
    ### END SOLUTION


def int_range(bits, signed):
    """(qmin, qmax) of a bits-wide integer grid."""
    ### BEGIN SOLUTION
    if signed:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q1_formats_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q1: float formats against torch.finfo, integer grids against the b-bit rule."""
from autograde.checks.lab05_quantization import check_float_format, check_int_range

check_float_format(float_format)
check_int_range(int_range)
### BEGIN HIDDEN TESTS
check_float_format(float_format, hidden=True)
check_int_range(int_range, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# What the formats mean for a model: the bytes of our digit CNN and of the
# lecture's AlexNet (60,954,656 parameters) at each width, and each float
# format's precision around 1.

# %%
alexnet_params = 60_954_656
for name, (e, m) in {"fp32": (8, 23), "fp16": (5, 10), "bf16": (8, 7)}.items():
    got = plots.attempt(float_format, e, m)
    if got is not None:
        print(f"{name}: largest {got[0]:.3g}, eps {got[1]:.2g}, smallest normal {got[2]:.3g}")
for bits in (32, 16, 8, 4):
    print(f"{bits:2d} bits: AlexNet {alexnet_params * bits / 8 / 1e6:6.1f} MB, digit CNN "
          f"{efflib.model_size(base, bits) / 1e3:5.1f} kB")

# %% [markdown]
# ## Q2. Linear quantization by hand (4 points)
#
# Linear (affine) quantization maps a real range $[\alpha, \beta]$ onto the grid
# $[q_{min}, q_{max}]$: $q = \text{clamp}(\text{round}(x / s) + z)$ and back
# $x \approx s\,(q - z)$.
#
# * **Asymmetric**: widen the range to include 0 ($\alpha \le 0 \le \beta$, so
#   zero padding and ReLU zeros are exact), then
#   $s = (\beta - \alpha) / (q_{max} - q_{min})$ and
#   $z = q_{min} - \text{round}(\alpha / s)$, clamped into the grid.
# * **Symmetric**: $s = \max|x| / ((q_{max} - q_{min}) / 2)$ and $z = 0$ for a
#   signed grid ($2^{b-1}$ for an unsigned one).
#
# Write `scale_zero_point(x, bits, signed, symmetric)` returning
# `(scale, zero_point)` as a float and an int (the checks compare with PyTorch's
# `MinMaxObserver`), and `linear_quantize(x, scale, zero_point, bits, signed)`
# returning the integers as an integer tensor. The check of `linear_quantize`
# records the torch operations one call runs and replays them on new inputs, so
# compute the integers from `x` with torch operations on the whole tensor (no
# NumPy, no `.item()`, no loop over elements). Round **half to even**
# (`torch.round`; Python's `round` also does), which is what PyTorch's
# `fake_quantize_per_tensor_affine` does. Guard the scale against an all-zero
# tensor with `max(s, torch.finfo(torch.float32).eps)`.
#
# *A fact worth knowing:* `torch.quantize_per_tensor` adds the zero point *before*
# rounding, in one fused float32 multiply-add, and `torch.quantize_per_channel` in
# a second float32 rounding. Near a tie, these land one step away from
# round-then-add; efflib's tests show where.

# %% nbgrader={"grade": false, "grade_id": "q2_linear_quantize", "locked": false, "schema_version": 3, "solution": true, "task": false}
def scale_zero_point(x, bits, signed, symmetric):
    """(scale, zero_point) mapping the range of x (widened to hold 0) onto the grid."""
    ### BEGIN SOLUTION
    qmin, qmax = int_range(bits, signed)
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    eps = torch.finfo(torch.float32).eps
    if symmetric:
        scale = max(max(-lo, hi) / ((qmax - qmin) / 2), eps)
        zero = 0 if signed else (qmax + qmin + 1) // 2
    else:
        scale = max((hi - lo) / (qmax - qmin), eps)
        scale = float(torch.tensor(scale, dtype=torch.float32))
        zero = qmin - int(torch.round(torch.tensor(lo) / scale))
        zero = min(max(zero, qmin), qmax)
    return float(torch.tensor(scale, dtype=torch.float32)), zero
    ### END SOLUTION


def linear_quantize(x, scale, zero_point, bits, signed):
    """clamp(round_half_even(x / scale) + zero_point, qmin, qmax) as an integer tensor."""
    ### BEGIN SOLUTION
    qmin, qmax = int_range(bits, signed)
    q = torch.round(x / scale).to(torch.int64) + zero_point
    return torch.clamp(q, qmin, qmax)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q2_linear_quantize_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
"""Q2: scales and zero points as PyTorch's observers; quantized integers, ties and clamping."""
from autograde.checks.lab05_quantization import check_linear_quantize, check_scale_zero_point

check_scale_zero_point(scale_zero_point)
check_linear_quantize(linear_quantize)
### BEGIN HIDDEN TESTS
check_scale_zero_point(scale_zero_point, hidden=True)
check_linear_quantize(linear_quantize, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Q3. Per-tensor or per-channel? (3 points)
#
# One scale for a whole weight tensor must stretch over its widest channel;
# channels of small weights then get only a few grid points. Per-channel
# quantization gives every output channel (dimension 0) its own scale.
#
# Write `quantization_mse(w, bits, per_channel)`: quantize `w` **symmetric and
# signed** with your Q2 functions (one scale for the tensor, or one per output
# channel), dequantize, and return the mean squared error as a float.

# %% nbgrader={"grade": false, "grade_id": "q3_mse", "locked": false, "schema_version": 3, "solution": true, "task": false}
def quantization_mse(w, bits, per_channel):
    """Mean squared error of w after a symmetric signed round trip (per tensor or channel)."""
    ### BEGIN SOLUTION
    parts = list(w) if per_channel else [w]
    err = 0.0
    for part in parts:
        s, z = scale_zero_point(part, bits, True, True)
        back = (linear_quantize(part, s, z, bits, True) - z).double() * s
        err += float(((back - part.double()) ** 2).sum())
    return err / w.numel()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q3_mse_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q3: the round-trip error per tensor and per output channel."""
from autograde.checks.lab05_quantization import check_quantization_mse

check_quantization_mse(quantization_mse)
### BEGIN HIDDEN TESTS
check_quantization_mse(quantization_mse, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# The error of the trained middle conv (`features.3`) against the bit width. Read
# it off the plot: how many bits does per-channel quantization save at equal
# error? The cell also prints how far apart the channels' ranges are, as trained
# and with the batch norm folded in (as the integer model deploys it). In a
# small network trained from scratch for seconds that spread is modest, and so
# is the saving. Depthwise convs and folded weights of large networks trained
# for days reach spreads of 100x and more (Krishnamoorthi, 2018,
# [arXiv:1806.08342](https://arxiv.org/abs/1806.08342); Nagel et al., 2019,
# [arXiv:1906.04721](https://arxiv.org/abs/1906.04721)). To see what that does,
# the cell rescales each channel of the same trained weights so that the ranges
# run evenly on a log scale from 1 to 10x, 100x and 1000x (the pattern inside
# each channel stays as trained), and measures both ways again: the bits saved
# at 8 bits, and how many channels per-tensor quantization rounds to **all
# zeros**, a channel the layer no longer computes. (Per-channel quantization
# never does: every channel's largest weight lands on its top grid point.) Why
# does the saving in mean squared error grow less from 100x to 1000x than the
# share of lost channels does? Ask which channels the mean is made of.

# %%
w_conv = base.get_submodule("features.3").weight.detach()
w_folded = integer.fold_bn(base.features[3], base.features[4]).weight.detach()
for label, w in (("as trained", w_conv), ("batch norm folded in", w_folded)):
    ranges = w.abs().reshape(w.shape[0], -1).max(dim=1).values
    print(f"features.3 {label}: the widest channel's range is "
          f"{float(ranges.max() / ranges.min()):.1f}x the narrowest's")


def spread_channels(w, spread):
    """w with channel c rescaled to range spread**(c / (M - 1)): widest / narrowest = spread."""
    ranges = w.abs().reshape(w.shape[0], -1).amax(dim=1)  # (M,)
    target = spread ** torch.linspace(0, 1, w.shape[0])   # (M,) evenly on a log scale
    return w * (target / ranges).view(-1, *[1] * (w.dim() - 1))


def zeroed_share(w, bits):
    """The share of channels that per-tensor symmetric quantization rounds to all zeros."""
    spec = linear.QuantSpec(bits, symmetric=True, signed=True)
    scale, zero = linear.qparams(w, spec)
    q = linear.quantize(w, scale, zero, spec) - zero
    return float((q.reshape(w.shape[0], -1) == 0).all(dim=1).float().mean())


BITS = list(range(2, 9))
SPREADS = [10, 100, 1000]
weights = {"as trained": w_conv, **{f"{s}x": spread_channels(w_conv, s) for s in SPREADS}}
curves = {(name, pc): [plots.attempt(quantization_mse, w, b, pc) for b in BITS]
          for name, w in weights.items() for pc in (False, True)}
if any(None in c for c in curves.values()):
    print("Finish Q2 and Q3 to see the error curves.")
else:
    for name, w in weights.items():
        saved = math.log(curves[name, False][-1] / curves[name, True][-1], 4)
        print(f"channels {name:10s}: per-channel saves {saved:.2f} bits at 8 bits; per-tensor "
              "rounds " + ", ".join(f"{zeroed_share(w, b):.0%} at {b}" for b in (8, 6, 4))
              + " bits of the channels to zeros")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    for (name, pc), color in ((("as trained", False), "tab:blue"),
                              (("as trained", True), "tab:orange"),
                              (("100x", False), "tab:blue"), (("100x", True), "tab:orange")):
        left.semilogy(BITS, curves[name, pc], "o-" if name == "as trained" else "s--",
                      color=color, label=f"{name}, per {'channel' if pc else 'tensor'}")
    left.set(xlabel="bits per weight", ylabel="mean squared error",
             title="Quantization error of features.3 (symmetric)")
    left.legend(fontsize=8)
    for name in weights:
        right.plot(BITS, [100 * zeroed_share(weights[name], b) for b in BITS], "o-",
                   label=f"channel spread {name}")
    right.set(xlabel="bits per weight", ylabel="channels rounded to zeros (%)",
              title="Per tensor: channels lost (per channel: none)")
    right.legend(fontsize=8)
    plt.tight_layout()
    plt.show()

# %% [markdown]
# ## Q4. Weight sharing by k-means (3 points)
#
# Deep Compression replaces each weight by the nearest of $k = 2^b$ shared
# values: the layer stores a $b$-bit **index** per weight plus a **codebook** of
# $k$ floats. The shared values come from k-means on the weights (Lloyd's
# algorithm): assign every weight to its nearest centroid, move every centroid
# to the mean of its weights, repeat until no assignment changes.
#
# Write `kmeans_quantize(w, bits)` returning `(centroids, indices)`: a tensor of
# $2^b$ centroids and an integer tensor of `w`'s shape. Start from centroids
# **evenly spaced from min(w) to max(w)** (the paper's linear initialisation,
# which keeps the rare large weights), break distance ties toward the lower
# centroid (`torch.argmin` does), let an empty cluster keep its centroid, and
# compute in float64 (`w.double()`). *Hint:* a `(n, k)` matrix of distances
# assigns all weights at once; `index_add_` and `bincount` give the means.
#
# Keeping an empty cluster where it is is the simple rule. scikit-learn's
# KMeans, and `efflib.quant.kmeans` that the rest of the course uses, give an
# emptied cluster the weight farthest from its centroid instead: from the even
# start, weights with heavy tails can leave many clusters empty, and refilling
# them puts those centroids back to use. The `(n, k)` matrix also grows with
# $2^b$: efflib finds each weight's centroid by a binary search among the sorted
# centroids (`torch.searchsorted`) instead.

# %% nbgrader={"grade": false, "grade_id": "q4_kmeans", "locked": false, "schema_version": 3, "solution": true, "task": false}
def kmeans_quantize(w, bits):
    """(centroids (2^bits,), indices like w): Lloyd's k-means from an even start."""
    ### BEGIN SOLUTION
    x = w.detach().reshape(-1).double()
    k = 2**bits
    centroids = torch.linspace(float(x.min()), float(x.max()), k, dtype=torch.float64,
                               device=x.device)
    labels = torch.argmin((x[:, None] - centroids[None, :]).abs(), dim=1)
    while True:
        sums = torch.zeros(k, dtype=torch.float64, device=x.device).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=k)
        centroids = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
        new = torch.argmin((x[:, None] - centroids[None, :]).abs(), dim=1)
        if torch.equal(new, labels):
            return centroids.float(), labels.reshape(w.shape)
        labels = new
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q4_kmeans_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q4: a converged k-means from the linear start, with the right codebook size."""
from autograde.checks.lab05_quantization import check_kmeans_quantize

check_kmeans_quantize(kmeans_quantize)
### BEGIN HIDDEN TESTS
check_kmeans_quantize(kmeans_quantize, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# The Deep Compression figure for our middle conv: its weight histogram with the
# 16 shared values of a 4-bit codebook drawn on it. Where do the centroids
# crowd, and what does that do to the large weights?

# %%
book = plots.attempt(kmeans_quantize, w_conv, 4)
fig, ax = plt.subplots(figsize=(7, 3))
ax.hist(w_conv.flatten().numpy(), bins=120, color="tab:gray")
if book is not None:
    for c in book[0].tolist():
        ax.axvline(c, color="tab:red", lw=1)
ax.set(xlabel="weight value", ylabel="count",
       title="features.3: weights and 4-bit k-means centroids (red)")
plt.show()

# %% [markdown]
# ## Q5. Fine-tuning the shared values (3 points)
#
# After clustering, the indices stay fixed and only the $k$ centroids are
# trained. A centroid is used by many weights, so its gradient is the **sum** of
# their gradients: $\partial L / \partial c_j = \sum_{i:\, \text{idx}_i = j} \partial L / \partial w_i$.
# Write `centroid_gradient(weight_grad, indices, k)` returning a tensor of $k$
# gradients (0 for an unused centroid).

# %% nbgrader={"grade": false, "grade_id": "q5_centroid_grad", "locked": false, "schema_version": 3, "solution": true, "task": false}
def centroid_gradient(weight_grad, indices, k):
    """The gradient of each of k shared values: the sum of its weights' gradients."""
    ### BEGIN SOLUTION
    return torch.zeros(k, dtype=weight_grad.dtype).index_add_(
        0, indices.reshape(-1), weight_grad.reshape(-1))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q5_centroid_grad_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q5: grouped gradients of the shared values."""
from autograde.checks.lab05_quantization import check_centroid_gradient

check_centroid_gradient(centroid_gradient)
### BEGIN HIDDEN TESTS
check_centroid_gradient(centroid_gradient, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# Every conv and the classifier shared at 1, 2 and 3 bits, then the centroids
# fine-tuned with your gradient and Adam for a few epochs. Compare the accuracy
# right after clustering with the accuracy after fine-tuning.


# %%
def share_and_finetune(model, bits, epochs):
    """A copy of model with k-means shared weights; accuracy before and after fine-tuning."""
    twin = copy.deepcopy(model).train()
    books = {}
    for name in LAYERS:
        centroids, idx = kmeans_quantize(twin.get_submodule(name).weight, bits)
        books[name] = (nn.Parameter(centroids.clone()), idx)
    opt = torch.optim.Adam([c for c, _ in books.values()], lr=1e-3)

    def write_back():
        with torch.no_grad():
            for name, (c, idx) in books.items():
                twin.get_submodule(name).weight.copy_(c[idx])

    write_back()
    before = train.evaluate(twin, loaders.test)
    for _ in range(epochs):
        twin.train()
        for x, y in loaders.train:
            twin.zero_grad()
            opt.zero_grad()
            F.cross_entropy(twin(x), y).backward()
            for name, (c, idx) in books.items():
                c.grad = centroid_gradient(twin.get_submodule(name).weight.grad, idx, c.numel())
            opt.step()
            write_back()
    return before, train.evaluate(twin, loaders.test)


shared = {}
if plots.attempt(centroid_gradient, torch.zeros(1), torch.zeros(1, dtype=torch.long), 1) \
        is None or plots.attempt(kmeans_quantize, torch.zeros(2), 1) is None:
    print("Finish Q4 and Q5 to fine-tune the shared weights.")
else:
    for bits in (1, 2, 3):
        shared[bits] = share_and_finetune(base, bits, epochs=1 if FAST else 3)
        print(f"{bits} bit(s): {shared[bits][0]:.1%} after clustering, "
              f"{shared[bits][1]:.1%} after fine-tuning (fp32 {base_acc:.1%})")

# %% [markdown]
# ## Q6. Huffman coding and the whole pipeline (4 points)
#
# Indices are not used equally often: the centroids near zero serve most
# weights. A Huffman code gives frequent symbols short code words. Build it by
# repeatedly merging the two least frequent subtrees (`heapq` helps); a symbol's
# code length is its depth in the final tree, and a lone symbol gets 1 bit.
# Write `huffman_code_lengths(counts)` taking `{symbol: count}` and returning
# `{symbol: length}` for every symbol that occurs. Any optimal code passes:
# ties may be broken either way.
#
# Then put Deep Compression together for one weight tensor and count **every
# byte stored**. Write `pipeline_bytes(w, sparsity, bits)`:
#
# 1. prune: `efflib.prune.magnitude_mask(w, sparsity)` (Lab 04's rule);
# 2. share: your `kmeans_quantize` of the **kept** weights only;
# 3. code: Huffman-code their indices with your `huffman_code_lengths`.
#
# Stored are: the positions as a bitmask (one bit per weight of `w`), the
# Huffman-coded indices (the sum of count x length), the table of code lengths
# (one length per symbol of the $2^b$ alphabet, unused ones 0, each in
# $\lceil \log_2(L+1) \rceil$ bits for the longest length $L$, plus 5 bits saying
# that width), and the codebook ($2^b$ 32-bit floats). Return the total in
# bytes, rounded up once.

# %% nbgrader={"grade": false, "grade_id": "q6_huffman", "locked": false, "schema_version": 3, "solution": true, "task": false}
import heapq
from collections import Counter


def huffman_code_lengths(counts):
    """{symbol: code length} of an optimal prefix code for the symbols that occur."""
    ### BEGIN SOLUTION
    symbols = [s for s, c in counts.items() if c > 0]
    if len(symbols) == 1:
        return {symbols[0]: 1}
    heap = [(counts[s], i, [s]) for i, s in enumerate(symbols)]
    heapq.heapify(heap)
    depth = dict.fromkeys(symbols, 0)
    order = len(heap)
    while len(heap) > 1:
        c1, _, a = heapq.heappop(heap)
        c2, _, b = heapq.heappop(heap)
        for s in a + b:
            depth[s] += 1
        heapq.heappush(heap, (c1 + c2, order, a + b))
        order += 1
    return depth
    ### END SOLUTION


def pipeline_bytes(w, sparsity, bits):
    """Bytes Deep Compression stores for w: bitmask, Huffman indices and table, codebook."""
    ### BEGIN SOLUTION
    mask = efflib.prune.magnitude_mask(w.detach(), sparsity)
    _, idx = kmeans_quantize(w.detach()[mask], bits)
    counts = Counter(idx.tolist())
    lengths = huffman_code_lengths(counts)
    payload = sum(c * lengths[s] for s, c in counts.items())
    width = max(1, math.ceil(math.log2(max(lengths.values()) + 1)))
    table = 2**bits * width + 5
    return math.ceil((w.numel() + payload + table + 2**bits * 32) / 8)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q6_huffman_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
"""Q6: optimal Huffman code lengths, and the honest size of the whole pipeline."""
from autograde.checks.lab05_quantization import check_huffman_lengths, check_pipeline_bytes

check_huffman_lengths(huffman_code_lengths)
check_pipeline_bytes(pipeline_bytes)
### BEGIN HIDDEN TESTS
check_huffman_lengths(huffman_code_lengths, hidden=True)
check_pipeline_bytes(pipeline_bytes, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# Your code on two real index streams of `features.7`: its 4-bit k-means
# indices, and its 4-bit linear (per-channel, symmetric) integers. The canonical
# code built from your lengths (efflib's `canonical_code`) encodes each stream
# and decodes it back. Compare each average length with the entropy, the floor
# no prefix code can beat, and with the 4 bits a plain index costs. Which
# stream does Huffman coding shorten more? Think about how each method places
# its 16 values: k-means moves them until each holds a share of the weights,
# while a linear grid spaces them evenly and most weights sit near zero.

# %%
w7 = base.get_submodule("features.7").weight.detach()
spec4 = linear.QuantSpec(4, signed=True, symmetric=True)
s7, z7 = linear.qparams(w7, spec4, axis=0)
streams = {"k-means": kmeans(w7, 4).indices.flatten().tolist(),
           "linear": linear.quantize(w7, s7, z7, spec4, axis=0).flatten().tolist()}
for method, stream in streams.items():
    counts = Counter(stream)
    lengths = plots.attempt(huffman_code_lengths, counts)
    if lengths is None:
        break
    code = huffman.canonical_code(lengths)
    assert huffman.decode(huffman.encode(stream, code), code) == stream, "it does not decode"
    saved = 1 - huffman.average_bits(counts, code) / 4
    print(f"{method:8s} {len(stream):,d} indices: entropy {huffman.entropy(counts):.3f} bits, "
          f"Huffman {huffman.average_bits(counts, code):.3f} bits on average ({saved:.0%} "
          "below the plain 4 bits); decoded back exactly")

# %% [markdown]
# The pipeline on every layer of our network (each layer pruned as far as it
# tolerates without retraining, 4-bit shared values, no fine-tuning): its size
# against fp32, and the accuracy of the reconstructed model. Deep Compression
# itself retrains after pruning and fine-tunes the centroids after sharing (Lab
# 04's fine-tuning and Q5's centroid updates); this run skips both, so its
# accuracy is the floor before that recovery. Which layer dominates what is left,
# and how far would retraining let you push the sparsities?

# %%
SPARSITY, SHARE_BITS = {"features.0": 0.2, "features.3": 0.5, "features.7": 0.6, "fc": 0.3}, 4
compressed = {n: pipeline.compress(base.get_submodule(n).weight, s, SHARE_BITS)
              for n, s in SPARSITY.items()}
rows = []
for name in compressed:
    w = base.get_submodule(name).weight
    stored = plots.attempt(pipeline_bytes, w, SPARSITY[name], SHARE_BITS)
    rows.append((name, w.numel() * 4, stored))
    print(f"{name:11s} fp32 {w.numel() * 4:7,d} B -> {stored if stored else '?':>6} B")
if all(r[2] for r in rows):
    total_fp32, total = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"all weights: {total_fp32:,d} B -> {total:,d} B ({total_fp32 / total:.1f}x)")
deep = with_weights(base, lambda name, w: compressed[name].reconstruct())
print(f"accuracy after prune + share, no fine-tuning: {train.evaluate(deep, loaders.test):.1%}")

# %% [markdown]
# ## Q7. Binary and ternary weights (3 points)
#
# The extreme: one or two bits per weight. **Binary** weights keep only the
# sign and one scale per output channel, $\alpha = \text{mean}|w|$, so
# $w \approx \alpha\,\text{sign}(w)$ (XNOR-Net's scale; take $\text{sign}(0) = +1$).
# **Ternary** weights also zero the small ones (after TWN, Li et al., which uses
# one threshold and one scale per layer; here, as for binary, per channel): with
# $\Delta = 0.7 \cdot \text{mean}|w|$ per channel, weights with $|w| > \Delta$
# become $\pm\alpha$, where $\alpha$ is the mean $|w|$ of those weights, and the
# rest become 0. Write `binarize(w)` and `ternarize(w)`, both per output channel
# (dimension 0), returning tensors of `w`'s shape.

# %% nbgrader={"grade": false, "grade_id": "q7_binary", "locked": false, "schema_version": 3, "solution": true, "task": false}
def binarize(w):
    """alpha * sign(w) with alpha = mean |w| per output channel (sign(0) = +1)."""
    ### BEGIN SOLUTION
    alpha = w.abs().reshape(w.shape[0], -1).mean(dim=1).reshape(-1, *[1] * (w.dim() - 1))
    return torch.where(w >= 0, alpha, -alpha)
    ### END SOLUTION


def ternarize(w):
    """alpha * {-1, 0, +1} per output channel with threshold 0.7 * mean |w|."""
    ### BEGIN SOLUTION
    flat = w.abs().reshape(w.shape[0], -1)
    delta = 0.7 * flat.mean(dim=1, keepdim=True)
    keep = flat > delta
    alpha = (flat * keep).sum(dim=1, keepdim=True) / keep.sum(dim=1, keepdim=True).clamp(min=1)
    return (torch.sign(w).reshape(w.shape[0], -1) * keep * alpha).reshape(w.shape)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q7_binary_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q7: binary and ternary weights with per-channel scales."""
from autograde.checks.lab05_quantization import check_binary_ternary

check_binary_ternary(binarize, ternarize)
### BEGIN HIDDEN TESTS
check_binary_ternary(binarize, ternarize, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Q8. Quantization-aware training (3 points)
#
# Post-training quantization (PTQ) rounds a trained model's weights; the fewer
# the bits, the more accuracy it costs, until at some width it collapses (the
# measurement below finds where, for this network). Quantization-aware training (QAT)
# rounds them in every forward pass while training, so the network learns
# weights that survive rounding. Rounding has zero gradient almost everywhere,
# so the backward pass pretends it was the identity: the **straight-through
# estimator** passes the gradient where the value lay inside the grid and
# zeroes it where the forward pass clamped.
#
# Write `fake_quant_forward(x, scale, zero_point, qmin, qmax)`, the quantize +
# dequantize round trip ($s\,(\text{clamp}(\text{round}(x/s) + z) - z)$), and
# `fake_quant_backward(grad, x, scale, zero_point, qmin, qmax)`, the
# straight-through gradient, each from torch operations on whole tensors (the
# check replays the operations one call runs on new inputs, as in Q2). The cell
# after wraps them in a `torch.autograd.Function`, and the training after that
# uses it.

# %% nbgrader={"grade": false, "grade_id": "q8_fake_quant", "locked": false, "schema_version": 3, "solution": true, "task": false}
def fake_quant_forward(x, scale, zero_point, qmin, qmax):
    """scale * (clamp(round(x / scale) + zero_point, qmin, qmax) - zero_point)."""
    ### BEGIN SOLUTION
    q = torch.clamp(torch.round(x / scale) + zero_point, qmin, qmax)
    return (q - zero_point) * scale
    ### END SOLUTION


def fake_quant_backward(grad, x, scale, zero_point, qmin, qmax):
    """The straight-through gradient: grad where round(x/s) + z lies in [qmin, qmax], else 0."""
    ### BEGIN SOLUTION
    q = torch.round(x / scale) + zero_point
    return grad * ((q >= qmin) & (q <= qmax))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q8_fake_quant_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q8: the fake-quantize round trip and its straight-through gradient."""
from autograde.checks.lab05_quantization import check_fake_quant

check_fake_quant(fake_quant_forward, fake_quant_backward)
### BEGIN HIDDEN TESTS
check_fake_quant(fake_quant_forward, fake_quant_backward, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# PTQ against QAT at 4 and 2 bits: every conv and the classifier's weights
# quantized symmetric per output channel. For QAT the fp32 model is fine-tuned
# for two more epochs with the weights fake-quantized in every forward pass (a
# `parametrize` hook applies your functions). Two details make the comparison
# fair. Each batch norm is first folded into its conv, as the integer model
# deploys it (Jacob et al.; you write the fold in Q10), so the weights QAT trains
# are the ones that ship.
# And the fp32 reference gets the same two epochs of fine-tuning, so that what
# QAT gains or loses is not just the extra training.


# %%
class FakeQuant(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale, qmin, qmax):
        ctx.save_for_backward(x, scale)
        ctx.grid = (qmin, qmax)
        return fake_quant_forward(x, scale, 0, qmin, qmax)

    @staticmethod
    def backward(ctx, grad):
        x, scale = ctx.saved_tensors
        return fake_quant_backward(grad, x, scale, 0, *ctx.grid), None, None, None


class WeightFakeQuant(nn.Module):
    """Symmetric per-output-channel fake quantization of a weight, for parametrize."""

    def __init__(self, bits):
        super().__init__()
        self.qmin, self.qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def forward(self, w):
        bound = w.detach().abs().reshape(w.shape[0], -1).max(dim=1).values
        scale = (bound / ((self.qmax - self.qmin) / 2)).clamp(min=1e-8)
        return FakeQuant.apply(w, scale.reshape(-1, *[1] * (w.dim() - 1)), self.qmin, self.qmax)


class StraightThrough(torch.autograd.Function):
    """`fn(w)` forward; backward, the gradient straight through to the real weights w."""

    @staticmethod
    def forward(ctx, w, fn):
        return fn(w)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class TrainedThrough(nn.Module):
    """BinaryConnect's weights, for parametrize: the layer computes with `fn(w)` while the
    optimizer updates the real weights w behind it (Courbariaux et al.,
    arXiv:1511.00363)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, w):
        return StraightThrough.apply(w, self.fn)


def ptq(model, bits):
    spec = linear.QuantSpec(bits, signed=True, symmetric=True)

    def rounded(name, w):
        s, z = linear.qparams(w, spec, axis=0)
        return linear.dequantize(linear.quantize(w, s, z, spec, axis=0), s, z, axis=0)
    return with_weights(model, rounded)


def folded(model):
    """A copy with every batch norm folded into the conv before it."""
    twin = copy.deepcopy(model)
    for i, layer in enumerate(twin.features):
        if isinstance(layer, nn.BatchNorm2d):
            twin.features[i - 1] = integer.fold_bn(twin.features[i - 1], layer)
            twin.features[i] = nn.Identity()
    return twin


def qat(model, bits, epochs, through=None):
    """Test accuracy after `epochs` of fine-tuning the folded model: its weights
    fake-quantized to `bits`, or replaced by `through(w)` with straight-through gradients
    (BinaryConnect), or in fp32 when both are None."""
    twin = folded(model)
    for name in LAYERS if bits or through else []:
        parametrize.register_parametrization(twin.get_submodule(name), "weight",
                                             WeightFakeQuant(bits) if bits
                                             else TrainedThrough(through))
    train.fit(twin, loaders.train, None, epochs=epochs, fast_epochs=1, lr=1e-3, progress=False)
    return train.evaluate(twin, loaders.test)


accuracy_by_bits = {}
if plots.attempt(fake_quant_forward, torch.zeros(1), 1.0, 0, -1, 1) is None or \
        plots.attempt(fake_quant_backward, torch.ones(1), torch.zeros(1), 1.0, 0, -1, 1) is None:
    print("Finish Q8 to compare PTQ and QAT.")
else:
    tuned_acc = qat(base, None, epochs=2)  # fp32, fine-tuned as long as QAT
    print(f"fp32: {base_acc:.1%} as trained, {tuned_acc:.1%} after the same two epochs")
    for bits in (4, 2):
        accuracy_by_bits[bits] = (train.evaluate(ptq(base, bits), loaders.test),
                                  qat(base, bits, epochs=2))
        print(f"{bits} bits: PTQ {accuracy_by_bits[bits][0]:.1%}, "
              f"QAT {accuracy_by_bits[bits][1]:.1%}")
    fig, ax = plt.subplots(figsize=(5, 3))
    labels = [f"{b} bits" for b in accuracy_by_bits]
    for i, (name, color) in enumerate((("PTQ", "tab:gray"), ("QAT", "tab:blue"))):
        ax.bar([j + 0.38 * i for j in range(len(labels))],
               [100 * v[i] for v in accuracy_by_bits.values()], 0.36, label=name, color=color)
    ax.axhline(100 * base_acc, color="k", ls="--", lw=1, label="fp32")
    ax.axhline(100 * tuned_acc, color="tab:blue", ls=":", lw=1,
               label="fp32, fine-tuned as long as QAT")
    ax.set_xticks([j + 0.19 for j in range(len(labels))], labels)
    ax.set(ylabel="test accuracy (%)", title="Post-training vs quantization-aware")
    ax.legend(fontsize=8)
    plt.show()

# %% [markdown]
# ## Q9. Integer-only inference of a conv layer (4 points)
#
# On an integer-only device the whole layer runs in integers. With activations
# on uint8 grids $x \approx s_x (q_x - z_x)$, $y \approx s_y (q_y - z_y)$ and
# weights int8 symmetric per output channel $w \approx s_w q_w$:
#
# $$\text{acc} = \sum (q_x - z_x)\, q_w + q_b \quad (\text{int32}), \qquad q_b = \text{round}(b / (s_x s_w))$$
# $$q_y = \text{clamp}(z_y + M \cdot \text{acc},\ q_{min}, q_{max}), \qquad M = s_x s_w / s_y$$
#
# $M$ is not an integer, so it is stored as $M = M_0 \cdot 2^{-n}$ with
# $M_0 \in [0.5, 1)$ kept as a 31-bit integer $m_0 = \text{round}(M_0 \cdot 2^{31})$
# (`math.frexp` splits a float into exactly these parts). Then
# $M \cdot \text{acc}$ is one 64-bit product and a rounding shift:
# $(\text{acc} \cdot m_0 + 2^{30+n}) \gg (31 + n)$, which rounds halves up.
# ReLU costs nothing: clamp from $z_y$ instead of $q_{min}$.
#
# Write `quantized_multiplier(m)` returning `(m0, n)` (if rounding makes $m_0 = 2^{31}$,
# halve it and lower $n$ by one), and
# `int_conv2d(q_x, z_x, q_w, q_b, m0, shift, z_y, relu, stride, padding)`
# returning the output integers (int64 tensor) on the uint8 grid $[0, 255]$;
# `m0` and `shift` hold one entry per output channel. Subtract $z_x$ before
# convolving (zero padding then means $q_x = z_x$). `F.conv2d` on float64 copies
# of these integers is exact; PyTorch's quantized ops are refused.

# %% nbgrader={"grade": false, "grade_id": "q9_int_conv", "locked": false, "schema_version": 3, "solution": true, "task": false}
def quantized_multiplier(m):
    """(m0, n) with m ~ m0 * 2^-31 * 2^-n and 2^30 <= m0 < 2^31."""
    ### BEGIN SOLUTION
    mantissa, exponent = math.frexp(m)
    m0 = round(mantissa * 2**31)
    if m0 == 2**31:
        m0, exponent = m0 // 2, exponent + 1
    return m0, -exponent
    ### END SOLUTION


def int_conv2d(q_x, z_x, q_w, q_b, m0, shift, z_y, relu, stride, padding):
    """A conv layer in integers: uint8 in, int8 weights, int32 accumulators, uint8 out."""
    ### BEGIN SOLUTION
    acc = F.conv2d((q_x - z_x).double(), q_w.double(), None, stride, padding)
    acc = acc.round().to(torch.int64) + q_b.reshape(1, -1, 1, 1)
    total = (31 + shift).reshape(1, -1, 1, 1)
    y = (acc * m0.reshape(1, -1, 1, 1) + (1 << (total - 1))) >> total
    return torch.clamp(y + z_y, z_y if relu else 0, 255)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q9_int_conv_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
"""Q9: the fixed-point multiplier, and a conv layer bit for bit in integers."""
from autograde.checks.lab05_quantization import check_int_conv2d, check_quantized_multiplier

check_quantized_multiplier(quantized_multiplier)
check_int_conv2d(int_conv2d)
### BEGIN HIDDEN TESTS
check_quantized_multiplier(quantized_multiplier, hidden=True)
check_int_conv2d(int_conv2d, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Q10. Folding batch norm into the layer before it (3 points)
#
# In eval mode a batch norm is a fixed affine map per channel: for the layer's
# output $z = w * x + b$ in channel $c$,
# $\text{bn}(z) = \gamma_c (z - \mu_c) / \sqrt{\sigma_c^2 + \varepsilon} + \beta_c$
# with the running mean $\mu$ and variance $\sigma^2$ learned in training. So it
# can be folded into the layer: new weights and a new bias that give the same
# output with no batch norm left. Every int8 deployment does this first (Jacob et
# al.), so the folded weights are the ones that get quantized: Q8's QAT above
# trained them, and the integer model below is built from them.
#
# Write `fold_batchnorm(w, b, mean, var, gamma, beta, eps)` returning
# `(w_folded, b_folded)` for a layer whose output channels lie on dimension 0 of
# `w`: a conv's 4-D weight (depthwise too) or a linear layer's 2-D one. `b` may
# be `None` (a conv followed by batch norm usually has no bias); the folded bias
# is always a tensor. torch's batch norm and its fusion helpers are refused; the
# check runs random layers with your weights against torch's batch norm.

# %% nbgrader={"grade": false, "grade_id": "q10_fold_bn", "locked": false, "schema_version": 3, "solution": true, "task": false}
def fold_batchnorm(w, b, mean, var, gamma, beta, eps):
    """(w, b) of one layer computing batch_norm(layer(x)) in eval mode."""
    ### BEGIN SOLUTION
    factor = gamma / torch.sqrt(var + eps)                  # (c_out,)
    w_folded = w * factor.reshape(-1, *[1] * (w.dim() - 1))
    b_folded = beta + ((b if b is not None else torch.zeros_like(mean)) - mean) * factor
    return w_folded, b_folded
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q10_fold_bn_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q10: one layer with batch norm folded in computes what the two did."""
from autograde.checks.lab05_quantization import check_fold_batchnorm

check_fold_batchnorm(fold_batchnorm)
### BEGIN HIDDEN TESTS
check_fold_batchnorm(fold_batchnorm, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# Your fold on the trained network's first conv and its batch norm, run on
# training images against the two layers it replaces:

# %%
conv0, bn0 = base.features[0], base.features[1]
mine = plots.attempt(fold_batchnorm, conv0.weight.detach(), None, bn0.running_mean,
                     bn0.running_var, bn0.weight.detach(), bn0.bias.detach(), bn0.eps)
if mine is not None:
    some = torch.cat([x for x, _ in loaders.train])[:256]
    with torch.no_grad():
        gap = (F.conv2d(some, mine[0], mine[1], padding=1) - bn0(conv0(some))).abs().max()
    print(f"one conv with your folded weights against conv + batch norm: largest difference "
          f"{float(gap):.2g}")

# %% [markdown]
# ## Q11. Calibrating the activations' grids (3 points)
#
# Weights are known before deployment; activations are not. Their grids come
# from a **calibration set**: run some training images through the model and
# look at what each layer outputs. Min/max keeps every value seen, so one rare
# large activation stretches the grid and the common values get fewer levels.
# Two ways to clip instead: a **percentile** (keep up to, say, the 99.99th), and
# **entropy calibration**, TensorRT's (Migacz, "8-bit Inference with TensorRT",
# 2017), which picks the cut whose quantized histogram keeps the most
# information, measured by the KL divergence.
#
# It works on a histogram `hist` of non-negative values (a ReLU's outputs):
# `len(hist)` equal bins from 0 to the largest value. For each candidate cut $i$
# from `levels` to `len(hist)`:
# - **P** is the first $i$ bins, with the counts of every bin beyond them added
#   to bin $i - 1$ (clipped values land on the grid's top);
# - **Q** is the first $i$ bins (without that addition) merged into `levels`
#   levels: level $j$ covers bins $\lfloor j i / \text{levels} \rfloor$ up to,
#   not including, $\lfloor (j + 1) i / \text{levels} \rfloor$, and its total is
#   spread evenly over the level's **non-empty** bins (an empty bin stays 0);
# - $\text{KL}(P \| Q) = \sum p \log(p / q)$ over the bins with $p > 0$, once P
#   and Q are each scaled to sum to 1; it is infinite if $q = 0$ where $p > 0$.
#
# Write `entropy_bins(hist, levels)` returning the $i$ of least KL (the smallest
# $i$ on a tie); the clipping threshold is then $i$ bin widths. The check
# compares the KL of your cut with the least on random histograms.

# %% nbgrader={"grade": false, "grade_id": "q11_entropy", "locked": false, "schema_version": 3, "solution": true, "task": false}
def entropy_bins(hist, levels):
    """How many of the histogram's bins to keep: the cut of least KL(P || Q)."""
    ### BEGIN SOLUTION
    hist = hist.double()
    best, best_kl = None, math.inf
    for i in range(levels, len(hist) + 1):
        kept = hist[:i]
        p = kept.clone()
        p[-1] += hist[i:].sum()
        full = (kept > 0).double()
        ends = torch.tensor([j * i // levels for j in range(levels + 1)])
        sums = torch.cat([torch.zeros(1, dtype=torch.float64), kept.cumsum(0)])
        counts = torch.cat([torch.zeros(1, dtype=torch.float64), full.cumsum(0)])
        spread = (sums[ends[1:]] - sums[ends[:-1]]) / \
            (counts[ends[1:]] - counts[ends[:-1]]).clamp(min=1)
        q = full * spread.repeat_interleave(ends[1:] - ends[:-1])
        mass = p > 0
        if bool((q[mass] == 0).any()):
            continue
        p, q = p / p.sum(), q / q.sum()
        kl = float((p[mass] * torch.log(p[mass] / q[mass])).sum())
        if kl < best_kl:
            best, best_kl = i, kl
    return best
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q11_entropy_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q11: the entropy calibration's cut of least KL divergence."""
from autograde.checks.lab05_quantization import check_entropy_bins

check_entropy_bins(entropy_bins)
### BEGIN HIDDEN TESTS
check_entropy_bins(entropy_bins, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# The three calibrations on the trained network. The outputs of its three ReLUs
# on 512 training images set each grid's top: the largest value (min/max), the
# 99.99th percentile, or your entropy cut (`levels` = the grid's size, four bins
# per level). Then the test images run with every ReLU output fake-quantized on
# an unsigned grid of 8, 6, 4, 3 or 2 bits from 0 to that top; the weights stay in
# fp32, so only the activations' grids differ. Which calibration would you pick
# at 8 bits, and which at 2? The grids' tops are printed beside the accuracies.

# %%
relus = [m for m in base.modules() if isinstance(m, nn.ReLU)]
seen = {}
hooks = [m.register_forward_hook(lambda m, i, out: seen.__setitem__(m, out.detach().flatten()))
         for m in relus]
with torch.no_grad():
    base(torch.cat([x for x, _ in loaders.train])[:512])
for hook in hooks:
    hook.remove()


def grid_top(values, method, bits):
    """Where the unsigned grid of `bits` stops for these activations."""
    top = float(values.max())
    if method == "min/max":
        return top
    if method == "99.99th percentile":
        return float(torch.quantile(values, 0.9999))
    hist = torch.histc(values, 4 * 2**bits, 0, top)
    return entropy_bins(hist, 2**bits) * top / len(hist)


def accuracy_with_grids(tops, bits):
    """Test accuracy with every ReLU's output fake-quantized on [0, its top]."""
    def on_grid(m, i, out):
        step = tops[m] / (2**bits - 1)
        return torch.clamp(torch.round(out / step), 0, 2**bits - 1) * step
    hooks = [m.register_forward_hook(on_grid) for m in relus]
    try:
        return train.evaluate(base, loaders.test)
    finally:
        for hook in hooks:
            hook.remove()


METHODS = ["min/max", "99.99th percentile", "entropy"]
ACT_BITS = [8, 6, 4, 3, 2]
by_method = {}
if plots.attempt(entropy_bins, torch.ones(4), 2) is None:
    METHODS = METHODS[:2]
    print("Finish Q11 to see the entropy calibration beside the other two.")
print("largest ReLU outputs seen: " + ", ".join(f"{float(seen[m].max()):.2f}" for m in relus))
for method in METHODS:
    by_method[method], tops_at = [], {}
    for bits in ACT_BITS:
        if method == "entropy" or bits == ACT_BITS[0]:  # only the entropy cut moves with bits
            tops = {m: grid_top(seen[m], method, bits) for m in relus}
        tops_at[bits] = tops
        by_method[method].append(accuracy_with_grids(tops, bits))
    print(f"{method:>18s}: " + ", ".join(f"{b} bits {100 * a:.1f}%" for b, a in
                                        zip(ACT_BITS, by_method[method], strict=True))
          + "; grid tops at 8 bits " + ", ".join(f"{t:.2f}" for t in tops_at[8].values()))
fig, ax = plt.subplots(figsize=(5.5, 3.2))
for method, accs in by_method.items():
    ax.plot(ACT_BITS, [100 * a for a in accs], "o-", label=method)
ax.axhline(100 * base_acc, color="k", ls="--", lw=1, label="fp32")
ax.set(xlabel="bits per activation", ylabel="test accuracy (%)",
       title="Activation grids from three calibrations")
ax.invert_xaxis()
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Measured: fp32 against int8 on this machine
#
# Where this sits among inference engines: `torch.ao`'s quantized modules run
# int8 inside PyTorch, on its x86 and ARM backends. A deployed model usually
# runs in a dedicated engine instead: MNN (Alibaba) and ncnn (Tencent) on phones,
# TensorRT on NVIDIA GPUs, OpenVINO on Intel CPUs. Each imports a trained model
# (often as ONNX), folds and fuses layers, calibrates its own int8 or fp16 grids
# and picks kernels for its hardware. Lab 06's standalone C program is the same
# idea at its smallest: the integer model written out as code with no runtime at
# all, as the engines for microcontrollers (TinyEngine, TFLite Micro) do.
#
# efflib converts the trained network to integers the same way (batch norm
# folded into its conv, activation grids observed on the training images) and
# runs it on PyTorch's own int8 kernels (`torch.ao` quantized modules). Which
# kernels matters: the x86 engine (fbgemm) adds pairs of 8-bit products in
# 16-bit lanes unless the CPU has VNNI instructions, and two products of 255 and
# 127 overflow a 16-bit lane (64,770 > 32,767). So efflib picks x86 where the CPU
# has VNNI and qnnpack elsewhere (the cell prints which). PyTorch's own recipe
# for x86 without VNNI narrows activations to 7 bits instead. Your `int_conv2d`
# reproduces the first layer below. Then size,
# accuracy and latency at batch 1 and 256, and the accuracy of every method of
# this lab against its bits per weight. fp32 and int8 are timed in turns
# (`efflib.measure_in_turns`: a round calls each once), so a load that comes
# and goes slows both alike. The latency figures carry their spread; if it is
# large, the machine was busy: run the cell again.
#
# Binary and ternary weights appear twice in the accuracy plot: made from the
# trained weights (your Q7), and trained as BinaryConnect trains them
# (Courbariaux et al., [arXiv:1511.00363](https://arxiv.org/abs/1511.00363)):
# the layers compute with `binarize(w)` or `ternarize(w)` while the optimizer
# updates real-valued weights $w$ behind them, the gradient passed straight
# through as in Q8, for the same two epochs as QAT.

# %%
calibration = torch.cat([x for x, _ in loaders.train])
int_model = integer.convert(base, calibration)
first = int_model.steps[0][1]
q_in = int_model.quantize_input(calibration[:64])
mine = plots.attempt(int_conv2d, q_in, int_model.input.zero_point, first.weight, first.bias,
                     first.m0, first.shift, first.y.zero_point, True, 1, 1)
if mine is not None:
    same = torch.equal(mine.to(torch.int64), first(q_in))
    print(f"your int_conv2d on the first layer: {'identical to' if same else 'DIFFERS from'} "
          "efflib's integer model")
int8 = torch_int8.to_torch(int_model)
print(f"torch.ao engine: {torch_int8.engine()}")
test_x = torch.cat([x for x, _ in loaders.test])
test_y = torch.cat([y for _, y in loaders.test])
fp32_bytes = efflib.model_size(base, 32)
int8_bytes = int_model.stored_bytes()  # weights, biases, multipliers, grids
both = {"fp32": base, "int8 (torch.ao)": int8}
# the two are timed in turns (a round calls each once), so a load that comes and goes
# slows both alike and their ratio holds
lat_at = {b: efflib.measure_in_turns({name: (model, test_x[:b].contiguous())
                                      for name, model in both.items()},
                                     warmup=3, repeats=5 if FAST else 30, num_threads=1,
                                     budget_s=0.6 if FAST else 2.0)
          for b in (1, 256)}
results = {}
for name, model in both.items():
    with torch.no_grad():
        acc = float((model(test_x).argmax(1) == test_y).float().mean())
    lat = {b: lat_at[b][name] for b in (1, 256)}
    results[name] = (acc, lat)
    print(f"{name:16s} accuracy {acc:.1%}  batch 1 {lat[1].median * 1e3:6.3f} ms "
          f"(IQR {lat[1].iqr * 1e3:.3f})  batch 256 {lat[256].median * 1e3:6.2f} ms "
          f"(IQR {lat[256].iqr * 1e3:.2f})")
print(f"stored: fp32 {fp32_bytes:,d} B, int8 {int8_bytes:,d} B "
      f"({fp32_bytes / int8_bytes:.1f}x smaller)")

points = {"linear (per channel)": [(b, train.evaluate(ptq(base, b), loaders.test))
                                   for b in (8, 6, 4, 3, 2)]}
if shared:
    points["k-means, fine-tuned"] = [(b, v[1]) for b, v in shared.items()]
if accuracy_by_bits:
    points["linear, QAT (per channel)"] = [(b, v[1]) for b, v in accuracy_by_bits.items()]
if plots.attempt(binarize, torch.ones(1, 1)) is not None and \
        plots.attempt(ternarize, torch.ones(1, 1)) is not None:
    points["binary / ternary"] = [
        (1, train.evaluate(with_weights(base, lambda n, w: binarize(w)), loaders.test)),
        (math.log2(3), train.evaluate(with_weights(base, lambda n, w: ternarize(w)),
                                      loaders.test))]
    points["binary / ternary, trained (BinaryConnect)"] = [
        (1, qat(base, None, epochs=2, through=binarize)),
        (math.log2(3), qat(base, None, epochs=2, through=ternarize))]
    print("binary / ternary weights: " + ", ".join(
        f"{kind} {100 * a:.1f}%" for kind, a in zip(
            ("binary as trained", "ternary as trained", "binary trained through",
             "ternary trained through"),
            [a for _, a in points["binary / ternary"]]
            + [a for _, a in points["binary / ternary, trained (BinaryConnect)"]],
            strict=True)))
fig, ax = plt.subplots(figsize=(6.5, 3.5))
for label, pts in points.items():
    ax.plot([b for b, _ in pts], [100 * a for _, a in pts], "o-", label=label)
ax.axhline(100 * base_acc, color="k", ls="--", lw=1, label="fp32")
ax.set(xlabel="bits per weight", ylabel="test accuracy (%)",
       title="Accuracy against bits, no retraining unless stated")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Q12. Reflection (2 points, graded by hand)
#
# From your measurements above: how much smaller and how much faster was the
# int8 model than fp32, at batch 1 and at batch 256, and why can the speed-up
# differ from the 4x saving in bytes? Which method in the accuracy plot would
# you ship at 2-3 bits per weight, and what would it cost to run on an
# integer-only microcontroller (three to six sentences, quoting your numbers)?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q12_reflection", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# A good answer quotes the measured table: the int8 model stores about a quarter
# of the fp32 bytes (a little more, for the int32 biases and the per-channel
# multipliers). Its speed-up is not the 4x in bytes, and may be none at all: at
# batch 1 this tiny network is dominated by per-layer overheads (quantizing the
# input, dispatch, the requantization step), so int8 may be no faster or even
# slower; at batch 256, where arithmetic dominates, int8 wins only if the
# engine's int8 kernels beat its fp32 ones. On a CPU without VNNI efflib runs
# qnnpack, written for ARM phones, against fp32 kernels tuned for x86, and the
# two came out within a factor of two of each other at batch 256, either way
# round from run to run; fbgemm on a CPU with VNNI, or qnnpack on ARM, is where
# the smaller bytes turn into speed. At 2-3 bits, compare like with like: the retrained methods (k-means with
# fine-tuned centroids, linear QAT) against each other, not against untrained
# PTQ, which is bound to lose. Whichever keeps more accuracy in your run, k-means
# needs a codebook lookup per weight and float centroids, so on an integer-only
# microcontroller linear weights trained with QAT keep the arithmetic integer
# and are the ones to ship unless k-means wins by a clear margin.
# ### END SOLUTION
