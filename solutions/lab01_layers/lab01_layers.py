# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 01: Layers and shape arithmetic
#
# *Efficient Deep Learning for Edge Deployment*
#
# Before we can count the cost of a network (Lab 02), prune it (Lab 04) or
# write its loops in C (Lab 06), we must know exactly what each layer does to
# the shape of a tensor. In this lab you write the core layers from simpler
# tensor operations and the arithmetic that predicts their shapes, and you
# check every answer against PyTorch.
#
# **How this lab is graded.** Each `## Q…` heading gives its points. Write your
# code where it says `YOUR CODE HERE` and delete the `raise NotImplementedError()`.
# The cell after each answer runs a *visible* check with a few fixed cases; the
# grader adds *hidden* checks with random cases, so make your code general, not
# tuned to the examples. A failing check tells you the case, the expected value
# and what you returned. Questions that ask you to write a layer yourself refuse
# answers that call the matching `torch` function (or efflib's copy of it). For
# those, the check records the torch operations one call of your function runs
# and replays them on new inputs: compute the result from the input tensors with
# torch operations, not through `.item()`, NumPy or values worked out beforehand,
# and work on whole slices rather than looping over single elements (at most
# 10,000 operations per call). Q9 is read by a person.
#
# Notation used throughout (lecture 02; Q6 uses the edge-deployment notes' single
# letters instead): a batch of `n` feature maps with `c_i`
# channels of height `h_i` and width `w_i`, kernels `k_h x k_w`, `c_o` output
# channels of size `h_o x w_o`, padding `p`, stride `s`, groups `g`.

# %%
import torch
import torch.nn as nn
import torch.nn.functional as F

from efflib import plots

torch.manual_seed(0)
print(f"torch {torch.__version__}")

# %% [markdown]
# ## Q1. Linear layer (2 points)
#
# A fully-connected (linear) layer connects every output neuron to every input
# neuron: $y_{i} = \sum_j w_{ij} x_j + b_i$. With a batch, the tensors are
#
# | tensor | shape |
# |---|---|
# | input features $X$ | $(n, c_i)$ |
# | weights $W$ | $(c_o, c_i)$ |
# | bias $b$ | $(c_o,)$ |
# | output features $Y$ | $(n, c_o)$ |
#
# Write `linear_forward(x, W, b)` returning $Y = XW^\top + b$ using tensor
# arithmetic only (no `F.linear`, no `nn.Linear`).

# %% nbgrader={"grade": false, "grade_id": "q1_linear", "locked": false, "schema_version": 3, "solution": true, "task": false}
def linear_forward(x, W, b):
    """Linear layer: x (n, c_i), W (c_o, c_i), b (c_o,) -> (n, c_o)."""
    ### BEGIN SOLUTION
    return x @ W.T + b  # (n, c_o)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q1_linear_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
"""Q1: linear_forward equals torch.nn.functional.linear."""
from autograde.checks.lab01_layers import check_linear_forward

