# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 06: Convolution loops, from Python to C
#
# *Efficient Deep Learning for Edge Deployment*
#
# On an edge device there may be no PyTorch: the network becomes loops in C.
# This lab writes the convolution as the seven loops of the edge-deployment
# notation (a batch of **N** input maps with **C** channels of **H x W**, **M**
# filters of **R x S**, outputs of **P x Q**, stride **U**), then makes the same
# loops fast: compiled with numba in every loop order, turned into one matrix
# product (im2col), and written in real C, compiled from the notebook. It ends
# with an int8 network running as a standalone C program, with the same
# predictions as Lab 05's integer model on every image.
#
# One slip in the notes this lab fixes: the output size is
# $P = \lfloor (H + 2\,\text{pad} - R) / U \rfloor + 1$ (the notes' version has
# no padding and no floor). And one habit to drop: the padding check of the
# notes' C code compares row and column indices with a literal 32. That is right
# for the layer it was written for (a 32 x 32 input), but a kernel used on any
# other layer must bound them by that layer's own height and width, as yours will.
#
# **How this lab is graded.** Each `## Q…` heading gives its points. Write your
# code where it says `YOUR CODE HERE` and delete the `raise NotImplementedError()`.
# Loop questions refuse torch's convolution, `unfold`, matrix products, padding
# and `.numpy()`; C sources may include only `stdint.h`, `stddef.h`, `math.h` and
# `string.h` and must not reach back into Python or the system. Your C is
# compiled by `efflib.cc` with the C compiler that `make lab` installed (zig's
# clang, from the `ziglang` package): its first build takes a few seconds. Q8 is
# read by a person.

# %%
import ctypes
import itertools
import os
import subprocess
import tempfile
import tracemalloc
from pathlib import Path

import matplotlib.pyplot as plt
import numba
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.patches import Patch
from tqdm.auto import tqdm

from efflib import cc, data, export_c, loops, models, plots, train
from efflib.latency import fast_mode, threads_for_load
from efflib.quant import integer, torch_int8

torch.manual_seed(0)
FAST = fast_mode()  # True while the grader runs this notebook: fewer orders, shorter timing
if FAST:
    torch.set_num_threads(1)
BUDGET = 0.05 if FAST else 0.3  # seconds of timing per measurement
print(f"torch {torch.__version__}, numba {numba.__version__}, C compiler: "
      f"{' '.join(cc.compiler()[-3:])}, fast mode {FAST}")

# %% [markdown]
# ## Q1. The seven loops (4 points)
#
# Write `conv2d_direct(x, w, b, stride, padding, dilation)` for `x` of shape
# (N, C, H, W), `w` (M, C, R, S) and `b` (M,), returning (N, M, P, Q) with
# $P = \lfloor (H + 2\,\text{pad} - \text{dil}\,(R-1) - 1) / U \rfloor + 1$ (Q alike).
# Use plain Python loops over N, M, P, Q, C, R, S on nested lists
# (`x.tolist()`), and **do not pad**: input row
# $h = p\,U + r\,\text{dil} - \text{pad}$ that falls outside $[0, H)$ contributes
# zero, so skip it with a bounds check, as the notes' C code does. Return a
# float32 tensor (`torch.tensor(nested_list)`).

# %% nbgrader={"grade": false, "grade_id": "q1_direct", "locked": false, "schema_version": 3, "solution": true, "task": false}
def conv2d_direct(x, w, b, stride, padding, dilation):
    """Convolution by seven nested Python loops, zero padding by a bounds check."""
    ### BEGIN SOLUTION
    N, C, H, W = x.shape
    M, _, R, S = w.shape
    P = (H + 2 * padding - dilation * (R - 1) - 1) // stride + 1
    Q = (W + 2 * padding - dilation * (S - 1) - 1) // stride + 1
    xs, ws, bs = x.tolist(), w.tolist(), b.tolist()
    out = [[[[0.0] * Q for _ in range(P)] for _ in range(M)] for _ in range(N)]
    for n in range(N):
        for m in range(M):
            for p in range(P):
                for q in range(Q):
                    acc = bs[m]
                    for c in range(C):
                        for r in range(R):
                            h = p * stride + r * dilation - padding
                            if h < 0 or h >= H:
                                continue
                            for s in range(S):
                                v = q * stride + s * dilation - padding
                                if 0 <= v < W:
                                    acc += xs[n][c][h][v] * ws[m][c][r][s]
                    out[n][m][p][q] = acc
    return torch.tensor(out, dtype=torch.float32)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q1_direct_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
"""Q1: the seven loops against F.conv2d, with stride, padding and dilation."""
from autograde.checks.lab06_loops import check_conv2d_direct

check_conv2d_direct(conv2d_direct)
### BEGIN HIDDEN TESTS
check_conv2d_direct(conv2d_direct, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Q2. The notes' other loops (4 points)
#
# Four more loop nests, each on one image (no batch dimension), again on
# nested lists without torch's convolution or pooling:
#
# * `avgpool_loops(x)`: (C, H, W) -> (C,), the mean of each channel (the notes'
#   `avgpool`);
# * `conv_bias_relu_loops(x, w, b)`: a 1x1 convolution (C, H, W) x (M, C, 1, 1)
#   -> (M, H, W) with the bias added and ReLU applied in the same loop (the
#   notes' `conv_last`);
# * `depthwise_loops(x, w, stride, padding)`: (N, C, H, W) x (C, 1, R, S), where
#   output channel c reads input channel c only;
# * `shift_loops(x, k)`: Synetgy's zero-FLOP shift on (N, C, H, W) as in Lab 03:
#   channel c belongs to group $g = \lfloor c k^2 / C \rfloor$ and reads the input
#   at offset $(\lfloor g/k \rfloor - \lfloor k/2 \rfloor,\ g \bmod k - \lfloor k/2 \rfloor)$,
#   zero outside the image.

# %% nbgrader={"grade": false, "grade_id": "q2_other_loops", "locked": false, "schema_version": 3, "solution": true, "task": false}
def avgpool_loops(x):
    """(C, H, W) -> (C,): the mean of each channel."""
    ### BEGIN SOLUTION
    C, H, W = x.shape
    xs = x.tolist()
    out = []
    for c in range(C):
        total = 0.0
        for h in range(H):
            for v in range(W):
                total += xs[c][h][v]
        out.append(total / (H * W))
    return torch.tensor(out)
    ### END SOLUTION


def conv_bias_relu_loops(x, w, b):
    """(C, H, W) x (M, C, 1, 1) -> (M, H, W): 1x1 conv, bias and ReLU in one loop nest."""
    ### BEGIN SOLUTION
    C, H, W = x.shape
    M = w.shape[0]
    xs, ws, bs = x.tolist(), w.tolist(), b.tolist()
    out = [[[0.0] * W for _ in range(H)] for _ in range(M)]
    for m in range(M):
        for h in range(H):
            for v in range(W):
                acc = 0.0
                for c in range(C):
                    acc += ws[m][c][0][0] * xs[c][h][v]
                result = acc + bs[m]
                out[m][h][v] = result if result > 0 else 0.0
    return torch.tensor(out)
    ### END SOLUTION


def depthwise_loops(x, w, stride, padding):
    """(N, C, H, W) x (C, 1, R, S): each output channel reads its own input channel."""
    ### BEGIN SOLUTION
    N, C, H, W = x.shape
    _, _, R, S = w.shape
    P = (H + 2 * padding - R) // stride + 1
    Q = (W + 2 * padding - S) // stride + 1
    xs, ws = x.tolist(), w.tolist()
    out = [[[[0.0] * Q for _ in range(P)] for _ in range(C)] for _ in range(N)]
    for n in range(N):
        for c in range(C):
            for p in range(P):
                for q in range(Q):
                    acc = 0.0
                    for r in range(R):
                        for s in range(S):
                            h, v = p * stride + r - padding, q * stride + s - padding
                            if 0 <= h < H and 0 <= v < W:
                                acc += xs[n][c][h][v] * ws[c][0][r][s]
                    out[n][c][p][q] = acc
    return torch.tensor(out)
    ### END SOLUTION


def shift_loops(x, k):
    """Synetgy's shift: each channel group moved by its own (dy, dx), zeros outside."""
    ### BEGIN SOLUTION
    N, C, H, W = x.shape
    xs = x.tolist()
    out = [[[[0.0] * W for _ in range(H)] for _ in range(C)] for _ in range(N)]
    for c in range(C):
        g = c * k * k // C
        dy, dx = g // k - k // 2, g % k - k // 2
        for n in range(N):
            for h in range(H):
                for v in range(W):
                    if 0 <= h + dy < H and 0 <= v + dx < W:
                        out[n][c][h][v] = xs[n][c][h + dy][v + dx]
    return torch.tensor(out)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q2_other_loops_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
"""Q2: average pool, conv + bias + ReLU, depthwise conv and shift, as loops."""
from autograde.checks.lab06_loops import check_other_loops

check_other_loops(avgpool_loops, conv_bias_relu_loops, depthwise_loops, shift_loops)
### BEGIN HIDDEN TESTS
check_other_loops(avgpool_loops, conv_bias_relu_loops, depthwise_loops, shift_loops,
                  hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## The real layer, and how slow Python is
#
# From here on the layer is ResNet's 3x3 conv at 56 x 56: C = M = 64, H = W = 56,
# padding 1, 2 x 64 x 64 x 9 x 56 x 56 = 231 million FLOP. Pure Python would need
# tens of seconds for it (more on a busy machine), and the cells below time every
# version several times, so Python's speed is measured on a small layer and given
# in GFLOP/s.

# %%
C_, M_, HW = 64, 64, 56
x_real = torch.randn(C_, HW, HW)
w_real = torch.randn(M_, C_, 3, 3) / 24
b_real = torch.randn(M_)
FLOP = loops.conv_flop(C_, M_, 3, 3, HW, HW)
reference = F.conv2d(x_real[None], w_real, b_real, padding=1)[0]
speed = {}  # implementation -> GFLOP/s on this machine

x_small, w_small = torch.randn(1, 8, 14, 14), torch.randn(8, 8, 3, 3)
seconds = plots.attempt(lambda: loops.timed(
    lambda: conv2d_direct(x_small, w_small, torch.zeros(8), 1, 1, 1), BUDGET, min_runs=1))
if seconds is not None:
    speed["Python loops"] = loops.conv_flop(8, 8, 3, 3, 14, 14) / seconds / 1e9
    print(f"the real layer in pure Python would take about "
          f"{FLOP / speed['Python loops'] / 1e9:.0f} s")
free = 1 if FAST else threads_for_load()  # cores that other processes leave free now
for threads in sorted({1, free}):
    torch.set_num_threads(threads)
    t = loops.timed(lambda: F.conv2d(x_real[None], w_real, b_real, padding=1), BUDGET)
    speed[f"torch, {threads} thread{'s' if threads > 1 else ''}"] = FLOP / t / 1e9
torch.set_num_threads(1)
if not FAST and free < (os.cpu_count() or 1):
    print(f"torch timed at {free} thread(s) only: other processes keep "
          f"{(os.cpu_count() or 1) - free} core(s) busy, and torch threads beyond the free "
          "cores wait for each other (oversubscription), slower than one thread")
for name, gflops in speed.items():
    print(f"{name:18s} {gflops:9.3f} GFLOP/s")

# %% [markdown]
# ## Q3. Compiled loops with numba (3 points)
#
# numba compiles a Python function of loops over NumPy arrays to machine code.
# Write `conv_kernel(xp, w, out)`, decorated with `@numba.njit`, for a stride-1
# convolution of a **pre-padded** input `xp` (C, H+2, W+2) into a zeroed `out`
# (M, H, W) with `w` (M, C, 3, 3): `out[m, p, q] += w[m, c, r, s] * xp[c, p+r, q+s]`.
# Pad first: numba stops vectorising an inner loop whose index can go negative.
# Then write `conv2d_numba(x, w)` taking torch tensors (C, H, W) and (M, C, 3, 3)
# and returning the (M, H, W) result with padding 1: pad with NumPy, allocate
# `out`, call your kernel, convert back with `torch.from_numpy`. The check calls
# your kernel itself on float32 arrays, and refuses NumPy's convolution helpers
# (`sliding_window_view`, `einsum`, `correlate`, ...) in the wrapper.

# %% nbgrader={"grade": false, "grade_id": "q3_numba_kernel", "locked": false, "schema_version": 3, "solution": true, "task": false}
conv_kernel = None
### BEGIN SOLUTION
@numba.njit
def conv_kernel(xp, w, out):
    M, C, R, S = w.shape
    P, Q = out.shape[1], out.shape[2]
    for m in range(M):
        for c in range(C):
            for r in range(R):
                for s in range(S):
                    wv = w[m, c, r, s]
                    for p in range(P):
                        for q in range(Q):
                            out[m, p, q] += wv * xp[c, p + r, q + s]
### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "q3_numba", "locked": false, "schema_version": 3, "solution": true, "task": false}
def conv2d_numba(x, w):
    """(C, H, W) x (M, C, 3, 3) -> (M, H, W), padding 1, through conv_kernel."""
    ### BEGIN SOLUTION
    xp = np.pad(x.detach().cpu().float().contiguous().numpy(), ((0, 0), (1, 1), (1, 1)))
    out = np.zeros((w.shape[0], x.shape[1], x.shape[2]), np.float32)
    conv_kernel(xp, w.detach().cpu().float().contiguous().numpy(), out)
    return torch.from_numpy(out)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q3_numba_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
"""Q3: a numba-compiled kernel, and its result against F.conv2d."""
from autograde.checks.lab06_loops import check_conv2d_numba

check_conv2d_numba(conv_kernel, conv2d_numba)
### BEGIN HIDDEN TESTS
check_conv2d_numba(conv_kernel, conv2d_numba, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# Your kernel on the real layer, then **the order of the loops**: the six
# loops taken as four blocks (m, c, the kernel window rs, the output position
# pq) can be nested in 24 orders. The cell compiles (with
# `efflib.loops.numba_conv`, a fraction of a second each) and times the 12 whose
# outermost loop is m or c: among them each block is innermost at least twice.
# The other 12 put rs or pq outermost; add them to `orders` to see them.
# Last, the bounds check inside the inner loop instead of padding first. Which
# loop is innermost in the fastest and in the slowest orders, and what stride
# in memory does that loop walk in `xp`, `w` and `out`?

# %%
xp_real = loops.pad_chw(x_real.numpy(), 1)
w_np = w_real.numpy()
out = np.zeros((M_, HW, HW), np.float32)
if plots.attempt(conv2d_numba, x_real[:2, :5, :5], w_real[:1, :2]) is not None:
    got = conv2d_numba(x_real, w_real) + b_real[:, None, None]
    print(f"your numba kernel: max error {float((got - reference).abs().max()):.1e}")
    t = loops.timed(lambda: conv_kernel(xp_real, w_np, out), BUDGET)
    speed["numba (yours)"] = FLOP / t / 1e9
orders = ["".join(p) for p in itertools.permutations(["m", "c", "rs", "pq"])
          if p[0] in ("m", "c")]
if FAST:  # one or two orders with each block innermost
    orders = ["mcrspq", "cmrspq", "mcpqrs", "mrspqc", "cpqrsm", "crspqm"]
order_speed = {}
for order in tqdm(orders, desc="loop orders compiled and timed"):
    kernel = loops.numba_conv(order)  # compiled here, outside the timing
    # the orders differ up to tenfold, so one run ranks a slow one; fast ones get several
    order_speed[order] = FLOP / loops.timed(lambda k=kernel: k(xp_real, w_np, out),
                                           BUDGET / 6, min_runs=1) / 1e9
best, worst = max(order_speed, key=order_speed.get), min(order_speed, key=order_speed.get)
speed[f"numba best ({best})"] = order_speed[best]
speed[f"numba worst ({worst})"] = order_speed[worst]
t = loops.timed(lambda: loops.numba_conv_bounds(x_real.numpy(), w_np, out, 1), BUDGET)
speed["numba, bounds check inside"] = FLOP / t / 1e9
fig, ax = plt.subplots(figsize=(10, 3.6))
ranked = sorted(order_speed, key=order_speed.get, reverse=True)
colors = {"pq": "tab:blue", "rs": "tab:orange", "c": "tab:green", "m": "tab:red"}
inner = {o: next(b for b in colors if o.endswith(b)) for o in ranked}  # the innermost block
ax.bar(ranked, [order_speed[o] for o in ranked], color=[colors[inner[o]] for o in ranked])
ax.set(ylabel="GFLOP/s", title="The same loops in 12 orders (outermost first)")
ax.tick_params(axis="x", rotation=60)
ax.legend(handles=[Patch(color=c, label=f"{block} innermost") for block, c in colors.items()],
          fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Q4. im2col + one matrix product (4 points)
#
# The fastest libraries do not loop over the convolution: they copy every
# R x S x C patch of the input into a column of a matrix (**im2col**) and make the
# convolution one matrix product, for which decades of tuning exist. Write
# `im2col(x, k, stride, padding)` for one image (C, H, W) returning the
# (C·k·k, P·Q) patch matrix, rows ordered (c, r, s) and columns (p, q), zeros
# where a patch hangs over the edge (this is what `F.unfold` returns; it is
# refused here, but you may pad), and `conv2d_im2col(x, w, b, stride, padding)`
# returning (M, P, Q) from one `@` (the check counts the matrix products your
# function runs: exactly one). *Hint:* loop over the k x k kernel offsets
# and copy a strided slice of the padded input for each.

# %% nbgrader={"grade": false, "grade_id": "q4_im2col", "locked": false, "schema_version": 3, "solution": true, "task": false}
def im2col(x, k, stride, padding):
    """(C, H, W) -> (C*k*k, P*Q): every k x k patch as a column."""
    ### BEGIN SOLUTION
    C, H, W = x.shape
    P = (H + 2 * padding - k) // stride + 1
    Q = (W + 2 * padding - k) // stride + 1
    xp = torch.zeros(C, H + 2 * padding, W + 2 * padding, dtype=x.dtype)
    xp[:, padding:padding + H, padding:padding + W] = x
    cols = torch.empty(C, k, k, P, Q, dtype=x.dtype)
    for r in range(k):
        for s in range(k):
            cols[:, r, s] = xp[:, r:r + stride * (P - 1) + 1:stride,
                               s:s + stride * (Q - 1) + 1:stride]
    return cols.reshape(C * k * k, P * Q)
    ### END SOLUTION


def conv2d_im2col(x, w, b, stride, padding):
    """(C, H, W) x (M, C, k, k) -> (M, P, Q) as one matrix product."""
    ### BEGIN SOLUTION
    M, C, k, _ = w.shape
    P = (x.shape[1] + 2 * padding - k) // stride + 1
    Q = (x.shape[2] + 2 * padding - k) // stride + 1
    y = w.reshape(M, -1) @ im2col(x, k, stride, padding) + b[:, None]
    return y.reshape(M, P, Q)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q4_im2col_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
"""Q4: the patch matrix against F.unfold's, the product against F.conv2d."""
from autograde.checks.lab06_loops import check_im2col

check_im2col(im2col, conv2d_im2col)
### BEGIN HIDDEN TESTS
check_im2col(im2col, conv2d_im2col, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# The price of im2col is memory: each input value is copied into up to R·S
# columns. The patch matrix of the real layer against its input, and its speed:

# %%
cols = plots.attempt(im2col, x_real, 3, 1, 1)
if cols is not None:
    print(f"input {x_real.numel() * 4 / 1e6:.2f} MB, patch matrix {cols.numel() * 4 / 1e6:.2f} "
          f"MB ({cols.numel() / x_real.numel():.1f}x)")
    t = loops.timed(lambda: conv2d_im2col(x_real, w_real, b_real, 1, 1), BUDGET)
    speed["im2col + GEMM"] = FLOP / t / 1e9
    print(f"im2col + GEMM: {speed['im2col + GEMM']:.1f} GFLOP/s")

# %% [markdown]
# ## Q5. Real C (5 points)
#
# Write the convolution in C, in a Python string `C_CONV`, as
#
# ```c
# void conv2d(const float *x, const float *w, const float *b, float *y,
#             int C, int H, int W, int M, int R, int S, int pad)
# ```
#
# for stride 1, with arrays flattened in row-major (C order): `x[(c*H + h)*W + v]`,
# `w[((m*C + c)*R + r)*S + s]`, `y[(m*P + p)*Q + q]`, and the notes' bounds check
# for the padding. Compile it with `cc.load(C_CONV, name="conv")`, which returns a
# `ctypes` library, and write the Python wrapper `conv2d_c(x, w, b, padding)`:
# make float32 contiguous copies, allocate `y`, pass pointers (`cc.pointer(t)`)
# and the sizes, return `y`.
#
# Then make it fast: `C_CONV_FAST` computes the same function faster, by tiling
# the loop nest at the two levels of memory closest to the arithmetic:
#
# - **registers:** a small tile of outputs (say 6 output channels by 16 outputs
#   of one row) is summed in local variables over all of `c`, `r` and `s`, then
#   stored once; every input value loaded serves the 6 channels, and every
#   weight the 16 outputs (register blocking). The compiler keeps a fixed-size
#   local array such as `float acc[6][16]` in vector registers when its loops
#   have constant bounds (12 of the 16 registers of 8 floats that AVX2 has);
# - **cache:** the `R` input rows that one output row reads, from every channel,
#   are copied once into a local buffer with their zero padding (a few tens of
#   kB for the real layer, which stays in the L1 cache while every tile of that
#   row reuses it). A local array sized by the arguments (`float rows[C * R *
#   L];`) needs no library. The bounds check then leaves the hot loop entirely.
#
# Both are checked for correctness; how much faster is measured below.
#
# **Your C cannot take the kernel down.** Each call of a function of a library that
# `cc.load` returned runs in a child process forked for it (`efflib.guarded`):
#
# - an endless loop stops when you press Interrupt (the ■ button), with
#   `KeyboardInterrupt: lib.conv2d was stopped`;
# - a read or write outside the memory it owns raises `NativeCrash`, which names the
#   function, the argument it ran past and the element, instead of killing the kernel:
#   your variables survive, and the arrays are left as they were before the call;
# - `cc.load(C_CONV, name="conv", checked=True)` builds with debug information and
#   clang's undefined-behaviour checks, so a crash also names the line of C (the
#   checked build is slower: time the plain one);
# - what your C prints with `printf` appears under the cell.
#
# Pass every array with `cc.pointer(t)`: that is how the child knows the array's size
# and brings what the C wrote back. Forking the child costs time outside your C;
# `loops.timed` leaves it out, so the speeds below are your function's own.
#
# The check does not take the wrapper's word for it: it compiles each source
# itself, as a program of its own with no C library behind it (a call to
# anything but your own code fails to link), runs it on every case, including
# the real 64x56x56 layer, and times `C_CONV_FAST` against `C_CONV` in turns on
# that layer: the fast one must be at least 2x faster. Its build is *checked*:
# signed integer overflow, shifts out of range and indexing past an array of
# known size stop the program (clang's sanitizers), where a plain build might
# happen to give the right answer.

# %% nbgrader={"grade": false, "grade_id": "q5_c_source", "locked": false, "schema_version": 3, "solution": true, "task": false}
C_CONV = C_CONV_FAST = None
### BEGIN SOLUTION
C_CONV = r"""
void conv2d(const float *x, const float *w, const float *b, float *y,
            int C, int H, int W, int M, int R, int S, int pad) {
    int P = H + 2 * pad - R + 1, Q = W + 2 * pad - S + 1;
    for (int m = 0; m < M; m++)
        for (int p = 0; p < P; p++)
            for (int q = 0; q < Q; q++) {
                float acc = b[m];
                for (int c = 0; c < C; c++)
                    for (int r = 0; r < R; r++) {
                        int h = p + r - pad;
                        if (h < 0 || h >= H) continue;
                        for (int s = 0; s < S; s++) {
                            int v = q + s - pad;
                            if (v < 0 || v >= W) continue;
                            acc += w[((m * C + c) * R + r) * S + s] * x[(c * H + h) * W + v];
                        }
                    }
                y[(m * P + p) * Q + q] = acc;
            }
}
"""

C_CONV_FAST = r"""
void conv2d(const float *x, const float *w, const float *b, float *y,
            int C, int H, int W, int M, int R, int S, int pad) {
    int P = H + 2 * pad - R + 1, Q = W + 2 * pad - S + 1, K = C * R * S;
    int L = (Q + 15) / 16 * 16 + S - 1;       /* a padded row, in whole strips of 16 */
    float rows[C * R * L];                    /* the cache tile: R rows of every channel */
    for (int p = 0; p < P; p++) {
        for (int c = 0; c < C; c++)
            for (int r = 0; r < R; r++) {
                int h = p + r - pad;
                float *row = rows + (c * R + r) * L;
                for (int v = 0; v < L; v++) {
                    int u = v - pad;
                    row[v] = h >= 0 && h < H && u >= 0 && u < W ? x[(c * H + h) * W + u] : 0.0f;
                }
            }
        for (int m = 0; m < M; m += 6) {
            int n = M - m < 6 ? M - m : 6;    /* output channels in this tile */
            for (int q = 0; q < Q; q += 16) {
                float acc[6][16] = {{0}};     /* the register tile */
                const float *wm[6];           /* past the last channel: the last again */
                for (int i = 0; i < 6; i++) wm[i] = w + (m + (i < n ? i : n - 1)) * K;
                for (int k = 0; k < C * R; k++) {
                    const float *row = rows + k * L + q;
                    for (int s = 0; s < S; s++) {
                        float v[16];
                        for (int j = 0; j < 16; j++) v[j] = row[s + j];
                        for (int i = 0; i < 6; i++) {
                            float wv = wm[i][k * S + s];
                            for (int j = 0; j < 16; j++) acc[i][j] += wv * v[j];
                        }
                    }
                }
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < 16 && q + j < Q; j++)
                        y[((m + i) * P + p) * Q + q + j] = b[m + i] + acc[i][j];
            }
        }
    }
}
"""
### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "q5_c", "locked": false, "schema_version": 3, "solution": true, "task": false}
def conv2d_c(x, w, b, padding, source=None):
    """(C, H, W) x (M, C, R, S) + b -> (M, P, Q), stride 1, by the C code in `source`
    (C_CONV when None)."""
    ### BEGIN SOLUTION
    lib = cc.load(source or C_CONV, name="conv")
    x, w, b = (t.detach().cpu().float().contiguous() for t in (x, w, b))
    C, H, W = x.shape
    M, _, R, S = w.shape
    y = torch.empty(M, H + 2 * padding - R + 1, W + 2 * padding - S + 1)
    lib.conv2d(cc.pointer(x), cc.pointer(w), cc.pointer(b), cc.pointer(y),
               C, H, W, M, R, S, padding)
    return y
    ### END SOLUTION


def conv2d_c_fast(x, w, b, padding):
    return conv2d_c(x, w, b, padding, source=C_CONV_FAST)


# %% nbgrader={"grade": true, "grade_id": "q5_c_test", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
"""Q5: both C sources compute F.conv2d, compiled by the check; the fast one is 2x faster."""
from autograde.checks.lab06_loops import check_c_conv, check_c_speedup

check_c_conv(C_CONV, conv2d_c)
check_c_conv(C_CONV_FAST, conv2d_c_fast, what="C_CONV_FAST")
check_c_speedup(C_CONV, C_CONV_FAST)
### BEGIN HIDDEN TESTS
check_c_conv(C_CONV, conv2d_c, hidden=True)
check_c_conv(C_CONV_FAST, conv2d_c_fast, hidden=True, what="C_CONV_FAST")
### END HIDDEN TESTS

# %%
for name, fn in (("C", conv2d_c), ("C, tiled", conv2d_c_fast)):
    if C_CONV and C_CONV_FAST and \
            plots.attempt(fn, x_real[:1, :3, :3], w_real[:1, :1], b_real[:1], 1) is not None:
        t = loops.timed(lambda f=fn: f(x_real, w_real, b_real, 1), BUDGET)
        speed[name] = FLOP / t / 1e9
        err = float((fn(x_real, w_real, b_real, 1) - reference).abs().max())
        print(f"{name:13s} {speed[name]:6.1f} GFLOP/s, max error {err:.1e}")

# %% [markdown]
# ## Q6. int8 convolution in C (4 points)
#
# Lab 05's integer-only conv layer, now in C: `C_INT8_CONV` defines
#
# ```c
# void conv_int8(const uint8_t *x, const int8_t *w, const int32_t *b,
#                const int32_t *m0, const int32_t *shift, uint8_t *y,
#                int C, int H, int W, int M, int R, int S, int pad,
#                int zx, int zy, int relu)
# ```
#
# (stride 1): accumulate `(x - zx) * w` in `int32_t` from the bias, skip padded
# positions (they equal `zx`, so they add 0), then per output channel
# `(int64_t)acc * m0[m]`, add $2^{30+n}$, shift right by $31+n$, add `zy`, clamp to
# `[relu ? zy : 0, 255]`. The check compiles your source itself, checked as in
# Q5: `acc * m0[m]` in `int32_t` overflows (undefined behaviour, which the
# checked build stops on), so cast to `int64_t` first; its cases include
# padding, results exactly halfway, and sums beyond what 16 bits hold.
# Wrap it as `int8_conv_c(q_x, z_x, q_w, q_b, m0, shift,
# z_y, relu, padding)` taking integer tensors as Lab 05's `int_conv2d` (one image,
# (C, H, W)) and returning an integer tensor (M, P, Q). Pass `uint8`, `int8` and
# `int32` copies with `cc.pointer(t, ctypes.c_uint8)` and the like.

# %% nbgrader={"grade": false, "grade_id": "q6_int8_c_source", "locked": false, "schema_version": 3, "solution": true, "task": false}
C_INT8_CONV = None
### BEGIN SOLUTION
C_INT8_CONV = r"""
#include <stdint.h>

void conv_int8(const uint8_t *x, const int8_t *w, const int32_t *b,
               const int32_t *m0, const int32_t *shift, uint8_t *y,
               int C, int H, int W, int M, int R, int S, int pad,
               int zx, int zy, int relu) {
    int P = H + 2 * pad - R + 1, Q = W + 2 * pad - S + 1;
    int lo = relu ? zy : 0;
    for (int m = 0; m < M; m++)
        for (int p = 0; p < P; p++)
            for (int q = 0; q < Q; q++) {
                int32_t acc = b[m];
                for (int c = 0; c < C; c++)
                    for (int r = 0; r < R; r++) {
                        int h = p + r - pad;
                        if (h < 0 || h >= H) continue;
                        for (int s = 0; s < S; s++) {
                            int v = q + s - pad;
                            if (v < 0 || v >= W) continue;
                            acc += ((int32_t)x[(c * H + h) * W + v] - zx)
                                   * (int32_t)w[((m * C + c) * R + r) * S + s];
                        }
                    }
                int total = 31 + shift[m];
                int64_t out = ((int64_t)acc * m0[m] + ((int64_t)1 << (total - 1))) >> total;
                out += zy;
                y[(m * P + p) * Q + q] = (uint8_t)(out < lo ? lo : (out > 255 ? 255 : out));
            }
}
"""
### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "q6_int8_c", "locked": false, "schema_version": 3, "solution": true, "task": false}
def int8_conv_c(q_x, z_x, q_w, q_b, m0, shift, z_y, relu, padding):
    """Lab 05's integer conv (stride 1, one image) computed by the C library."""
    ### BEGIN SOLUTION
    lib = cc.load(C_INT8_CONV, name="conv_int8")
    x = q_x.to(torch.uint8).contiguous()
    w = q_w.to(torch.int8).contiguous()
    b, m0_, sh = (t.to(torch.int32).contiguous() for t in (q_b, m0, shift))
    C, H, W = x.shape
    M, _, R, S = w.shape
    y = torch.empty(M, H + 2 * padding - R + 1, W + 2 * padding - S + 1, dtype=torch.uint8)
    lib.conv_int8(cc.pointer(x, ctypes.c_uint8), cc.pointer(w, ctypes.c_int8),
                  cc.pointer(b, ctypes.c_int32), cc.pointer(m0_, ctypes.c_int32),
                  cc.pointer(sh, ctypes.c_int32), cc.pointer(y, ctypes.c_uint8),
                  C, H, W, M, R, S, padding, int(z_x), int(z_y), int(bool(relu)))
    return y.to(torch.int64)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q6_int8_c_test", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
"""Q6: the int8 C convolution bit for bit against efflib's integer reference."""
from autograde.checks.lab06_loops import check_c_int8_conv

check_c_int8_conv(C_INT8_CONV, int8_conv_c)
### BEGIN HIDDEN TESTS
check_c_int8_conv(C_INT8_CONV, int8_conv_c, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Q7. Deploy to the edge (2 points)
#
# `efflib.export_c.export(int_model, (C, H, W))` writes an integer network as a
# C header of weights (`weights.h`) and a program with no Python, no torch and no
# `malloc`: it reads float32 images from the file named on its command line and
# prints, per image, the predicted class and the output integers. Write
# `run_standalone(header, source, images)`: compile the program (put the header
# in place of its `#include "weights.h"` line and build it with
# `cc.build(..., kind="exe")`), write `images` as raw float32 to a temporary
# file, run the program on it **as a separate process** (`subprocess.run`), and
# return the predicted classes as an integer tensor.

# %% nbgrader={"grade": false, "grade_id": "q7_deploy", "locked": false, "schema_version": 3, "solution": true, "task": false}
def run_standalone(header, source, images):
    """Compile the exported program, run it on `images` in its own process, return classes."""
    ### BEGIN SOLUTION
    exe = cc.build(source.replace('#include "weights.h"\n', header), kind="exe",
                   name="standalone")
    with tempfile.NamedTemporaryFile(suffix=".f32") as f:
        f.write(images.detach().float().contiguous().numpy().tobytes())
        f.flush()
        done = subprocess.run([str(exe), f.name], capture_output=True, text=True, check=True)
    return torch.tensor([int(line.split()[0]) for line in done.stdout.splitlines()])
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "q7_deploy_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
"""Q7: the exported program, compiled and run on its own, predicts as the integer model."""
from autograde.checks.lab06_loops import check_deploy

check_deploy(run_standalone)

# %% [markdown]
# The digit CNN of Lab 05, trained, converted to integers and exported: its
# predictions on every test image from the standalone program, its binary size,
# and its images per second against PyTorch's fp32 and int8 paths.

# %%
loaders = data.digits(seed=0)
torch.manual_seed(0)
digit = models.digit_cnn(width=16)
train.fit(digit, loaders.train, loaders.test, epochs=5, fast_epochs=2)
digit = digit.cpu().eval()  # trained on CUDA when there is one; exported from the CPU
int_model = integer.convert(digit, torch.cat([x for x, _ in loaders.train]))
program = export_c.export(int_model, (1, 8, 8))
test_x = torch.cat([x for x, _ in loaders.test])
test_y = torch.cat([y for _, y in loaders.test])
deploy = Path(tempfile.gettempdir()) / "efflab-lab06-deploy"  # look at the files here
deploy.mkdir(exist_ok=True)
(deploy / "weights.h").write_text(program.header)
(deploy / "digits_int8.c").write_text(program.source)
print(f"the program and its weights: {deploy}")
predicted = plots.attempt(run_standalone, program.header, program.source, test_x)
if predicted is not None:
    same = torch.equal(predicted, int_model.predict(test_x))
    exe = program.build()
    seconds = loops.timed(lambda: program.run(exe, test_x), BUDGET, min_runs=2)
    print(f"standalone C: accuracy {float((predicted == test_y).float().mean()):.1%}, "
          f"{'the same predictions as' if same else 'DIFFERENT predictions from'} the integer "
          f"model on all {len(test_x)} images; binary {exe.stat().st_size:,d} bytes; "
          f"{len(test_x) / seconds:,.0f} images/s (process start included)")
int8_torch = torch_int8.to_torch(int_model)
for name, model in (("torch fp32", digit), ("torch int8", int8_torch)):
    with torch.no_grad():
        t = loops.timed(lambda m=model: [m(test_x[i:i + 1]) for i in range(100)], BUDGET)
    print(f"{name}: {100 / t:,.0f} images/s at batch 1")

# %% [markdown]
# ## Layout and memory
#
# Two costs the GFLOP/s do not show. **Layout:** every loop above reads NCHW
# (a channel's rows are contiguous), so the vectorised loops run along a row.
# NHWC, "channels last", stores the channels of one pixel together: there a
# vector runs across channels, and a 1x1 convolution is one matrix product
# with no copying at all. torch accepts both; the cell times its convolution
# on the same layer in each layout, at one thread. **Memory:** what each
# implementation allocates beyond the input, the weights and the output: the
# naive loops nothing, numba a padded copy of the input, im2col its patch
# matrix, the tiled C its row buffer (on the stack of the call). NumPy reports
# its allocations to Python's `tracemalloc`, so numba's are measured; im2col's
# is the patch matrix your function returned; the C buffer's size is read off
# its declaration.

# %%
torch.set_num_threads(1)
layouts = {}
for layout, fmt in (("NCHW", torch.contiguous_format), ("NHWC", torch.channels_last)):
    x4 = x_real[None].contiguous(memory_format=fmt)
    w4 = w_real.contiguous(memory_format=fmt)
    t = loops.timed(lambda x4=x4, w4=w4: F.conv2d(x4, w4, b_real, padding=1), BUDGET)
    layouts[layout] = FLOP / t / 1e9
print("torch, 1 thread: " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in layouts.items()))
L_tile = (HW + 15) // 16 * 16 + 3 - 1  # the tiled C's padded row, as in C_CONV_FAST
extra = {"C, naive": 0, "C, tiled (row buffer)": C_ * 3 * L_tile * 4}
tracemalloc.start()
if plots.attempt(conv2d_numba, x_real, w_real) is not None:
    extra["numba (its copies)"] = tracemalloc.get_traced_memory()[1] - M_ * HW * HW * 4
tracemalloc.stop()
if cols is not None:
    extra["im2col (patch matrix)"] = cols.numel() * cols.element_size()
inputs_bytes = x_real.numel() * 4
for name, nbytes in extra.items():
    print(f"{name:24s} {nbytes / 1e3:9,.1f} kB beyond the input "
          f"({nbytes / inputs_bytes:.2f}x its {inputs_bytes / 1e3:,.0f} kB)")

# %% [markdown]
# ## Every implementation against the machine
#
# GFLOP/s of each version of the real layer (Python measured on a small layer)
# against this machine's peak (a large float32 matrix product on one thread,
# as efflib's roofline measures it). Each version above was timed on its own,
# at its own moment; if other programs came and went meanwhile, their ratios say
# more about the load than about the code. So the cell times every version that
# ran (in under a second a call: a slower one keeps its first figure) once more,
# and the matrix product, in turns (`efflib.loops.timed_together`: a round runs
# each once, the order moving by one each round), and plots those figures. The axis is logarithmic: the range is four orders of magnitude.

# %%
def at_threads(n, fn):
    """fn with torch at n threads, then back to one."""
    def run():
        torch.set_num_threads(n)
        try:
            return fn()
        finally:
            torch.set_num_threads(1)
    return run


def torch_conv():
    return F.conv2d(x_real[None], w_real, b_real, padding=1)


versions = {  # a name in `speed` -> (one run, its FLOP)
    "Python loops": (lambda: conv2d_direct(x_small, w_small, torch.zeros(8), 1, 1, 1),
                     loops.conv_flop(8, 8, 3, 3, 14, 14)),
    **{f"torch, {n} thread{'s' if n > 1 else ''}": (at_threads(n, torch_conv), FLOP)
       for n in {1, free}},
    "numba (yours)": (lambda: conv_kernel(xp_real, w_np, out), FLOP),
    f"numba best ({best})": (lambda: loops.numba_conv(best)(xp_real, w_np, out), FLOP),
    f"numba worst ({worst})": (lambda: loops.numba_conv(worst)(xp_real, w_np, out), FLOP),
    "numba, bounds check inside": (
        lambda: loops.numba_conv_bounds(x_real.numpy(), w_np, out, 1), FLOP),
    "im2col + GEMM": (lambda: conv2d_im2col(x_real, w_real, b_real, 1, 1), FLOP),
    "C": (lambda: conv2d_c(x_real, w_real, b_real, 1), FLOP),
    "C, tiled": (lambda: conv2d_c_fast(x_real, w_real, b_real, 1), FLOP),
}
versions = {name: (fn, flop) for name, (fn, flop) in versions.items()  # those that ran,
            if name in speed and flop / (speed[name] * 1e9) < 1}  # under a second a call
n_mm = 512 if FAST else 1024
a_mm, b_mm = torch.randn(n_mm, n_mm), torch.randn(n_mm, n_mm)
versions["peak"] = (lambda: a_mm @ b_mm, 2 * n_mm**3)  # at one thread, as all but torch's
seconds = loops.timed_together({name: fn for name, (fn, _) in versions.items()}, 3 * BUDGET)
measured = {name: flop / seconds[name] / 1e9 for name, (_, flop) in versions.items()}
peak = measured.pop("peak")
speed.update(measured)
for name in sorted(speed, key=speed.get):
    print(f"{name:28s} {speed[name]:9.3f} GFLOP/s")
names = sorted(speed, key=speed.get)
fig, ax = plt.subplots(figsize=(8, 4))
ax.barh(names, [speed[n] for n in names], color="tab:blue")
ax.axvline(peak, color="tab:red", ls="--",
           label=f"matrix-product peak, 1 thread ({peak:.0f} GFLOP/s, measured now)")
ax.set_xscale("log")
ax.set(xlabel="GFLOP/s (log scale)",
       title="The 64x56x56 3x3 convolution, every way this lab wrote it")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Q8. Reflection (2 points, graded by hand)
#
# From your plot: how far is each implementation from torch at one thread and
# from the machine's peak? Explain the gap between the best and worst numba
# orders from the memory strides of the innermost loop, and say what torch (and
# im2col) do that your fastest C loop does not, and what im2col's speed costs in
# memory on a device with a few hundred kB of RAM (three to six sentences,
# quoting your numbers).

# %% [markdown] nbgrader={"grade": true, "grade_id": "q8_reflection", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# A good answer quotes the plot: Python loops run at a few thousandths to a
# hundredth of a GFLOP/s, about a hundred times below even the naive C loop and
# further below the rest. The best numba orders
# keep the output column q innermost, so the inner loop walks `xp` and `out`
# with stride 1 and the compiler can vectorise it with the weight held in a
# register; orders with m or c innermost jump by whole feature maps (P·Q or
# H·W floats) or by C·R·S weights, so every access misses the cache and nothing
# vectorises. The tiled C loop goes further: its register tile reuses each
# loaded input for several channels and each weight for a strip of outputs, and
# its padded row buffer takes the bounds check out of the hot loop, so the
# compiler vectorises a loop that does little but multiply and add. torch still
# leads: its kernels are written per instruction set, with larger register
# tiles, weights re-packed in the order they are read, and blocking for every
# cache level, and they fuse the multiply and add (FMA), which this course's
# build leaves off for bit-exact results. im2col hands the work to such a tuned
# matrix product too, and keeps up with the tiled C loop even after copying the
# input into its patch matrix (ahead of it on a quiet machine, as the copy suffers
# most from a busy one); but the copy is nine times the input, megabytes where
# the tiled loop's row buffer needs tens of kB.
# ### END SOLUTION