check_linear_forward(linear_forward)
### BEGIN HIDDEN TESTS
check_linear_forward(linear_forward, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Q2. Convolution output sizes (5 points)
#
# Without padding, a $k$-wide kernel fits $h_i - k + 1$ times into an input of
# height $h_i$. Padding $p$ on both sides adds $2p$ positions, and a stride $s$
# keeps only every $s$-th position, so the lecture's formula is
#
# $$h_o = \left\lfloor \frac{h_i + 2p - k}{s} \right\rfloor + 1 .$$
#
# The floor matters: AlexNet's first layer maps 224 to $\lfloor (224 + 4 - 11)/4 \rfloor + 1 = 55$,
# and a 3x3/stride-2 max pool maps 55 to 27. (Some slides write the numerator
# as "input - filter + stride" and drop the floor; that only works when the
# division is exact.)
#
# A **dilated** kernel (`dilation=d`) leaves $d-1$ gaps between its taps, so it
# covers more input with the same number of weights.
#
# **(a)** Write `conv_output_size(size, kernel, stride=1, padding=0, dilation=1)`
# returning the output length along one axis, exactly as `nn.Conv2d` computes it.

# %% nbgrader={"grade": false, "grade_id": "q2_conv_size", "locked": false, "schema_version": 3, "solution": true, "task": false}
def conv_output_size(size, kernel, stride=1, padding=0, dilation=1):
    """Output length of a convolution along one axis (an int)."""
    ### BEGIN SOLUTION
    span = dilation * (kernel - 1) + 1  # input positions covered by one output
    return (size + 2 * padding - span) // stride + 1
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q2_conv_size_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
"""Q2a: conv_output_size matches nn.Conv2d, dilation included."""
from autograde.checks.lab01_layers import check_conv_output_size

check_conv_output_size(conv_output_size)
### BEGIN HIDDEN TESTS
check_conv_output_size(conv_output_size, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# **(b)** A transposed convolution (`nn.ConvTranspose2d`, used by decoders and
# upsampling layers) maps shapes the other way: an input of length $h_i$ comes
# out as long as the input that a convolution with the same settings would have
# reduced to $h_i$. `output_padding` adds that many positions on one side, to
# pick between inputs a strided convolution would send to the same size.
# Write `conv_transpose_output_size(size, kernel, stride=1, padding=0, output_padding=0, dilation=1)`.

# %% nbgrader={"grade": false, "grade_id": "q2_conv_transpose_size", "locked": false, "schema_version": 3, "solution": true, "task": false}
def conv_transpose_output_size(size, kernel, stride=1, padding=0, output_padding=0, dilation=1):
    """Output length of a transposed convolution along one axis (an int)."""
    ### BEGIN SOLUTION
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q2_conv_transpose_size_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
"""Q2b: conv_transpose_output_size matches nn.ConvTranspose2d."""
from autograde.checks.lab01_layers import check_conv_transpose_output_size

check_conv_transpose_output_size(conv_transpose_output_size)
### BEGIN HIDDEN TESTS
check_conv_transpose_output_size(conv_transpose_output_size, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# **(c)** The course notes build a convolutional autoencoder whose encoder shrinks a
# 3x32x32 image to 256x4x4 and whose decoder grows it back:
#
# ```python
# decoder = nn.Sequential(
#     nn.ConvTranspose2d(256, 128, 5, stride=1), nn.ReLU(True),
#     nn.ConvTranspose2d(128, 64, 9, stride=1), nn.ReLU(True),
#     nn.ConvTranspose2d(64, 3, 17, stride=1), nn.Tanh(),
# )
# ```
#
# Use your function to fill `decoder_sizes` with the spatial size after each of
# the three transposed convolutions, starting from 4x4. Does the decoder really
# return a 32x32 image?

# %% nbgrader={"grade": false, "grade_id": "q2_decoder", "locked": false, "schema_version": 3, "solution": true, "task": false}
decoder_sizes = None
### BEGIN SOLUTION
decoder_sizes = []
size = 4
for kernel in (5, 9, 17):
    size = conv_transpose_output_size(size, kernel)
    decoder_sizes.append(size)
### END SOLUTION
print("decoder sizes:", decoder_sizes)

# %% nbgrader={"grade": true, "grade_id": "q2_decoder_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
"""Q2c: decoder_sizes lists the size after each ConvTranspose2d."""
from autograde.checks.lab01_layers import check_decoder_sizes

check_decoder_sizes(decoder_sizes)

# %% [markdown]
# ## Q3. Padding by hand (2 points)
#
# Padding keeps the feature map from shrinking ($h_o = h_i + 2p - k + 1$, so
# $p = 1$ keeps a 3x3 convolution's size). The lecture shows three ways to fill
# the border of the 3x3 map `1..9` with $p = 2$:
#
# * **zeros**: the border is 0 (PyTorch's default);
# * **reflect**: mirror the map *without* repeating the edge, so the row above
#   `1 2 3` is `4 5 6`;
# * **replicate**: repeat the edge value outward, so every pixel above `1` is `1`.
#
# Write `pad2d(x, p, mode)` for `x` of shape `(N, C, H, W)`, padding `p` pixels on
# every side with `mode` one of `"zeros"`, `"reflect"`, `"replicate"`. Use
# indexing and concatenation (no `F.pad`, no `nn.*Pad2d`). Raise `ValueError`
# for any other mode. You may assume `p < H` and `p < W`.

# %% nbgrader={"grade": false, "grade_id": "q3_pad", "locked": false, "schema_version": 3, "solution": true, "task": false}
def pad2d(x, p, mode="zeros"):
    """Pad the last two axes of x (N, C, H, W) by p on each side -> (N, C, H+2p, W+2p)."""
    ### BEGIN SOLUTION
    if mode not in ("zeros", "reflect", "replicate"):
        raise ValueError(f"unknown padding mode {mode!r}")
    if p == 0:
        return x.clone()
    n, c, h, w = x.shape
    if mode == "zeros":
        out = x.new_zeros(n, c, h + 2 * p, w + 2 * p)
        out[:, :, p:p + h, p:p + w] = x
        return out
    if mode == "reflect":
        rows = list(range(p, 0, -1)) + list(range(h)) + list(range(h - 2, h - 2 - p, -1))
        cols = list(range(p, 0, -1)) + list(range(w)) + list(range(w - 2, w - 2 - p, -1))
    else:
        rows = [0] * p + list(range(h)) + [h - 1] * p
        cols = [0] * p + list(range(w)) + [w - 1] * p
    return x[:, :, rows][:, :, :, cols]  # (N, C, H+2p, W+2p)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q3_pad_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
"""Q3: pad2d equals F.pad in zeros, reflect and replicate modes."""
from autograde.checks.lab01_layers import check_pad2d

check_pad2d(pad2d)
### BEGIN HIDDEN TESTS
check_pad2d(pad2d, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# Your three paddings of the lecture's example, side by side:

# %%
example = torch.arange(1.0, 10.0).reshape(1, 1, 3, 3)
plots.show_maps({"input": example[0, 0]} | {
    mode: plots.attempt(pad2d, example, 2, mode) for mode in ("zeros", "reflect", "replicate")
})

# %% [markdown]
# ## Q4. Receptive field (2 points)
#
# Each output of a convolution sees a $k \times k$ window of its input: its
# **receptive field**. Stacking $L$ stride-1 layers of kernel $k$ adds $k - 1$
# per layer, giving $L(k-1) + 1$ (two 3x3 layers see 5x5, three see 7x7).
#
# Strides change this: after a stride-2 layer, neighbouring outputs are 2 input
# pixels apart, so the *next* layer's $k-1$ extra taps each reach 2 pixels further.
# This is why networks downsample: a large image needs too many stride-1 layers
# before any output sees the whole of it.
#
# Write `receptive_field(layers)` where `layers` is a list of `(kernel, stride)`
# pairs, first layer first, returning the receptive field (one side, in input
# pixels) of one output of the last layer.

# %% nbgrader={"grade": false, "grade_id": "q4_receptive_field", "locked": false, "schema_version": 3, "solution": true, "task": false}
def receptive_field(layers):
    """Receptive field of one output of a stack of (kernel, stride) layers."""
    ### BEGIN SOLUTION
    field, jump = 1, 1  # jump: input pixels between neighbouring positions
    for kernel, stride in layers:
        field += (kernel - 1) * jump
        jump *= stride
    return field
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q4_receptive_field_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
"""Q4: receptive_field matches the field measured by backpropagation."""
from autograde.checks.lab01_layers import check_receptive_field

check_receptive_field(receptive_field)
### BEGIN HIDDEN TESTS
check_receptive_field(receptive_field, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# How fast does the field grow? Compare plain 3x3 stacks with stacks that
# downsample every other layer (log scale):

# %%
plots.growth_curves(receptive_field, {
    "3x3, stride 1": [(3, 1)] * 12,
    "3x3, stride 2 every 2nd layer": [(3, 1), (3, 2)] * 6,
    "5x5, stride 1": [(5, 1)] * 12,
    "AlexNet-like (11/4, pool 3/2, ...)": [(11, 4), (3, 2), (5, 1), (3, 2), (3, 1), (3, 1),
                                           (3, 1), (3, 2)],
}, ylabel="receptive field (pixels)", logy=True)

# %% [markdown]
# ## Q5. Grouped, depthwise and factorised convolutions (4 points)
#
# A **grouped** convolution splits the $c_i$ input and $c_o$ output channels into
# $g$ groups and convolves each group separately. Its weight tensor has shape
# $(c_o, c_i/g, k_h, k_w)$: $g$ times fewer weights. A **depthwise** convolution
# is the extreme $g = c_i = c_o$: one $k_h \times k_w$ filter per channel.
# (AlexNet used $g=2$ to split the model over two GPUs.)
#
# **(a)** Write `conv_weight_shape(c_in, c_out, kernel, groups=1)` returning the
# weight shape as a tuple; `kernel` is an int or an `(k_h, k_w)` pair. Raise
# `ValueError` when `c_in` or `c_out` is not divisible by `groups`, as PyTorch does.
# Compute it from the arguments: building the layer, even on the meta device, is
# refused here and in (b).

# %% nbgrader={"grade": false, "grade_id": "q5_weight_shape", "locked": false, "schema_version": 3, "solution": true, "task": false}
def conv_weight_shape(c_in, c_out, kernel, groups=1):
    """Shape of nn.Conv2d(c_in, c_out, kernel, groups=groups).weight, as a tuple."""
    ### BEGIN SOLUTION
    if c_in % groups or c_out % groups:
        raise ValueError(f"channels {c_in} -> {c_out} are not divisible by groups={groups}")
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    return (c_out, c_in // groups, kh, kw)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q5_weight_shape_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
"""Q5a: conv_weight_shape equals nn.Conv2d's weight shape."""
from autograde.checks.lab01_layers import check_conv_weight_shape

check_conv_weight_shape(conv_weight_shape)
### BEGIN HIDDEN TESTS
check_conv_weight_shape(conv_weight_shape, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# **(b)** Efficient architectures *factorise* a $k \times k$ convolution
# from $c_i$ to $c_o$ channels (bias ignored):
#
# * `"standard"`: one $k \times k$ convolution, $c_i \to c_o$;
# * `"spatial"` (Inception v3): a $1 \times k$ convolution $c_i \to c_o$ followed by a
#   $k \times 1$ convolution $c_o \to c_o$ (Lab 03 builds it);
# * `"separable"` (MobileNet): a $k \times k$ depthwise convolution on the $c_i$
#   channels followed by a $1 \times 1$ (pointwise) convolution $c_i \to c_o$.
#
# Write `factorised_params(c_in, c_out, k)` returning a dict with those three
# keys and the number of weights of each design.

# %% nbgrader={"grade": false, "grade_id": "q5_factorised", "locked": false, "schema_version": 3, "solution": true, "task": false}
def factorised_params(c_in, c_out, k):
    """Weights of standard, spatially factorised and depthwise-separable k x k convs."""
    ### BEGIN SOLUTION
    return {
        "standard": c_out * c_in * k * k,
        "spatial": c_out * c_in * k + c_out * c_out * k,
        "separable": c_in * k * k + c_out * c_in,
    }
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q5_factorised_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
"""Q5b: factorised_params counts weights as PyTorch does."""
from autograde.checks.lab01_layers import check_factorised_params

check_factorised_params(factorised_params)
### BEGIN HIDDEN TESTS
check_factorised_params(factorised_params, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Q6. The convolution as an einsum (3 points)
#
# The edge-deployment notes (after Sze et al., *Efficient Processing of Deep
# Neural Networks*) name the axes of a convolution layer with single letters:
#
# | letter | meaning | | letter | meaning |
# |---|---|---|---|---|
# | N | batch size | | R, S | filter height, width |
# | C | input channels | | M | output channels |
# | H, W | input height, width | | P, Q | output height, width |
# | U | stride | | | |
#
# so that, for a padded input $I$ and filters $F$,
#
# $$O[n, m, p, q] = \sum_{c, r, s} I[n, c, Up + r, Uq + s]\; F[m, c, r, s] .$$
#
# Once every window $I[n, c, Up + r, Uq + s]$ is laid out as a 6-D tensor
# indexed by $(n, c, p, q, r, s)$, the whole layer is **one** `torch.einsum`.
# `Tensor.unfold(dim, size, step)` builds such windows without copying.
#
# Write `conv2d_einsum(x, w, stride=1, padding=0)` for `x` (N, C, H, W) and
# `w` (M, C, R, S), returning (N, M, P, Q). Use `torch.einsum`; the check
# refuses `F.conv2d`, `F.unfold` and their relatives. (Padding with zeros is
# allowed any way you like, including your `pad2d`.)

# %% nbgrader={"grade": false, "grade_id": "q6_einsum", "locked": false, "schema_version": 3, "solution": true, "task": false}
def conv2d_einsum(x, w, stride=1, padding=0):
    """2-D convolution (no bias) of x (N, C, H, W) with w (M, C, R, S) via torch.einsum."""
    ### BEGIN SOLUTION
    if padding:
        x = pad2d(x, padding, "zeros")  # (N, C, H+2p, W+2p)
    r, s = w.shape[-2:]
    windows = x.unfold(2, r, stride).unfold(3, s, stride)  # (N, C, P, Q, R, S)
    return torch.einsum("ncpqrs,mcrs->nmpq", windows, w)  # (N, M, P, Q)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q6_einsum_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q6: conv2d_einsum equals F.conv2d and is written with torch.einsum."""
from autograde.checks.lab01_layers import check_conv2d_einsum

check_conv2d_einsum(conv2d_einsum)
### BEGIN HIDDEN TESTS
check_conv2d_einsum(conv2d_einsum, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Q7. Normalisation (3 points)
#
# A normalisation layer computes $\hat x = (x - \mu)/\sqrt{\sigma^2 + \epsilon}$
# where the mean $\mu$ and the (biased) variance $\sigma^2$ are taken over a set of
# positions that depends on the kind (Wu & He, *Group Normalization*, ECCV 2018):
#
# | kind | statistics over, for `x` of shape (N, C, H, W) |
# |---|---|
# | `"batch"` | N, H, W: one mean per channel |
# | `"layer"` | C, H, W: one mean per sample |
# | `"instance"` | H, W: one mean per sample and channel |
# | `"group"` | H, W and the C/G channels of each group: one mean per sample and group |
#
# (A trained layer then applies a learned per-channel scale and shift; leave
# that out here.) Write `normalize(x, kind, num_groups=1, eps=1e-5)` without the
# torch normalisation functions; raise `ValueError` for an unknown kind.

# %% nbgrader={"grade": false, "grade_id": "q7_normalize", "locked": false, "schema_version": 3, "solution": true, "task": false}
def normalize(x, kind, num_groups=1, eps=1e-5):
    """Batch, layer, instance or group normalisation of x (N, C, H, W), no affine."""
    ### BEGIN SOLUTION
    n, c, h, w = x.shape
    if kind == "group":
        grouped = x.reshape(n, num_groups, c // num_groups, h, w)  # (N, G, C/G, H, W)
        return normalize(grouped.reshape(n, num_groups, -1, 1), "instance", eps=eps).reshape(
            n, c, h, w)
    dims = {"batch": (0, 2, 3), "layer": (1, 2, 3), "instance": (2, 3)}.get(kind)
    if dims is None:
        raise ValueError(f"unknown normalisation kind {kind!r}")
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q7_normalize_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q7: normalize matches torch's batch, layer, instance and group norm."""
from autograde.checks.lab01_layers import check_normalize

check_normalize(normalize)
### BEGIN HIDDEN TESTS
check_normalize(normalize, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Q8. Activations and pooling (4 points)
#
# **(a)** Write the five activations below from elementwise tensor operations
# (`torch.exp`, `torch.erf`, `torch.clamp`, `torch.where`, arithmetic), not from
# their torch versions:
#
# * ReLU $\max(0, x)$; sigmoid $1/(1 + e^{-x})$; tanh $(e^x - e^{-x})/(e^x + e^{-x})$
#   (hint: it is a rescaled sigmoid, which avoids overflow);
# * hard swish (MobileNetV3) $x \cdot \mathrm{ReLU6}(x + 3)/6$ with
#   $\mathrm{ReLU6}(z) = \min(\max(z, 0), 6)$: a cheap, piecewise version of $x\,\sigma(x)$;
# * GELU $x \cdot \Phi(x)$ with the normal CDF $\Phi(x) = \tfrac12(1 + \mathrm{erf}(x/\sqrt2))$.

# %% nbgrader={"grade": false, "grade_id": "q8_activations", "locked": false, "schema_version": 3, "solution": true, "task": false}
def relu(x):
    """ReLU, elementwise."""
    ### BEGIN SOLUTION
    return torch.where(x > 0, x, torch.zeros_like(x))
    ### END SOLUTION


def sigmoid(x):
    """Logistic sigmoid, elementwise."""
    ### BEGIN SOLUTION
    return 1 / (1 + torch.exp(-x))
    ### END SOLUTION


def tanh(x):
    """Hyperbolic tangent, elementwise."""
    ### BEGIN SOLUTION
    return 2 * sigmoid(2 * x) - 1
    ### END SOLUTION


def hard_swish(x):
    """Hard swish (MobileNetV3, arXiv:1905.02244), elementwise."""
    ### BEGIN SOLUTION
    return x * torch.clamp(x + 3, 0, 6) / 6
    ### END SOLUTION


def gelu(x):
    """GELU, exact erf form (arXiv:1606.08415), elementwise."""
    ### BEGIN SOLUTION
    return 0.5 * x * (1 + torch.erf(x / 2**0.5))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q8_activations_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
"""Q8a: the five activations match torch's."""
from autograde.checks.lab01_layers import check_activation

for name, fn in [("relu", relu), ("sigmoid", sigmoid), ("tanh", tanh),
                 ("hard_swish", hard_swish), ("gelu", gelu)]:
    check_activation(name, fn)
### BEGIN HIDDEN TESTS
for name, fn in [("relu", relu), ("sigmoid", sigmoid), ("tanh", tanh),
                 ("hard_swish", hard_swish), ("gelu", gelu)]:
    check_activation(name, fn, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# Your curves (orange) over torch's (dashed), with torch's derivative dotted.
# Note where hard swish and GELU let small negative values through, and where
# sigmoid and tanh stop passing gradient.

# %%
plots.compare_curves(
    {"relu": relu, "sigmoid": sigmoid, "tanh": tanh, "hard_swish": hard_swish, "gelu": gelu},
    {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
     "hard_swish": F.hardswish, "gelu": F.gelu},
)

# %% [markdown]
# **(b)** A pooling layer slides a window over each channel independently and
# keeps the maximum or the mean; it has no weights. Write
# `max_pool2d(x, kernel, stride=None)` and `avg_pool2d(x, kernel, stride=None)`
# for `x` (N, C, H, W), without padding; `stride=None` means `stride = kernel`.
# A window that would run past the edge is dropped, as in torch's default.
# `Tensor.unfold` helps again; the torch pooling functions are refused.

# %% nbgrader={"grade": false, "grade_id": "q8_pooling", "locked": false, "schema_version": 3, "solution": true, "task": false}
def max_pool2d(x, kernel, stride=None):
    """Max pooling of x (N, C, H, W) -> (N, C, P, Q)."""
    ### BEGIN SOLUTION
    stride = kernel if stride is None else stride
    windows = x.unfold(2, kernel, stride).unfold(3, kernel, stride)  # (N, C, P, Q, k, k)
    return windows.amax(dim=(-2, -1))
    ### END SOLUTION


def avg_pool2d(x, kernel, stride=None):
    """Average pooling of x (N, C, H, W) -> (N, C, P, Q)."""
    ### BEGIN SOLUTION
    stride = kernel if stride is None else stride
    windows = x.unfold(2, kernel, stride).unfold(3, kernel, stride)  # (N, C, P, Q, k, k)
    return windows.mean(dim=(-2, -1))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q8_pooling_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
"""Q8b: max_pool2d and avg_pool2d match torch's pooling."""
from autograde.checks.lab01_layers import check_pool2d

check_pool2d("max", max_pool2d)
check_pool2d("avg", avg_pool2d)
### BEGIN HIDDEN TESTS
check_pool2d("max", max_pool2d, hidden=True)
check_pool2d("avg", avg_pool2d, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Putting it together
#
# Your functions now describe AlexNet's feature extractor (lecture version:
# 96/256/384/384/256 channels, groups of 2) well enough to predict every shape
# without running it. The cell below compares your prediction with PyTorch for
# each layer (it prints a row per layer and runs once all your answers work).

# %%
alexnet_features = [  # (name, c_out, kernel, stride, padding, groups); pools have c_out None
    ("conv1", 96, 11, 4, 2, 1), ("pool1", None, 3, 2, 0, 1),
    ("conv2", 256, 5, 1, 2, 2), ("pool2", None, 3, 2, 0, 1),
    ("conv3", 384, 3, 1, 1, 1), ("conv4", 384, 3, 1, 1, 2),
    ("conv5", 256, 3, 1, 1, 2), ("pool5", None, 3, 2, 0, 1),
]
x, c, h = torch.zeros(1, 3, 224, 224), 3, 224
try:
    for name, c_out, k, s, p, g in alexnet_features:
        if c_out is None:
            layer, weight = nn.MaxPool2d(k, s), "-"
        else:
            layer, weight = nn.Conv2d(c, c_out, k, s, p, groups=g), conv_weight_shape(c, c_out, k, g)
            c = c_out
        x, h = layer(x), conv_output_size(h, k, s, p)
        yours, theirs = f"{c}x{h}x{h}", "x".join(str(d) for d in x.shape[1:])
        print(f"{name:6s} yours {yours:10s} torch {theirs:10s} weight {weight}")
except NotImplementedError:
    print("Finish Q2 and Q5 to see the AlexNet shape table.")

# %% [markdown]
# ## Q9. Reflection (2 points, graded by hand)
#
# For 128 input and 128 output channels and $k = 3$, your `factorised_params`
# says a depthwise-separable layer has about 8x fewer weights (and MACs) than a
# standard 3x3 convolution. In three to five sentences: give one reason it will
# usually run *less* than 8x faster on a CPU or GPU, and one reason an edge
# model might still prefer it.

# %% [markdown] nbgrader={"grade": true, "grade_id": "q9_reflection", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# A depthwise convolution does very little arithmetic per byte it moves: each
# output reads a 3x3 window of one channel, so it is limited by memory bandwidth
# and by the overhead of launching a second, small kernel (the pointwise layer),
# not by the multiply units; libraries are also far better tuned for dense
# GEMM-like convolutions. Splitting the layer in two also writes and re-reads an
# intermediate activation. Still, on an edge device the ~8x smaller weights
# shrink the model file and its DRAM traffic, which saves energy (a DRAM access
# costs 640 pJ at 45 nm, a float multiply 3.7 pJ) and memory, often the binding limits there.
# ### END SOLUTION
